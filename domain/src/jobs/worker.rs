//! Workers: tasks in the `bootler` process that claim due jobs and run
//! them, renewing their lease while they run. One maintenance task puts
//! jobs of dead workers back in the queue and prunes old events.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::queue::{self, Outcome};
use super::{Job, JobContext, JobError, JobState, Jobs};

/// The running workers of this process.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// `lease_owner` of this process's workers starts with this.
    prefix: String,
    jobs: Jobs,
}

impl Jobs {
    /// Starts `count` workers (and the maintenance and, on PostgreSQL, the
    /// listener task). With 0 only the listener runs, so events from other
    /// replicas still reach this one's browsers.
    pub fn start_workers(&self, count: usize) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let prefix = format!("{}-{}/", std::process::id(), random_suffix());
        let mut tasks = JoinSet::new();
        let (listening, ready) = watch::channel(false);
        tasks.spawn(self.events.clone().listen(stopped.clone(), listening));
        if count > 0 {
            tasks.spawn(maintain(self.clone(), stopped.clone()));
        }
        for n in 0..count {
            let owner = format!("{prefix}{n}");
            tasks.spawn(work(self.clone(), owner, stopped.clone(), ready.clone()));
        }
        tracing::info!(workers = count, "job workers started");
        Workers {
            stop,
            tasks,
            prefix,
            jobs: self.clone(),
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl Workers {
    /// Stops claiming, lets running jobs finish for up to the grace period,
    /// then puts what is still running back in the queue.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let grace = self.jobs.settings.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "jobs still running after the grace period; they go back to the queue"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        match self.jobs.release(&self.prefix).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "unfinished jobs put back in the queue"),
            Err(err) => {
                tracing::warn!(error = %err, "could not put unfinished jobs back; they return when their lease expires")
            }
        }
        tracing::info!("job workers stopped");
    }
}

impl Jobs {
    async fn release(&self, prefix: &str) -> Result<usize, sqlx::Error> {
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        let ids = queue::release(&mut tx, prefix, now).await?;
        let mut events = Vec::new();
        for id in &ids {
            if let Some(job) = queue::get_in(&mut tx, *id, &self.registry).await? {
                events.extend(self.record_event(&mut tx, &job, now).await?);
            }
        }
        tx.commit().await?;
        self.events.committed(events);
        Ok(ids.len())
    }

