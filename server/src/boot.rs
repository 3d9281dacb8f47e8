//! The boot endpoints nodes call (no authentication; plain text; limited to
//! `boot.allowed_networks` when set). Answers to iPXE start with `#!ipxe`.
//!
//! - `GET /boot.ipxe`: the entry script DHCP hands out.
//! - `GET /boot/{mac}?hostname=…`: registers or refreshes the host; its
//!   script.
//! - `GET /boot/{mac}/unattended`, `GET|POST /boot/{mac}/done`: the
//!   installer's answer file and its "finished" call.
//! - `GET /images/{name}/{file}`: the boot image store (see `images`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bootler_domain::hosts::{HostsError, Mac, Served, scripts};

use crate::state::AppState;

/// The longest query string accepted (`?hostname=` of at most 253 bytes,
/// URL-encoded).
const MAX_QUERY: usize = 1024;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/boot.ipxe", get(entry))
        .route("/boot/{mac}", get(boot))
        .route("/boot/{mac}/unattended", get(unattended))
        .route("/boot/{mac}/done", get(done).post(done))
        .route("/images/{name}/{*file}", get(crate::images::serve))
        .layer(axum::middleware::from_fn_with_state(
            state,
            provisioning_only,
        ))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.into(),
    )
        .into_response()
}

/// Refuses callers outside the provisioning networks.
async fn provisioning_only(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !state.hosts.allowed(peer.ip()) {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "{} is not on a provisioning network (boot.allowed_networks); the boot endpoints answer only there.\n",
                peer.ip()
            ),
        );
    }
    next.run(request).await
}

async fn entry(State(state): State<AppState>) -> Response {
    text(
        StatusCode::OK,
        scripts::entry(&state.config.boot_base_url()),
    )
}

fn parse_mac(text: &str) -> Result<Mac, Box<Response>> {
    Mac::parse(text).map_err(|reason| Box::new(text_error(StatusCode::BAD_REQUEST, reason)))
}

fn text_error(status: StatusCode, reason: String) -> Response {
    text(status, format!("{reason}\n"))
}

/// `hostname` from the query string, `Ok(None)` if absent or empty.
fn hostname(query: Option<&str>) -> Result<Option<String>, Box<Response>> {
    let Some(query) = query else {
        return Ok(None);
    };
    if query.len() > MAX_QUERY {
        return Err(Box::new(text_error(
            StatusCode::BAD_REQUEST,
            format!(
                "The query string is too long ({} bytes, at most {MAX_QUERY}).",
                query.len()
            ),
        )));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
        Box::new(text_error(
            StatusCode::BAD_REQUEST,
            "The query string is not valid (expected ?hostname=<name>).".into(),
        ))
    })?;
    Ok(pairs
        .into_iter()
        .find(|(key, _)| key == "hostname")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty()))
}

async fn boot(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(mac): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mac = match parse_mac(&mac) {
        Ok(mac) => mac,
        Err(response) => return *response,
    };
    let hostname = match hostname(query.as_deref()) {
        Ok(hostname) => hostname,
        Err(response) => return *response,
    };
    match state
        .hosts
        .boot(mac, hostname.as_deref(), peer.ip(), chrono::Utc::now())
        .await
    {
        Ok(answer) => text(StatusCode::OK, answer.script),
        Err(err) => {
            tracing::error!(%mac, error = %err, "boot request failed");
            // The node should still boot: from its disk.
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "#!ipxe\necho Bootler cannot answer right now; booting from the local disk.\nexit\n",
            )
        }
    }
}

async fn unattended(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(mac): Path<String>,
) -> Response {
    let mac = match parse_mac(&mac) {
        Ok(mac) => mac,
        Err(response) => return *response,
    };
    installer_answer(
        mac,
        "unattended",
        state
            .hosts
            .unattended(mac, peer.ip(), chrono::Utc::now())
            .await,
    )
}

async fn done(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(mac): Path<String>,
) -> Response {
    let mac = match parse_mac(&mac) {
        Ok(mac) => mac,
        Err(response) => return *response,
    };
    installer_answer(
        mac,
        "done",
        state.hosts.done(mac, peer.ip(), chrono::Utc::now()).await,
    )
}

/// The answer to an installer's call (`kind`): its text, or a plain-text
/// reason: 404 for an unknown MAC, 409 when no install runs, 422 when the
/// template does not render.
fn installer_answer(mac: Mac, kind: &str, result: Result<Served, HostsError>) -> Response {
    match result {
        Ok(served) => text(StatusCode::OK, served.text),
        Err(HostsError::NotFound(reason)) => text_error(StatusCode::NOT_FOUND, reason),
        Err(HostsError::Conflict(reason)) => text_error(StatusCode::CONFLICT, reason),
        Err(HostsError::Render(reason)) => text_error(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(HostsError::Invalid(reason) | HostsError::Forbidden(reason)) => {
            text_error(StatusCode::BAD_REQUEST, reason)
        }
        Err(HostsError::Unavailable(reason)) => {
            tracing::error!(%mac, kind, error = %reason, "installer request failed");
            text_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Bootler cannot answer right now; try again.".into(),
            )
        }
        Err(HostsError::Database(err)) => {
            tracing::error!(%mac, kind, error = %err, "installer request failed");
            text_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Bootler cannot answer right now; try again.".into(),
            )
        }
    }
}
