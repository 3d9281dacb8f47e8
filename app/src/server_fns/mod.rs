//! Server functions: one per file. The browser calls them over HTTP under
//! `/sfn/`; during server rendering they run in-process.

pub mod account;
pub mod admin_users;
pub mod audit;
pub mod availability;
pub mod current_user;
pub mod hosts;
pub mod jobs;
pub mod registration_info;
pub mod templates;
pub mod vms;
pub mod vpn;
