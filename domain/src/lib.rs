//! Bootler's server-side domain. Nothing in here knows about HTTP: the edges
//! (REST handlers, server functions, boot endpoints) look up state, call one
//! function from here and map its error.

pub mod accounts;
pub mod changes;
pub mod config;
pub mod db;
pub mod directory;
pub mod hosts;
pub mod images;
pub mod jobs;
pub mod mail;
pub mod power;
pub mod secret;
pub mod ssh_key;
pub mod templates;
pub mod vms;
pub mod vpn;

pub use config::Config;
pub use db::Db;
