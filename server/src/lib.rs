//! The `bootler` server: one axum router for the pages (Leptos SSR), the REST
//! API, health and metrics, and static files.

pub mod api;
pub mod assets;
pub mod boot;
pub mod cli;
pub mod error;
pub mod forms;
pub mod health;
pub mod images;
pub mod metrics;
pub mod services;
pub mod session;
pub mod state;
pub mod vpn_hooks;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use bootler_domain::{Config, Db};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(bootler_app::App);
    let site_dir = state.config.site_dir.clone();
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::export))
        .route("/ws", get(ws::upgrade))
        .nest("/api/v1", api::router())
        .merge(boot::router(state.clone()))
        .merge(forms::router(state.clone()))
        .route(
            "/sfn/{*fn_name}",
            axum::routing::post(server_fn).get(server_fn),
        )
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || provide_server_context(&state)
            },
            {
                let options = state.leptos.clone();
                move || bootler_app::shell(options.clone())
            },
        );
    assets::add_to(router, &site_dir, state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What server functions and pages can `use_context` on the server.
pub(crate) fn provide_server_context(state: &AppState) {
    provide_context(state.db.clone());
    provide_context(state.config.clone());
    provide_context(state.accounts.clone());
    provide_context(state.jobs.clone());
    provide_context(state.hosts.clone());
    provide_context(state.templates.clone());
    provide_context(state.instances.clone());
    provide_context(state.vms.clone());
    provide_context(state.vpn.clone());
}

/// Leptos server functions (`/sfn/<name>`), with the same context as pages.
async fn server_fn(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    leptos_axum::handle_server_fns_with_context(move || provide_server_context(&state), request)
        .await
        .into_response()
}

/// A server bound to its port, ready to run.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Opens (and migrates) the database and binds the listening socket.
    /// `listen` may use port 0; [`Server::local_addr`] tells the real one.
    pub async fn bind(mut config: Config) -> anyhow::Result<Server> {
        let db = cli::open_database(&config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Links in mails need the real port when `listen` asked for port 0.
        if config.base_url.is_none() {
            config.base_url = Some(format!("http://{addr}"));
        }
        let accounts = services::accounts(&config, &db)?;
        if accounts.count_admins().await? == 0 {
            tracing::warn!(
                "no administrator yet: create one with `bootler user add --admin <username> --email <address>`"
            );
        }
        let secrets = services::secrets(&config);
        let events = bootler_domain::jobs::Events::new(db.clone());
        let instances = services::instances(&config, &db);
        let vms = services::vms(&config, &db, &events, &instances)?;
        let jobs = services::jobs(&config, &db, events, &secrets, vms.clone());
        let hosts = services::hosts(&config, &db, jobs.events().clone())?;
        let templates = bootler_domain::templates::Templates::new(db.clone());
        // Another replica starting at the same moment may win the race;
        // the templates are there either way.
        match templates.seed_shipped(chrono::Utc::now()).await {
            Ok(added) if !added.is_empty() => {
                tracing::info!(templates = %added.join(", "), "added the shipped templates");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not add the shipped templates"),
        }
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let pace = services::pace(&config);
        let power = services::power(&config, &db, jobs.events(), &secrets);
        let vpn = services::vpn(&config, &db, &accounts);
        let images = bootler_domain::images::ImageStore::new(config.images_dir());
        images.prepare()?;
        let state = AppState::new(state::Services {
            leptos: leptos_options(&config, addr),
            config: Arc::new(config),
            db,
            accounts,
            jobs,
            hosts,
            templates,
            pace,
            power,
            instances,
            vms,
            vpn,
            images,
            secrets,
            stopping,
            metrics: metrics::shared(),
        });
        Ok(Server {
            listener,
            state,
            stopping: stopping_tx,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Serves until `shutdown` completes, then lets open requests finish.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        let db = self.state.db.clone();
        let workers = self
            .state
            .jobs
            .start_workers(self.state.config.jobs.workers);
        tracing::info!(
            database = db.engine(),
            site = %self.state.config.site_dir.display(),
            "listening on http://{addr}"
        );
        let hosts = self.state.hosts.clone();
        let watchdog = tokio::spawn(watchdog(
            self.state.hosts.clone(),
            self.state.stopping.clone(),
        ));
        let leases = tokio::spawn(lease_sweeper(
            self.state.hosts.clone(),
            self.state.accounts.mailer().clone(),
            std::time::Duration::from_secs(self.state.config.leases.sweep_seconds),
            self.state.stopping.clone(),
        ));
        let poll = tokio::spawn(power_poll(
            self.state.power.clone(),
            self.state.config.power.poll_seconds,
            self.state.stopping.clone(),
        ));
        let reconcile = tokio::spawn(vm_reconciler(
            self.state.vms.clone(),
            self.state.config.vm.reconcile_seconds,
            self.state.stopping.clone(),
        ));
        let stopping = self.stopping;
        let served = axum::serve(
            self.listener,
            router(self.state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping.send(true);
        })
        .await;
        // Running jobs finish (for a bounded time) before the database closes.
        workers.shutdown().await;
        let _ = watchdog.await;
        let _ = leases.await;
        let _ = poll.await;
        let _ = reconcile.await;
        // The boot requests' timeline rows still queued.
        hosts.flush().await;
        db.close().await;
        served?;
        Ok(())
    }
}

/// Fails installs that ran past `boot.install_timeout_minutes`, once a
/// minute (every replica may: each change is guarded by the state).
async fn watchdog(
    hosts: bootler_domain::hosts::Hosts,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match hosts.watchdog(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(failed = n, "installs ran past boot.install_timeout_minutes"),
            Err(err) => tracing::warn!(error = %err, "install watchdog"),
        }
    }
}

/// Reads the power state of nodes with a BMC every `every_seconds` (0:
/// never), one node at a time; replicas share the work.
async fn power_poll(
    power: bootler_domain::jobs::kinds::power::PowerJob,
    every_seconds: u64,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    if every_seconds == 0 {
        return;
    }
    let every = std::time::Duration::from_secs(every_seconds);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        tokio::select! {
            result = power.poll(every, chrono::Utc::now()) => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "power state poll");
                }
            }
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// Compares Bootler's VMs with the backend every `every_seconds` (0:
/// never), and learns the backend's capacity.
async fn vm_reconciler(
    vms: bootler_domain::jobs::kinds::vm::VmJob,
    every_seconds: u64,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    if every_seconds == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(every_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        tokio::select! {
            result = vms.reconcile() => match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(changed = n, "VMs reconciled with the backend"),
                Err(err) => tracing::warn!(error = %err, "VM reconcile"),
            },
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// Ends leases that ran out and reminds holders of the ones ending soon
/// (every replica may: each change is guarded), mailing what it tells.
async fn lease_sweeper(
    hosts: bootler_domain::hosts::Hosts,
    mailer: bootler_domain::mail::SharedMailer,
    every: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let notices = match hosts.sweep_leases(chrono::Utc::now()).await {
            Ok(notices) => notices,
            Err(err) => {
                tracing::warn!(error = %err, "lease sweep");
                continue;
            }
        };
        for notice in notices {
            let mail = bootler_domain::mail::Mail {
                to: notice.email.clone(),
                subject: notice.subject.clone(),
                text: notice.body.clone(),
            };
            if let Err(err) = mailer.send(&mail).await {
                tracing::warn!(error = %err, to = %notice.username, subject = %notice.subject, "could not mail a lease notice");
            }
        }
    }
}

/// `bootler serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    Server::bind(config).await?.run(shutdown_signal()).await
}

fn leptos_options(config: &Config, addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("bootler")
        .site_root(config.site_dir.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
