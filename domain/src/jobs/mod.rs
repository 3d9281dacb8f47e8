//! The durable job queue. Anything that talks to infrastructure or may take
//! more than a moment runs as a job: the request answers at once, a worker
//! runs the job, and its end reaches the person who asked as an event.
//!
//! - A job is a row of `jobs`; enqueue it in the same transaction as the
//!   state change that needs it ([`Jobs::enqueue_in`]).
//! - Workers claim due jobs atomically (PostgreSQL: `FOR UPDATE SKIP
//!   LOCKED`) and hold a lease they renew while the job runs; a job whose
//!   worker died runs again once its lease expires.
//! - Transient errors retry with exponential backoff up to the kind's
//!   attempts; permanent errors fail at once.
//! - Each kind is a [`JobKind`] in its own file under `kinds/`.

pub mod events;
pub mod kinds;
mod queue;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::JobsConfig;
use crate::db::{Db, Tx};
pub use events::{Event, Events};
pub use worker::Workers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        Some(match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as people and the API see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    /// What the kind calls itself for people, e.g. "Diagnostic job".
    pub title: String,
    pub payload: Value,
    pub state: JobState,
    /// Who asked (`None` for the system, or a deleted account).
    pub requested_by: Option<i64>,
    pub requested_by_name: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Why a run did not succeed, in a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (a timeout, a busy service).
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way again (bad input, refused).
    #[error("{0}")]
    Permanent(String),
}

/// What a running job gets.
#[derive(Clone)]
pub struct JobContext {
    pub id: i64,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub requested_by: Option<i64>,
    pub db: Db,
}

/// One kind of job, in its own file: its name, its payload and how it runs.
pub trait JobKind: Send + Sync + 'static {
    /// Stored in `jobs.kind`; never rename one that may be queued.
    const KIND: &'static str;
    /// For people: "Diagnostic job", "Power on".
    const TITLE: &'static str;
    type Payload: Serialize + DeserializeOwned + Send + Sync;

    /// Attempts before giving up on transient errors (`None`: the
    /// configured `jobs.max_attempts`).
    fn max_attempts(&self) -> Option<u32> {
        None
    }

    /// The wait before attempt `attempt + 1` after a transient failure of
    /// attempt `attempt` (default: the configured exponential backoff).
    fn backoff(&self, attempt: i32, settings: &Settings) -> Duration {
        settings.backoff(attempt)
    }

    /// Jobs with the same key are not queued twice: while one is queued or
    /// running, enqueueing another returns it instead.
    fn dedup_key(&self, _payload: &Self::Payload) -> Option<String> {
        None
    }

    fn run(
        &self,
        ctx: &JobContext,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// A [`JobKind`] with its payload type erased, for the registry.
#[async_trait]
trait Handler: Send + Sync {
    fn title(&self) -> &'static str;
    fn max_attempts(&self) -> Option<u32>;
    fn backoff(&self, attempt: i32, settings: &Settings) -> Duration;
    fn dedup_key(&self, payload: &Value) -> Result<Option<String>, JobError>;
    async fn run(&self, ctx: JobContext, payload: Value) -> Result<Value, JobError>;
}

struct Typed<K>(K);

fn unreadable_payload(kind: &str, err: serde_json::Error) -> JobError {
    JobError::Permanent(format!("the {kind} job's data is not valid: {err}"))
}

#[async_trait]
impl<K: JobKind> Handler for Typed<K> {
    fn title(&self) -> &'static str {
        K::TITLE
    }

    fn max_attempts(&self) -> Option<u32> {
        self.0.max_attempts()
    }

    fn backoff(&self, attempt: i32, settings: &Settings) -> Duration {
        self.0.backoff(attempt, settings)
    }

    fn dedup_key(&self, payload: &Value) -> Result<Option<String>, JobError> {
        let payload: K::Payload =
            serde_json::from_value(payload.clone()).map_err(|e| unreadable_payload(K::KIND, e))?;
        Ok(self
            .0
            .dedup_key(&payload)
            .map(|key| format!("{}:{key}", K::KIND)))
    }

    async fn run(&self, ctx: JobContext, payload: Value) -> Result<Value, JobError> {
        let payload: K::Payload =
            serde_json::from_value(payload).map_err(|e| unreadable_payload(K::KIND, e))?;
        self.0.run(&ctx, payload).await
    }
}