    /// Claims the next due job, with its `running` event; `None` if none is due.
    pub(super) async fn claim(&self, owner: &str) -> Result<Option<Job>, sqlx::Error> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let mut tx = self.db.begin_relaxed().await?;
        let Some(job) = queue::claim(&mut tx, owner, lease_until, now, &self.registry).await?
        else {
            // Nothing changed; nothing to keep.
            drop(tx);
            return Ok(None);
        };
        let events = self.record_event(&mut tx, &job, now).await?;
        tx.commit().await?;
        self.events.committed(events);
        Ok(Some(job))
    }

    /// Runs one claimed job to the end of this attempt.
    pub(super) async fn execute(&self, job: Job, owner: &str) {
        let ctx = JobContext {
            id: job.id,
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            requested_by: job.requested_by,
            db: self.db.clone(),
        };
        tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, "job started");
        let outcome = match self.registry.get(&job.kind).cloned() {
            None => Err(JobError::Permanent(format!(
                "This Bootler does not know jobs of kind “{}” (was it made by a newer version?).",
                job.kind
            ))),
            Some(handler) => {
                // Its own task: a panic in a job fails the job, not the worker.
                let mut run = tokio::spawn({
                    let payload = job.payload.clone();
                    async move { handler.run(ctx, payload).await }
                });
                let beat = self.settings.lease / 3;
                let mut heartbeat =
                    tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
                loop {
                    tokio::select! {
                        joined = &mut run => {
                            break joined.unwrap_or_else(|err| {
                                tracing::error!(job = job.id, error = %err, "job panicked");
                                Err(JobError::Permanent("The job crashed (a bug in Bootler); the server log has the details.".into()))
                            });
                        }
                        _ = heartbeat.tick() => {
                            let until = Utc::now() + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
                            match queue::heartbeat(&self.db, job.id, owner, job.attempts, until).await {
                                Ok(true) => {}
                                Ok(false) => {
                                    tracing::warn!(job = job.id, "job lease lost; abandoning this attempt");
                                    run.abort();
                                    return;
                                }
                                Err(err) => tracing::warn!(job = job.id, error = %err, "heartbeat failed"),
                            }
                        }
                    }
                }
            }
        };
        let now = Utc::now();
        let outcome = match outcome {
            Ok(value) => Outcome::Succeeded(value),
            Err(JobError::Permanent(message)) => Outcome::Failed(message),
            Err(JobError::Transient(message)) if job.attempts < job.max_attempts => {
                let wait = match self.registry.get(&job.kind) {
                    Some(handler) => handler.backoff(job.attempts, &self.settings),
                    None => self.settings.backoff(job.attempts),
                };
                Outcome::Retry {
                    error: format!(
                        "{message} (attempt {} of {}; retrying in {} s)",
                        job.attempts,
                        job.max_attempts,
                        wait.as_secs_f64().ceil() as u64
                    ),
                    run_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                }
            }
            Err(JobError::Transient(message)) => Outcome::Failed(format!(
                "{message} (gave up after {} attempts)",
                job.attempts
            )),
        };
        if let Err(err) = self.record_outcome(&job, owner, &outcome, now).await {
            tracing::error!(job = job.id, error = %err, "could not record the end of a job; it runs again after its lease");
        }
    }

    async fn record_outcome(
        &self,
        job: &Job,
        owner: &str,
        outcome: &Outcome,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_relaxed().await?;
        let finished = queue::finish(
            &mut tx,
            job.id,
            owner,
            job.attempts,
            outcome,
            now,
            &self.registry,
        )
        .await?;
        let Some(updated) = finished else {
            tracing::warn!(
                job = job.id,
                "job lease lost before it finished; its result is dropped"
            );
            return Ok(());
        };
        let events = self.record_event(&mut tx, &updated, now).await?;
        tx.commit().await?;
        self.events.committed(events);
        match updated.state {
            JobState::Queued => {
                tracing::info!(job = job.id, kind = %job.kind, error = ?updated.error, "job will be retried");
            }
            state => {
                tracing::info!(job = job.id, kind = %job.kind, state = state.as_str(), "job finished");
            }
        }
        Ok(())
    }

    /// Jobs whose lease expired back to the queue (or failed), with events.
    pub async fn reap(&self) -> Result<usize, sqlx::Error> {
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        let ids = queue::reap(&mut tx, now).await?;
        let mut events = Vec::new();
        for id in &ids {
            if let Some(job) = queue::get_in(&mut tx, *id, &self.registry).await? {
                tracing::warn!(
                    job = job.id,
                    state = job.state.as_str(),
                    "job's worker stopped; lease expired"
                );
                events.extend(self.record_event(&mut tx, &job, now).await?);
            }
        }
        tx.commit().await?;
        self.events.committed(events);
        if !ids.is_empty() {
            self.events.job_committed();
        }
        Ok(ids.len())
    }
}

/// One worker: claim, run, repeat; wait for a wake-up or the poll interval
/// when nothing is due.
async fn work(
    jobs: Jobs,
    owner: String,
    mut stop: watch::Receiver<bool>,
    mut listening: watch::Receiver<bool>,
) {
    // Events of this process's jobs must have a listener here (PostgreSQL);
    // if it cannot connect soon, work anyway (browsers catch up on reconnect).
    let _ = tokio::time::timeout(Duration::from_secs(5), listening.wait_for(|l| *l)).await;
    let wake = Arc::clone(&jobs.events.job_due);
    while !*stop.borrow() {
        match jobs.claim(&owner).await {
            Ok(Some(job)) => {
                jobs.execute(job, &owner).await;
                // Others may be due: look again at once.
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "claiming a job failed"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(jobs.settings.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Every few seconds: reap expired leases; every hour: prune old events.
async fn maintain(jobs: Jobs, mut stop: watch::Receiver<bool>) {
    let every =
        (jobs.settings.lease / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
    let mut last_prune = tokio::time::Instant::now() - Duration::from_secs(3600);
    while !*stop.borrow() {
        if let Err(err) = jobs.reap().await {
            tracing::warn!(error = %err, "reaping expired job leases failed");
        }
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = tokio::time::Instant::now();
            match jobs
                .events
                .prune(jobs.settings.event_retention, Utc::now())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "old events pruned"),
                Err(err) => tracing::warn!(error = %err, "pruning events failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}
