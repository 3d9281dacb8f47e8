//! The SQL of the queue. Every change to a running job checks that the
//! caller still holds it (`lease_owner` and `attempts` as claimed), so a
//! worker that lost its lease can never finish a job a second time.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Job, JobFilter, JobState, NewJob, Registry};
use crate::db::{Db, Tx};

/// `SELECT` of a job with its requester's username.
macro_rules! select_job {
    ($rest:literal) => {
        concat!(
            "SELECT j.id, j.kind, j.payload, j.state, j.requested_by, u.username AS requested_by_name, \
             j.target_kind, j.target_id, j.attempts, j.max_attempts, j.run_at, j.result, j.error, \
             j.created_at, j.started_at, j.finished_at, j.updated_at \
             FROM jobs j LEFT JOIN users u ON u.id = j.requested_by ",
            $rest
        )
    };
}

/// The columns of a job for `RETURNING` (no join there: the requester's
/// name is left out; events do not need it).
macro_rules! returning_job {
    () => {
        " RETURNING id, kind, payload, state, requested_by, CAST(NULL AS TEXT) AS requested_by_name, \
         target_kind, target_id, attempts, max_attempts, run_at, result, error, \
         created_at, started_at, finished_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    state: String,
    requested_by: Option<i64>,
    requested_by_name: Option<String>,
    target_kind: Option<String>,
    target_id: Option<String>,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    result: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl JobRow {
    fn into_job(self, registry: &Registry) -> Job {
        Job {
            title: registry.title(&self.kind),
            id: self.id,
            kind: self.kind,
            payload: serde_json::from_str(&self.payload).unwrap_or(Value::Null),
            state: JobState::parse(&self.state).unwrap_or(JobState::Failed),
            requested_by: self.requested_by,
            requested_by_name: self.requested_by_name,
            target_kind: self.target_kind,
            target_id: self.target_id,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            result: self.result.and_then(|r| serde_json::from_str(&r).ok()),
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            updated_at: self.updated_at,
        }
    }
}

/// Inserts a queued job; with a deduplication key already held by a
/// queued or running job, returns that job's id instead.
pub(super) async fn insert(
    tx: &mut Tx,
    new: &NewJob,
    dedup_key: Option<&str>,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let (target_kind, target_id) = match &new.target {
        Some((kind, id)) => (Some(kind.as_str()), Some(id.as_str())),
        None => (None, None),
    };
    let payload = new.payload.to_string();
    let run_at = new.run_at.unwrap_or(now);
    let inserted: Option<i64> = crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, state, requested_by, target_kind, target_id, dedup_key, \
             attempts, max_attempts, run_at, created_at, updated_at) \
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, 0, $7, $8, $9, $9) \
             ON CONFLICT (dedup_key) WHERE state IN ('queued', 'running') DO NOTHING \
             RETURNING id",
        )
        .bind(new.kind)
        .bind(&payload)
        .bind(new.requested_by)
        .bind(target_kind)
        .bind(target_id)
        .bind(dedup_key)
        .bind(max_attempts as i32)
        .bind(run_at)
        .bind(now)
        .fetch_optional(conn)
        .await
    })?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT id FROM jobs WHERE dedup_key = $1 AND state IN ('queued', 'running')",
        )
        .bind(dedup_key)
        .fetch_one(conn)
        .await
    })
}

