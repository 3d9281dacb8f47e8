//! `/api/v1/templates`: global templates (admins) and private ones, their
//! versions, and a preview rendered for a chosen host.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bootler_domain::accounts::{Role, User};
use bootler_domain::templates::{Actor, Draft, Kind, TemplatesError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

impl From<TemplatesError> for ApiError {
    fn from(err: TemplatesError) -> Self {
        match err {
            TemplatesError::NotFound(m) => ApiError::NotFound(m),
            TemplatesError::Forbidden(m) => ApiError::Forbidden(m),
            TemplatesError::Conflict(m) => ApiError::Conflict(m),
            TemplatesError::Invalid(m) => ApiError::Unprocessable(m),
            TemplatesError::Database(err) => ApiError::Internal(err.into()),
        }
    }
}

fn actor(user: &User) -> Actor {
    Actor {
        user_id: user.id,
        admin: user.role == Role::Admin,
    }
}

fn id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("A template id is a number.".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    name: Option<String>,
    kind: Option<String>,
    description: Option<String>,
    body: Option<String>,
    /// `PUT`: the version the change was made on (409 if it is older).
    version: Option<i32>,
    /// Admins: a template of their own instead of a global one.
    #[serde(default)]
    private: bool,
}

impl Body {
    fn draft(self) -> Result<(Draft, bool), ApiError> {
        let kind = match self.kind.as_deref() {
            None => None,
            Some(text) => Some(Kind::parse(text).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "“{text}” is not a kind of template: use \"system\" or \"unattended\"."
                ))
            })?),
        };
        Ok((
            Draft {
                name: self.name,
                kind,
                description: self.description,
                body: self.body,
                expected_version: self.version,
            },
            self.private,
        ))
    }
}

/// `GET /api/v1/templates`: global ones and the caller's own.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let templates = state.templates.list(actor(&user)).await?;
    Ok(Json(json!({ "templates": templates })))
}

/// `POST /api/v1/templates {"name", "kind", "body", "description"?}` → 201.
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let (draft, private) = body.draft()?;
    let template = state
        .templates
        .create(actor(&user), draft, private, chrono::Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "template": template }))))
}

/// `GET /api/v1/templates/{id}` with its versions.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    template: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = id(template)?;
    let template = state.templates.get(actor(&user), id).await?;
    let versions = state.templates.versions(actor(&user), id).await?;
    Ok(Json(json!({ "template": template, "versions": versions })))
}

/// `PUT /api/v1/templates/{id}`: any of `name`, `description`, `body`.
pub async fn update(
    State(state): State<AppState>,
    Caller(user): Caller,
    template: Result<Path<i64>, PathRejection>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = id(template)?;
    let Json(body) = body?;
    let (draft, _) = body.draft()?;
    let template = state
        .templates
        .update(actor(&user), id, draft, chrono::Utc::now())
        .await?;
    Ok(Json(json!({ "template": template })))
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    template: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    state.templates.delete(actor(&user), id(template)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    host: i64,
}

/// `POST /api/v1/templates/{id}/preview {"host": id}` → `{"output"}`, or
/// 422 with the render error (template, line, reason).
pub async fn preview(
    State(state): State<AppState>,
    Caller(user): Caller,
    template: Result<Path<i64>, PathRejection>,
    body: Result<Json<Preview>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = id(template)?;
    let Json(Preview { host }) = body?;
    let template = state.templates.get(actor(&user), id).await?;
    let host = state
        .hosts
        .controlled(host, &super::hosts::actor(&user))
        .await?;
    // The holder's data (or whoever marked it); else the caller's.
    let output = state
        .hosts
        .preview(&host, &template.name, &template.body, Some(user.id))
        .await?
        .map_err(|err| ApiError::Unprocessable(err.to_string()))?;
    Ok(Json(json!({ "output": output })))
}
