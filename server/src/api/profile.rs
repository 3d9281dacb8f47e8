//! The caller's own profile: `PATCH /api/v1/me` and SSH keys under
//! `/api/v1/me/keys`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    display_name: String,
}

/// `PATCH /api/v1/me {"display_name"}` → the updated user.
pub async fn update_me(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<ProfileChange>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(change) = body?;
    let user = state
        .accounts
        .set_display_name(&user, &change.display_name)
        .await?;
    Ok(Json(json!({ "user": user })))
}

/// `GET /api/v1/me/keys`.
pub async fn list_keys(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let keys = state.accounts.list_ssh_keys(&user).await?;
    Ok(Json(json!({ "keys": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    name: Option<String>,
    public_key: String,
}

/// `POST /api/v1/me/keys {"public_key", "name"?}` → 201 with the key.
pub async fn add_key(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(new) = body?;
    let key = state
        .accounts
        .add_ssh_key(
            &user,
            new.name.as_deref(),
            &new.public_key,
            chrono::Utc::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "key": key }))))
}

/// `DELETE /api/v1/me/keys/{id}` → 204.
pub async fn delete_key(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::BadRequest("A key id is a number.".into()))?;
    if state.accounts.delete_ssh_key(&user, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "You have no SSH key with id {id}."
        )))
    }
}
