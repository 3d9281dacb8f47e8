pub mod app;
pub mod pg;
pub mod slapd;
pub mod smtp;
