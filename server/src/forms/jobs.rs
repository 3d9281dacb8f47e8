//! The forms of `/jobs`: retry, cancel, and (admins) a diagnostic job.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use serde::Deserialize;

use super::{signed_in, to};
use crate::api::jobs::{actor, start_diagnostic};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn id(text: &str) -> Option<i64> {
    text.parse().ok()
}

fn failed(err: ApiError) -> Redirect {
    let message = match err {
        ApiError::Internal(_) => {
            "Something went wrong on our side; nothing was changed. Please try again.".to_string()
        }
        other => other.to_string(),
    };
    to("/jobs", &[("err", message)])
}

pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, "/jobs").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Some(job) = id(&job) else {
        return to("/jobs", &[("err", "There is no such job.")]);
    };
    match state
        .jobs
        .retry(actor(&session.user), job, chrono::Utc::now())
        .await
    {
        Ok(job) => to(
            "/jobs",
            &[(
                "notice",
                format!("{} #{} is queued again.", job.title, job.id),
            )],
        ),
        Err(err) => failed(err.into()),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, "/jobs").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Some(job) = id(&job) else {
        return to("/jobs", &[("err", "There is no such job.")]);
    };
    match state
        .jobs
        .cancel(actor(&session.user), job, chrono::Utc::now())
        .await
    {
        Ok(job) => to(
            "/jobs",
            &[(
                "notice",
                format!("{} #{} was cancelled.", job.title, job.id),
            )],
        ),
        Err(err) => failed(err.into()),
    }
}

#[derive(Deserialize)]
pub struct DiagnosticForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sleep_ms: String,
    #[serde(default)]
    fail: Option<String>,
}

pub async fn diagnostic(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<DiagnosticForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/jobs",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/jobs").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let sleep_ms = form.sleep_ms.trim();
    let Ok(sleep_ms) = (if sleep_ms.is_empty() {
        Ok(0)
    } else {
        sleep_ms.parse::<u64>()
    }) else {
        return to(
            "/jobs",
            &[("err", "The wait is a whole number of milliseconds.")],
        );
    };
    match start_diagnostic(
        &state,
        &session.user,
        "noop",
        sleep_ms,
        form.fail.is_some(),
        false,
    )
    .await
    {
        Ok(job) => to(
            "/jobs",
            &[(
                "notice",
                format!(
                    "Work sent: diagnostic job #{} is queued. Reload this page to see how it ended (with JavaScript, it updates by itself).",
                    job.id
                ),
            )],
        ),
        Err(err) => failed(err),
    }
}
