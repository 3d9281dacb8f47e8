//! `POST /api/v1/register` and `POST /api/v1/confirm`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use bootler_domain::accounts::Registration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

/// Registers a pending account; the confirmation link goes by mail.
pub async fn register(
    State(state): State<AppState>,
    body: Result<Json<Registration>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(form) = body?;
    let user = state.accounts.register(form, chrono::Utc::now()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "user": user,
            "message": format!(
                "Account “{}” registered. Open the link we sent to {} to activate it.",
                user.username, user.email
            ),
        })),
    ))
}

#[derive(Deserialize)]
pub struct Confirmation {
    token: String,
}

/// Activates the account of a confirmation token (from the mailed link).
pub async fn confirm(
    State(state): State<AppState>,
    body: Result<Json<Confirmation>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(Confirmation { token }) = body?;
    let user = state.accounts.confirm(&token, chrono::Utc::now()).await?;
    Ok(Json(json!({
        "user": user,
        "message": format!("Account “{}” is active: sign in.", user.username),
    })))
}

/// `GET /api/v1/me`: the caller.
pub async fn me(Caller(user): Caller) -> Json<Value> {
    Json(json!({ "user": user }))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
}

/// `POST /api/v1/tokens {"name"}` → `201 {"token": "bt_…", …}`; the secret
/// is shown this once.
pub async fn create_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(NewToken { name }) = body?;
    let (token, secret) = state
        .accounts
        .create_token(&user, &name, chrono::Utc::now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": secret,
            "id": token.id,
            "name": token.name,
            "created_at": token.created_at,
        })),
    ))
}

/// `GET /api/v1/tokens`: the caller's tokens (never their secrets).
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let tokens = state.accounts.list_tokens(&user).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let axum::extract::Path(id) =
        id.map_err(|_| ApiError::BadRequest("A token id is a number.".into()))?;
    if state.accounts.revoke_token(&user, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "You have no API token with id {id}."
        )))
    }
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/me/password {"current_password", "new_password"}` → 204.
pub async fn change_password(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body?;
    state
        .accounts
        .change_password(
            &user,
            &change.current_password,
            &change.new_password,
            None,
            chrono::Utc::now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
