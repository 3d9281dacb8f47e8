//! Bootler's integration tests: one binary, one module per area.

// Test support code may fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod accounts;
mod admin_api;
mod binary;
mod http;
mod ldap;
mod mail;
mod postgres;
mod sessions;
