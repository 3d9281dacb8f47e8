//! Server functions: one per file. The browser calls them over HTTP under
//! `/sfn/`; during server rendering they run in-process.

pub mod current_user;
pub mod registration_info;
