//! `POST /api/v1/register` and `POST /api/v1/confirm`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use bootler_domain::accounts::Registration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
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
