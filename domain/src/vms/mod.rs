//! Virtual machines (thesis §1.2, §5.2): three questions (hostname, flavor,
//! image with an SSH key), a job that builds the VM on the backend, and the
//! lifecycle (start, stop, destroy) kept in Bootler's database and
//! reconciled with the backend.

pub mod backend;
pub mod config;
pub mod fake;
pub mod instances;
pub mod libvirt;
pub mod openstack;
pub mod seed;

#[cfg(test)]
mod tests;
