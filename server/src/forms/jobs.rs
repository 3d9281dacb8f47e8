//! The forms of `/jobs`: retry, cancel, and (admins) a diagnostic job.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use serde::Deserialize;

use super::{general_message, signed_in, to};
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

fn failed(err: impl Into<ApiError>) -> Redirect {
    to("/jobs", &[("err", general_message(err))])
}

#[derive(Clone, Copy)]
enum Action {
    Retry,
    Cancel,
}

pub async fn retry(
    state: State<AppState>,
    headers: HeaderMap,
    job: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, job, form, Action::Retry).await
}

pub async fn cancel(
    state: State<AppState>,
    headers: HeaderMap,
    job: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, job, form, Action::Cancel).await
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
    action: Action,
) -> Redirect {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, "/jobs").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Some(job) = id(&job) else {
        return to("/jobs", &[("err", "There is no such job.")]);
    };
    let actor = actor(&session.user);
    let now = chrono::Utc::now();
    let (result, done) = match action {
        Action::Retry => (state.jobs.retry(actor, job, now).await, "is queued again"),
        Action::Cancel => (state.jobs.cancel(actor, job, now).await, "was cancelled"),
    };
    match result {
        Ok(job) => to(
            "/jobs",
            &[("notice", format!("{} #{} {done}.", job.title, job.id))],
        ),
        Err(err) => failed(err),
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
