use std::sync::Arc;

use axum::extract::FromRef;
use bootler_domain::accounts::Accounts;
use bootler_domain::hosts::Hosts;
use bootler_domain::jobs::Jobs;
use bootler_domain::templates::Templates;
use bootler_domain::{Config, Db};
use leptos::config::LeptosOptions;

use crate::metrics::Metrics;

/// What every handler can reach: one pointer, cheap to clone (axum clones
/// it for every extractor and middleware of every request).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub accounts: Accounts,
    pub jobs: Jobs,
    pub hosts: Hosts,
    pub templates: Templates,
    /// Seals BMC passwords at rest.
    pub secrets: bootler_domain::power::sealed::SecretBox,
    /// Reads power state (the poll, the connection test).
    pub power: bootler_domain::jobs::kinds::power::PowerJob,
    /// Virtual machines: the records and their limits…
    pub instances: bootler_domain::vms::instances::Instances,
    /// …and what acts on the backend.
    pub vms: bootler_domain::jobs::kinds::vm::VmJob,
    /// The boot image store (`/images/`).
    pub images: bootler_domain::images::ImageStore,
    /// VPN sign-ins, sessions, profiles.
    pub vpn: bootler_domain::vpn::Vpn,
    /// How power-ons are paced per pool.
    pub pace: bootler_domain::hosts::power::Pace,
    /// Turns true when the server is shutting down: long-lived connections
    /// (WebSockets) close so the graceful shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub leptos: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