pub(super) async fn get(db: &Db, id: i64, registry: &Registry) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<JobRow> = crate::with_pool!(db, pool => {
        sqlx::query_as(select_job!("WHERE j.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|r| r.into_job(registry)))
}

pub(super) async fn get_in(
    tx: &mut Tx,
    id: i64,
    registry: &Registry,
) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<JobRow> = crate::with_tx!(tx, conn => {
        sqlx::query_as(select_job!("WHERE j.id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await
    })?;
    Ok(row.map(|r| r.into_job(registry)))
}

pub(super) async fn list(
    db: &Db,
    filter: &JobFilter,
    registry: &Registry,
) -> Result<Vec<Job>, sqlx::Error> {
    let rows: Vec<JobRow> = crate::with_pool!(db, pool => {
        sqlx::query_as(select_job!(
            "WHERE ($1 IS NULL OR j.requested_by = $1) AND ($2 = '' OR j.state = $2) \
             AND ($3 IS NULL OR j.id < $3) ORDER BY j.id DESC LIMIT $4"
        ))
        .bind(filter.requested_by)
        .bind(filter.state.map(JobState::as_str).unwrap_or_default())
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows.into_iter().map(|r| r.into_job(registry)).collect())
}

/// Claims the next due job for `owner`, leased until `lease_until`.
/// Atomic on both engines: SQLite runs one writer at a time; PostgreSQL
/// skips rows another worker holds.
pub(super) async fn claim(
    tx: &mut Tx,
    owner: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    registry: &Registry,
) -> Result<Option<Job>, sqlx::Error> {
    let row: Option<JobRow> = match tx {
        Tx::Sqlite(tx) => {
            sqlx::query_as(concat!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_expires_at = $2, started_at = $3, updated_at = $3 \
                 WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE state = 'queued' \
                 AND run_at <= $3 ORDER BY run_at, id LIMIT 1)",
                returning_job!()
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?
        }
        Tx::Postgres(tx) => {
            sqlx::query_as(concat!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_expires_at = $2, started_at = $3, updated_at = $3 \
                 WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE state = 'queued' \
                 AND run_at <= $3 ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)",
                returning_job!()
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    Ok(row.map(|r| r.into_job(registry)))
}

/// Extends the lease; `false` if the worker no longer holds the job.
pub(super) async fn heartbeat(
    db: &Db,
    id: i64,
    owner: &str,
    attempt: i32,
    lease_until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    crate::with_pool!(db, pool => {
        sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 \
             WHERE id = $2 AND state = 'running' AND lease_owner = $3 AND attempts = $4",
        )
        .bind(lease_until)
        .bind(id)
        .bind(owner)
        .bind(attempt)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1)
    })
}

/// How a held job ends this attempt.
pub(super) enum Outcome {
    Succeeded(Value),
    Failed(String),
    /// Back to the queue, due at `run_at`.
    Retry {
        error: String,
        run_at: DateTime<Utc>,
    },
}

/// Records the end of an attempt; `None` if the worker no longer held the
/// job (it was given to another after the lease expired).
pub(super) async fn finish(
    tx: &mut Tx,
    id: i64,
    owner: &str,
    attempt: i32,
    outcome: &Outcome,
    now: DateTime<Utc>,
    registry: &Registry,
) -> Result<Option<Job>, sqlx::Error> {
    let (state, result, error, run_at, finished_at) = match outcome {
        Outcome::Succeeded(value) => ("succeeded", Some(value.to_string()), None, None, Some(now)),
        Outcome::Failed(error) => ("failed", None, Some(error.clone()), None, Some(now)),
        Outcome::Retry { error, run_at } => {
            ("queued", None, Some(error.clone()), Some(*run_at), None)
        }
    };
    let row: Option<JobRow> = crate::with_tx!(tx, conn => {
        sqlx::query_as(concat!(
            "UPDATE jobs SET state = $1, result = $2, error = $3, run_at = COALESCE($4, run_at), \
             finished_at = $5, lease_owner = NULL, lease_expires_at = NULL, updated_at = $6 \
             WHERE id = $7 AND state = 'running' AND lease_owner = $8 AND attempts = $9",
            returning_job!()
        ))
        .bind(state)
        .bind(result)
        .bind(error)
        .bind(run_at)
        .bind(finished_at)
        .bind(now)
        .bind(id)
        .bind(owner)
        .bind(attempt)
        .fetch_optional(conn)
        .await
    })?;
    Ok(row.map(|r| r.into_job(registry)))
}

/// Running jobs whose lease expired (their worker died or hangs): back to
/// the queue, or failed when that was their last attempt. Returns the ids.
pub(super) async fn reap(tx: &mut Tx, now: DateTime<Utc>) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids: Vec<i64> = crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_at = $1, \
             error = 'The worker running it stopped; it runs again.', updated_at = $1 \
             WHERE state = 'running' AND lease_expires_at < $1 AND attempts < max_attempts RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await
    })?;
    let failed: Vec<i64> = crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = $1, \
             error = 'The worker running it stopped, and that was its last attempt.', updated_at = $1 \
             WHERE state = 'running' AND lease_expires_at < $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await
    })?;
    ids.extend(failed);
    Ok(ids)
}

/// On shutdown: the jobs this process's workers still hold go back to the
/// queue at once (not after their lease), for the next start or another
/// replica. Their attempt counts.
pub(super) async fn release(
    tx: &mut Tx,
    owner_prefix: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let pattern = format!("{owner_prefix}%");
    crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "UPDATE jobs SET state = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
             finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $1 END, \
             error = 'Bootler stopped while it ran; it runs again.', \
             lease_owner = NULL, lease_expires_at = NULL, run_at = $1, updated_at = $1 \
             WHERE state = 'running' AND lease_owner LIKE $2 RETURNING id",
        )
        .bind(now)
        .bind(pattern)
        .fetch_all(conn)
        .await
    })
}

/// Cancel (`queued` → `cancelled`) and retry (`failed`/`cancelled` →
/// `queued`, from the first attempt). `false` if the job was no longer in
/// state `from`.
pub(super) async fn set_state_by_hand(
    tx: &mut Tx,
    id: i64,
    from: &str,
    to: JobState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    crate::with_tx!(tx, conn => {
        if to == JobState::Queued {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, error = NULL, result = NULL, \
                 started_at = NULL, finished_at = NULL, updated_at = $1 WHERE id = $2 AND state = $3",
            )
            .bind(now)
            .bind(id)
            .bind(from)
            .execute(conn)
            .await
            .map(|r| r.rows_affected() == 1)
        } else {
            sqlx::query(
                "UPDATE jobs SET state = $1, finished_at = $2, updated_at = $2 WHERE id = $3 AND state = $4",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .bind(from)
            .execute(conn)
            .await
            .map(|r| r.rows_affected() == 1)
        }
    })
}
