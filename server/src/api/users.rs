//! Account administration under `/api/v1/users` (admins only).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bootler_domain::accounts::{Role, Status, UserQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    search: String,
    status: Option<String>,
    role: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn status(text: &str) -> Result<Status, ApiError> {
    Status::parse(text).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "“{text}” is not an account status: use pending, active or disabled."
        ))
    })
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::Unprocessable(format!("“{text}” is not a role: use admin or user."))
    })
}

/// `GET /api/v1/users?search=&status=&role=&limit=&offset=`.
pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = UserQuery {
        search: params.search,
        status: params.status.as_deref().map(status).transpose()?,
        role: params.role.as_deref().map(role).transpose()?,
        limit: params.limit.unwrap_or(50),
        offset: params.offset.unwrap_or(0),
    };
    let list = state.accounts.list_users(&actor, &query).await?;
    Ok(Json(json!(list)))
}

/// `GET /api/v1/users/{username}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = state.accounts.user_by_name(&actor, &username).await?;
    Ok(Json(json!({ "user": user })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    status: Option<String>,
    role: Option<String>,
    vpn: Option<bool>,
}

/// `PATCH /api/v1/users/{username} {"status": "active"|"disabled",
/// "role": "admin"|"user", "vpn": true|false}`. Turning the account or its
/// VPN access off also ends its open VPN sessions.
pub async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(username): Path<String>,
    body: Result<Json<Change>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(change) = body?;
    if change.status.is_none() && change.role.is_none() && change.vpn.is_none() {
        return Err(ApiError::Unprocessable(
            "Nothing to change: send \"status\", \"role\" or \"vpn\".".into(),
        ));
    }
    // Both checked before either is applied.
    let new_status = change.status.as_deref().map(status).transpose()?;
    let new_role = change.role.as_deref().map(role).transpose()?;
    let mut user = state.accounts.user_by_name(&actor, &username).await?;
    if let Some(new_status) = new_status {
        user = match new_status {
            Status::Active => state.accounts.set_enabled(&actor, &username, true).await?,
            Status::Disabled => state.accounts.set_enabled(&actor, &username, false).await?,
            Status::Pending => {
                return Err(ApiError::Unprocessable(
                    "An account cannot be made pending again; disable it instead.".into(),
                ));
            }
        };
    }
    if let Some(new_role) = new_role {
        user = state.accounts.set_role(&actor, &username, new_role).await?;
    }
    if let Some(vpn) = change.vpn {
        user = state.accounts.set_vpn(&actor, &username, vpn).await?;
    }
    if change.vpn == Some(false) || new_status == Some(Status::Disabled) {
        super::vpn::end_sessions_of(&state, &user.username).await;
    }
    Ok(Json(json!({ "user": user })))
}

/// `POST /api/v1/users/{username}/approve`: activates a pending registration.
pub async fn approve(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .accounts
        .approve(&actor, &username, chrono::Utc::now())
        .await?;
    Ok(Json(json!({ "user": user })))
}

/// `DELETE /api/v1/users/{username}`: deletes a pending registration.
pub async fn delete_pending(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_pending(&actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/groups`: every group with its members (pool access names
/// them as `@name`), and whether they can be changed here.
pub async fn groups(
    State(state): State<AppState>,
    Caller(_user): Caller,
) -> Result<Json<Value>, ApiError> {
    let groups = state.accounts.groups().await?;
    Ok(Json(json!({
        "groups": groups,
        "editable": state.accounts.groups_editable(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    members: Vec<String>,
}

/// `PUT /api/v1/groups/{name} {"members": ["ana", …]}`: replaces a group's
/// members (admins; built-in directory only).
pub async fn set_group(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    body: Result<Json<GroupBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let group = state
        .accounts
        .set_group(&actor, &name, &body.members)
        .await?;
    Ok(Json(json!({ "group": group })))
}

/// `DELETE /api/v1/groups/{name}`: removes every member (and so the group).
pub async fn delete_group(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.set_group(&actor, &name, &[]).await?;
    Ok(StatusCode::NO_CONTENT)
}