/// The job kinds this build knows.
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    pub fn with<K: JobKind>(mut self, kind: K) -> Registry {
        self.handlers.insert(K::KIND, Arc::new(Typed(kind)));
        self
    }

    fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    fn title(&self, kind: &str) -> String {
        self.get(kind)
            .map(|h| h.title().to_string())
            .unwrap_or_else(|| kind.to_string())
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: Value,
    pub requested_by: Option<i64>,
    /// What it acts on: `("host", "12")`.
    pub target: Option<(String, String)>,
    /// Not before this (default: now).
    pub run_at: Option<DateTime<Utc>>,
}

impl NewJob {
    pub fn of<K: JobKind>(payload: &K::Payload, requested_by: Option<i64>) -> NewJob {
        NewJob {
            kind: K::KIND,
            payload: serde_json::to_value(payload).unwrap_or(Value::Null),
            requested_by,
            target: None,
            run_at: None,
        }
    }

    pub fn target(mut self, kind: &str, id: impl ToString) -> NewJob {
        self.target = Some((kind.to_string(), id.to_string()));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// How the queue behaves (from `[jobs]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub lease: Duration,
    pub poll: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub shutdown_grace: Duration,
    pub event_retention: Duration,
}

impl Settings {
    pub fn from_config(config: &JobsConfig) -> Settings {
        Settings {
            lease: Duration::from_secs(config.lease_seconds),
            poll: Duration::from_millis(config.poll_ms),
            max_attempts: config.max_attempts,
            backoff_base: Duration::from_millis(config.backoff_base_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_seconds),
            event_retention: Duration::from_secs(config.event_retention_hours * 3600),
        }
    }

