pub mod app;
pub mod pg;
pub mod process;
pub mod pxe;
pub mod slapd;
pub mod smtp;
