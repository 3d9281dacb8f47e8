pub mod app;
pub mod pg;