    /// The wait after failed attempt `attempt` (1-based): base, 2×base,
    /// 4×base, … at most `backoff_max`.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// Who is asking, for the permission checks of [`Jobs`].
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: i64,
    pub admin: bool,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs this person asked for (`None`: everyone's; admins only).
    pub requested_by: Option<i64>,
    pub state: Option<JobState>,
    /// Only ids below this (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// The queue service.
#[derive(Clone)]
pub struct Jobs {
    pub(crate) db: Db,
    pub(crate) registry: Arc<Registry>,
    pub(crate) events: Events,
    pub(crate) settings: Arc<Settings>,
}

/// The event kind of job state changes.
pub const JOB_EVENT: &str = "job";

impl Jobs {
    pub fn new(db: Db, registry: Registry, events: Events, settings: Settings) -> Jobs {
        Jobs {
            db,
            registry: Arc::new(registry),
            events,
            settings: Arc::new(settings),
        }
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Enqueues in its own transaction and wakes a worker.
    pub async fn enqueue(&self, new: NewJob, now: DateTime<Utc>) -> Result<Job, JobsError> {
        let mut tx = self.db.begin().await?;
        let job = self.enqueue_in(&mut tx, new, now).await?;
        tx.commit().await?;
        self.events.job_committed();
        Ok(job)
    }

    /// Enqueues in the caller's transaction, so the job exists exactly when
    /// the state change that needs it does. After committing, call
    /// [`Events::job_committed`] (through [`Jobs::events`]) to wake a worker at once.
    /// With a deduplication key that a queued or running job already holds,
    /// returns that job.
    pub async fn enqueue_in(
        &self,
        tx: &mut Tx,
        new: NewJob,
        now: DateTime<Utc>,
    ) -> Result<Job, JobsError> {
        let handler = self.registry.get(new.kind).ok_or_else(|| {
            JobsError::Invalid(format!(
                "“{}” is not a kind of job Bootler knows.",
                new.kind
            ))
        })?;
        let dedup_key = handler
            .dedup_key(&new.payload)
            .map_err(|e| JobsError::Invalid(e.to_string()))?;
        let max_attempts = handler
            .max_attempts()
            .unwrap_or(self.settings.max_attempts)
            .max(1);
        let id = queue::insert(tx, &new, dedup_key.as_deref(), max_attempts, now).await?;
        self.events.job_due(tx).await?;
        queue::get_in(tx, id, &self.registry)
            .await?
            .ok_or_else(|| JobsError::NotFound(format!("Job {id} vanished.")))
    }

    /// One job, if `actor` may see it (theirs, or any for admins).
    pub async fn get(&self, actor: Actor, id: i64) -> Result<Job, JobsError> {
        let job = queue::get(&self.db, id, &self.registry).await?;
        match job {
            Some(job) if actor.admin || job.requested_by == Some(actor.user_id) => Ok(job),
            _ => Err(JobsError::NotFound(format!(
                "You have no job with id {id}."
            ))),
        }
    }

    /// Newest first. Someone who is not an admin only ever sees their own.
    pub async fn list(&self, actor: Actor, mut filter: JobFilter) -> Result<Vec<Job>, JobsError> {
        if !actor.admin {
            filter.requested_by = Some(actor.user_id);
        }
        filter.limit = filter.limit.clamp(1, 500);
        Ok(queue::list(&self.db, &filter, &self.registry).await?)
    }

    /// Cancels a queued job (a running one cannot be stopped half-way).
    pub async fn cancel(
        &self,
        actor: Actor,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Job, JobsError> {
        let job = self.get(actor, id).await?;
        if job.state != JobState::Queued {
            return Err(JobsError::Conflict(format!(
                "Job {id} is {}; only queued jobs can be cancelled.",
                job.state.as_str()
            )));
        }
        self.finish_by_hand(&job, JobState::Cancelled, "queued", now)
            .await
    }

    /// Runs a failed or cancelled job again from its first attempt.
    pub async fn retry(&self, actor: Actor, id: i64, now: DateTime<Utc>) -> Result<Job, JobsError> {
        let job = self.get(actor, id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Err(JobsError::Conflict(format!(
                "Job {id} is {}; only failed or cancelled jobs can be retried.",
                job.state.as_str()
            )));
        }
        let job = self
            .finish_by_hand(&job, JobState::Queued, job.state.as_str(), now)
            .await?;
        self.events.job_committed();
        Ok(job)
    }

    /// Moves `job` from `from` to `to` (cancel, retry) with its event.
    async fn finish_by_hand(
        &self,
        job: &Job,
        to: JobState,
        from: &str,
        now: DateTime<Utc>,
    ) -> Result<Job, JobsError> {
        let mut tx = self.db.begin().await?;
        let changed = queue::set_state_by_hand(&mut tx, job.id, from, to, now).await;
        let changed = match changed {
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                return Err(JobsError::Conflict(format!(
                    "An identical job is already queued or running; job {} was not retried.",
                    job.id
                )));
            }
            other => other?,
        };
        if !changed {
            return Err(JobsError::Conflict(format!(
                "Job {} changed meanwhile; reload and try again.",
                job.id
            )));
        }
        if to == JobState::Queued {
            self.events.job_due(&mut tx).await?;
        }
        let updated = queue::get_in(&mut tx, job.id, &self.registry)
            .await?
            .ok_or_else(|| JobsError::NotFound(format!("Job {} vanished.", job.id)))?;
        let events = self.record_event(&mut tx, &updated, now).await?;
        tx.commit().await?;
        self.events.committed(events);
        Ok(updated)
    }

    /// The event of a job's new state, for the person who asked.
    pub(crate) async fn record_event(
        &self,
        tx: &mut Tx,
        job: &Job,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let Some(user) = job.requested_by else {
            return Ok(Vec::new());
        };
        self.events
            .record(tx, &[user], JOB_EVENT, &event_data(job), now)
            .await
    }
}

/// What a job event carries: enough for a notification and a list row.
pub fn event_data(job: &Job) -> Value {
    serde_json::json!({
        "id": job.id,
        "kind": job.kind,
        "title": job.title,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "target_kind": job.target_kind,
        "target_id": job.target_id,
        "run_at": job.run_at,
        "finished_at": job.finished_at,
    })
}

#[cfg(test)]
mod tests;
