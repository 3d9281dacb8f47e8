//! `/api/v1/vpn`: one's VPN access, profile and sessions; for
//! administrators, everyone's sessions, who is connected, and
//! disconnecting them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bootler_domain::accounts::{Role, User};
use bootler_domain::vpn::{VpnAccess, VpnError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

impl From<VpnError> for ApiError {
    fn from(err: VpnError) -> Self {
        match err {
            VpnError::Disabled => ApiError::NotFound(err.to_string()),
            VpnError::Forbidden(message) => ApiError::Forbidden(message),
            VpnError::NotFound(message) => ApiError::NotFound(message),
            VpnError::Setup(message) => {
                tracing::warn!(%message, "VPN setup problem");
                ApiError::Unavailable(format!(
                    "The VPN is not set up right: {}. Ask the lab's administrator.",
                    message.trim_end_matches('.')
                ))
            }
            VpnError::Unavailable(message) => ApiError::Unavailable(message),
            VpnError::Account(err) => err.into(),
            VpnError::Database(err) => ApiError::Internal(err.into()),
        }
    }
}

fn admin(user: &User, what: &str) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("Only administrators {what}.")))
    }
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.vpn.enabled() {
        Ok(())
    } else {
        Err(VpnError::Disabled.into())
    }
}

/// `GET /api/v1/vpn` → the lab's VPN and one's own access and sessions.
pub async fn overview(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    enabled(&state)?;
    let config = state.vpn.config();
    let sessions = state.vpn.sessions(Some(user.id), 20).await?;
    Ok(Json(json!({
        "server": state.vpn.server_address(),
        "port": config.port,
        "proto": config.proto,
        "networks": config.networks,
        "access": match config.access { VpnAccess::On => "on", VpnAccess::Approval => "approval" },
        "me": {
            "username": user.username,
            "vpn_enabled": user.vpn_enabled,
            "access": state.vpn.access_of(&user),
        },
        "profile_url": "/api/v1/vpn/profile",
        "sessions": sessions,
    })))
}

/// `GET /api/v1/vpn/profile` → one's `.ovpn` file.
pub async fn profile(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Response, ApiError> {
    let text = state.vpn.client_profile(&user).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-openvpn-profile".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    state.vpn.profile_file_name(&user)
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionParams {
    limit: Option<i64>,
}

/// `GET /api/v1/vpn/sessions[?limit=]` (administrators) → everyone's
/// recent sessions, newest first.
pub async fn sessions(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<SessionParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    enabled(&state)?;
    admin(&user, "see everyone's VPN sessions")?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sessions = state
        .vpn
        .sessions(None, params.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "sessions": sessions })))
}

/// `GET /api/v1/vpn/connected` (administrators) → who is connected now,
/// from OpenVPN's management interface.
pub async fn connected(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    enabled(&state)?;
    admin(&user, "see who is connected")?;
    Ok(Json(match state.vpn.connected_now().await? {
        Some(clients) => json!({ "management": true, "connected": clients }),
        None => json!({
            "management": false,
            "connected": [],
            "note": "OpenVPN's management interface is not configured (vpn.management): see the sessions instead.",
        }),
    }))
}

/// `DELETE /api/v1/vpn/connected/{username}` (administrators) → ends the
/// person's sessions now.
pub async fn disconnect(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    enabled(&state)?;
    admin(&user, "disconnect people")?;
    let killed = state.vpn.disconnect(&username).await?;
    Ok(Json(
        json!({ "username": username, "disconnected": killed }),
    ))
}

/// After an administrator turned someone's VPN access (or account) off:
/// their open sessions end too, where Bootler can reach OpenVPN.
pub async fn end_sessions_of(state: &AppState, username: &str) {
    if !state.vpn.enabled() || state.vpn.config().management.is_none() {
        return;
    }
    if let Err(err) = state.vpn.disconnect(username).await {
        tracing::warn!(%username, error = %err, "could not end the VPN sessions of someone whose access ended");
    }
}
