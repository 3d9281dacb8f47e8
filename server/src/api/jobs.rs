//! `/api/v1/jobs`: the caller's jobs (everyone's for admins), cancel and
//! retry, and the diagnostic `noop` kind for admins.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bootler_domain::accounts::{Role, User};
use bootler_domain::jobs::kinds::noop::{MAX_SLEEP_MS, Noop, NoopPayload};
use bootler_domain::jobs::{Actor, Job, JobFilter, JobState, NewJob};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

pub fn actor(user: &User) -> Actor {
    Actor {
        user_id: user.id,
        admin: user.role == Role::Admin,
    }
}

/// `202 Accepted` with the job, its id and where to follow it.
pub fn accepted(job: &Job) -> Response {
    let url = format!("/api/v1/jobs/{}", job.id);
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "id": job.id, "url": url, "job": job })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn job_id(id: Result<Path<i64>, axum::extract::rejection::PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("A job id is a number.".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    state: Option<String>,
    /// Admins: everyone's jobs (default), or only their own with `mine=true`.
    #[serde(default)]
    mine: bool,
    before: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/jobs?state=&mine=&before=&limit=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let job_state = match params.state.as_deref() {
        None | Some("") => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "“{text}” is not a job state: use queued, running, succeeded, failed or cancelled."
            ))
        })?),
    };
    let jobs = state
        .jobs
        .list(
            actor(&user),
            JobFilter {
                requested_by: params.mine.then_some(user.id),
                state: job_state,
                before_id: params.before,
                limit: params.limit.unwrap_or(50),
            },
        )
        .await?;
    Ok(Json(json!({ "jobs": jobs })))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.get(actor(&user), job_id(id)?).await?;
    Ok(Json(json!({ "job": job })))
}

/// `POST /api/v1/jobs/{id}/cancel`: a queued job.
pub async fn cancel(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let job = state
        .jobs
        .cancel(actor(&user), job_id(id)?, chrono::Utc::now())
        .await?;
    Ok(Json(json!({ "job": job })))
}

/// `POST /api/v1/jobs/{id}/retry`: a failed or cancelled job, from its
/// first attempt → 202.
pub async fn retry(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let job = state
        .jobs
        .retry(actor(&user), job_id(id)?, chrono::Utc::now())
        .await?;
    Ok(accepted(&job))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDiagnostic {
    kind: String,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    transient: bool,
}

/// `POST /api/v1/jobs {"kind": "noop", "sleep_ms", "fail", "transient"}`
/// (admins): a diagnostic job → 202.
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<NewDiagnostic>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = body?;
    let job = start_diagnostic(
        &state,
        &user,
        new.kind.as_str(),
        new.sleep_ms,
        new.fail,
        new.transient,
    )
    .await?;
    Ok(accepted(&job))
}

/// Enqueues a diagnostic job for an admin; shared with the jobs page form.
pub async fn start_diagnostic(
    state: &AppState,
    user: &User,
    kind: &str,
    sleep_ms: u64,
    fail: bool,
    transient: bool,
) -> Result<Job, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "Only administrators start diagnostic jobs; other jobs start from what they act on (a host, a VM).".into(),
        ));
    }
    if kind != "noop" {
        return Err(ApiError::Unprocessable(format!(
            "“{kind}” cannot be started directly; the only kind here is \"noop\" (a diagnostic job)."
        )));
    }
    if sleep_ms > MAX_SLEEP_MS {
        return Err(ApiError::Unprocessable(format!(
            "sleep_ms is at most {MAX_SLEEP_MS} (10 minutes)."
        )));
    }
    let payload = NoopPayload {
        sleep_ms,
        fail,
        transient,
    };
    Ok(state
        .jobs
        .enqueue(
            NewJob::of::<Noop>(&payload, Some(user.id)),
            chrono::Utc::now(),
        )
        .await?)
}
