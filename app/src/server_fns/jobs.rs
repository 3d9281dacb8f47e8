//! The jobs page's data, and starting a diagnostic job from it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub title: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub requested_by: Option<String>,
    /// "host 12", "user ana"…
    pub target: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created: String,
    pub finished: Option<String>,
    /// When a queued job that failed before runs again.
    pub next_run: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsView {
    pub jobs: Vec<JobView>,
    pub admin: bool,
    /// Whether this lists everyone's jobs (admins) or the caller's.
    pub everyone: bool,
    pub csrf: String,
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "jobs_overview")]
pub async fn jobs_overview(everyone: bool) -> Result<Option<JobsView>, ServerFnError> {
    use super::account::when;
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::jobs::{Actor, JobFilter, JobState, Jobs};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let jobs = use_context::<Jobs>().ok_or_else(|| ServerFnError::new("jobs service missing"))?;
    let user = session.user;
    let admin = user.role == Role::Admin;
    let everyone = everyone && admin;
    let now = chrono::Utc::now();
    let list = jobs
        .list(
            Actor {
                user_id: user.id,
                admin,
            },
            JobFilter {
                requested_by: (!everyone).then_some(user.id),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(Some(JobsView {
        jobs: list
            .into_iter()
            .map(|job| JobView {
                next_run: (job.state == JobState::Queued && job.attempts > 0 && job.run_at > now)
                    .then(|| when(job.run_at)),
                id: job.id,
                title: job.title,
                state: job.state.as_str().to_string(),
                requested_by: job.requested_by_name,
                target: match (job.target_kind, job.target_id) {
                    (Some(kind), Some(id)) => Some(format!("{kind} {id}")),
                    _ => None,
                },
                attempts: job.attempts,
                max_attempts: job.max_attempts,
                created: when(job.created_at),
                finished: job.finished_at.map(when),
                error: job.error,
            })
            .collect(),
        admin,
        everyone,
        csrf: session.csrf_token,
    }))
}

/// Starts a diagnostic job (admins) from the hydrated page; the id of the
/// queued job. The plain form posts to `/jobs/diagnostic` instead.
#[server(prefix = "/sfn", endpoint = "start_diagnostic_job")]
pub async fn start_diagnostic_job(
    csrf: String,
    sleep_ms: u64,
    fail: bool,
) -> Result<i64, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::jobs::kinds::noop::{MAX_SLEEP_MS, Noop, NoopPayload};
    use bootler_domain::jobs::{Jobs, NewJob};
    let Some(session) = request_session().await? else {
        return Err(ServerFnError::new("Your session has ended; sign in again."));
    };
    if session.csrf_token != csrf {
        return Err(ServerFnError::new(
            "This page is stale; reload it and try again.",
        ));
    }
    if session.user.role != Role::Admin {
        return Err(ServerFnError::new(
            "Only administrators start diagnostic jobs.",
        ));
    }
    if sleep_ms > MAX_SLEEP_MS {
        return Err(ServerFnError::new(format!(
            "A diagnostic job sleeps at most {MAX_SLEEP_MS} ms."
        )));
    }
    let jobs = use_context::<Jobs>().ok_or_else(|| ServerFnError::new("jobs service missing"))?;
    let payload = NoopPayload {
        sleep_ms,
        fail,
        transient: false,
    };
    let job = jobs
        .enqueue(
            NewJob::of::<Noop>(&payload, Some(session.user.id)),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(job.id)
}
