//! `/api/v1/hosts`: the host registry. Admins see every host; others the
//! hosts they hold.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use bootler_domain::accounts::Role;
use bootler_domain::hosts::{HostChange, HostFilter, HostState, HostsError, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

impl From<HostsError> for ApiError {
    fn from(err: HostsError) -> Self {
        match err {
            HostsError::NotFound(message) => ApiError::NotFound(message),
            HostsError::Invalid(message) => ApiError::Unprocessable(message),
            HostsError::Database(err) => ApiError::Internal(err.into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pool: Option<String>,
    state: Option<String>,
    holder: Option<String>,
    mac: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/hosts?pool=&state=&holder=&mac=&limit=50&offset=0`.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let host_state = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(HostState::parse(text).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "“{text}” is not a host state: use discovered, local, install_pending, installing, installed or failed."
            ))
        })?),
    };
    let mac = match params.mac.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(text) => Some(Mac::parse(text).map_err(ApiError::Unprocessable)?),
    };
    // Until leasing lands, admins hold everything; others see what they hold.
    let holder = if user.role == Role::Admin {
        params.holder.filter(|h| !h.is_empty())
    } else {
        Some(user.username.clone())
    };
    let (hosts, total) = state
        .hosts
        .list(&HostFilter {
            pool: params.pool.filter(|p| !p.is_empty()),
            state: host_state,
            holder,
            mac,
            limit: params.limit.unwrap_or(50),
            offset: params.offset.unwrap_or(0),
        })
        .await?;
    Ok(Json(json!({ "hosts": hosts, "total": total })))
}

/// `GET /api/v1/hosts/{id}`: the host and the newest 50 events of its
/// timeline.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::BadRequest("A host id is a number.".into()))?;
    let host = state.hosts.get(id).await?;
    let host = host
        .filter(|h| user.role == Role::Admin || h.holder.as_deref() == Some(user.username.as_str()))
        .ok_or_else(|| ApiError::NotFound(format!("There is no host {id} that you hold.")))?;
    let timeline = state.hosts.timeline(id, 50).await?;
    Ok(Json(json!({ "host": host, "timeline": timeline })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    name: Option<String>,
    interface: Option<String>,
    vars: Option<Value>,
}

/// `PUT /api/v1/hosts/{id}`: any of `name`, `interface`, `vars` (a JSON
/// object). Admins, until leasing gives hosts their holders.
pub async fn update(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Change>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::BadRequest("A host id is a number.".into()))?;
    let Json(change) = body?;
    let host = state.hosts.get(id).await?;
    let allowed = host.as_ref().is_some_and(|h| {
        user.role == Role::Admin || h.holder.as_deref() == Some(user.username.as_str())
    });
    if !allowed {
        return Err(ApiError::NotFound(format!(
            "There is no host {id} that you hold."
        )));
    }
    let host = state
        .hosts
        .update(
            id,
            HostChange {
                name: change.name,
                interface: change.interface,
                vars: change.vars,
            },
            &user.username,
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({ "host": host })))
}
