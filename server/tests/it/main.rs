//! Bootler's integration tests: one binary, one module per area.

// Test support code may fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// One test module per engine: each body runs against a server on SQLite
/// and on PostgreSQL.
macro_rules! both_engines {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {
        $(
            mod $name {
                use super::*;

                async fn check($app: &TestApp) $body

                #[tokio::test]
                async fn sqlite() {
                    let app = TestApp::sqlite().await;
                    check(&app).await;
                    app.stop().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let app = TestApp::postgres().await;
                    check(&app).await;
                    app.stop().await;
                }
            }
        )*
    };
}

mod accounts;
mod admin_api;
mod binary;
mod boot;
mod http;
mod images;
mod installer;
mod ipmi;
mod jobs;
mod jobs_processes;
mod lab;
mod ldap;
mod leases;
mod mail;
mod postgres;
mod power;
mod pxe;
mod sessions;
mod templates;
mod vms;
mod vms_libvirt;
mod vpn;
