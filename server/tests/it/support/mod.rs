pub mod app;
pub mod ipmi_sim;
pub mod libvirt;
pub mod pg;
pub mod process;
pub mod pxe;
pub mod slapd;
pub mod smtp;
