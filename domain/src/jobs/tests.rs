//! The queue against a real SQLite database (PostgreSQL: the server's
//! integration tests run the same paths there).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kinds::noop::{Noop, NoopPayload};
use super::*;

struct Fixture {
    jobs: Jobs,
    user: i64,
    _dir: tempfile::TempDir,
}

/// Counts its runs; deduplicated by `key`; panics when asked.
#[derive(Clone, Default)]
struct Counted(Arc<AtomicUsize>);

#[derive(Serialize, Deserialize)]
struct CountedPayload {
    key: String,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    transient: bool,
}

impl JobKind for Counted {
    const KIND: &'static str = "counted";
    const TITLE: &'static str = "Counted";
    type Payload = CountedPayload;

    fn max_attempts(&self) -> Option<u32> {
        Some(2)
    }

    fn backoff(&self, _attempt: i32, _settings: &Settings) -> Duration {
        Duration::from_millis(10)
    }

    fn dedup_key(&self, payload: &CountedPayload) -> Option<String> {
        Some(payload.key.clone())
    }

    async fn run(&self, _ctx: &JobContext, payload: CountedPayload) -> Result<Value, JobError> {
        tokio::time::sleep(Duration::from_millis(payload.sleep_ms)).await;
        assert!(!payload.panic, "asked to panic");
        if payload.transient {
            return Err(JobError::Transient("busy".into()));
        }
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Value::Null)
    }
}

fn settings() -> Settings {
    Settings {
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(50),
        max_attempts: 3,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(150),
        shutdown_grace: Duration::from_secs(5),
        event_retention: Duration::from_secs(3600),
    }
}

async fn fixture_with(settings: Settings, counted: Counted) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let user: i64 = crate::with_pool!(&db, pool => {
        sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, status, created_at) \
             VALUES ('ana', 'ana@uminho.pt', 'Ana', 'active', $1) RETURNING id",
        )
        .bind(Utc::now())
        .fetch_one(pool)
        .await
    })
    .unwrap();
    let events = Events::new(db.clone());
    let registry = kinds::builtin().with(counted);
    Fixture {
        jobs: Jobs::new(db, registry, events, settings),
        user,
        _dir: dir,
    }
}

async fn fixture() -> Fixture {
    fixture_with(settings(), Counted::default()).await
}

fn noop(payload: NoopPayload, user: i64) -> NewJob {
    NewJob::of::<Noop>(&payload, Some(user))
}

fn actor(f: &Fixture) -> Actor {
    Actor {
        user_id: f.user,
        admin: false,
    }
}

/// Waits until the job is in a final state.
async fn settled(f: &Fixture, id: i64) -> Job {
    for _ in 0..200 {
        let job = f.jobs.get(actor(f), id).await.unwrap();
        if job.state.is_final() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test]
async fn a_job_runs_and_its_owner_hears_each_state() {
    let f = fixture().await;
    let mut events = f.jobs.events().subscribe();
    let workers = f.jobs.start_workers(2);
    let job = f
        .jobs
        .enqueue(
            noop(
                NoopPayload {
                    sleep_ms: 20,
                    ..Default::default()
                },
                f.user,
            ),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.title, "Diagnostic job");
    let done = settled(&f, job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.result, Some(json!({"slept_ms": 20, "attempt": 1})));
    assert!(done.finished_at.is_some());
    let mut states = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        assert_eq!(event.user_id, f.user);
        assert_eq!(event.kind, JOB_EVENT);
        states.push(event.data["state"].as_str().unwrap().to_string());
        if states.len() == 2 {
            break;
        }
    }
    assert_eq!(states, ["running", "succeeded"]);
    // The same events are kept for a browser that reconnects.
    let kept = f.jobs.events().since(f.user, 0, 10).await.unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(
        f.jobs
            .events()
            .since(f.user, kept[0].id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    workers.shutdown().await;
}

#[tokio::test]
async fn transient_errors_back_off_and_give_up_permanent_ones_do_not_retry() {
    let f = fixture().await;
    let workers = f.jobs.start_workers(1);
    let started = std::time::Instant::now();
    let transient = f
        .jobs
        .enqueue(
            noop(
                NoopPayload {
                    fail: true,
                    transient: true,
                    ..Default::default()
                },
                f.user,
            ),
            Utc::now(),
        )
        .await
        .unwrap();
    let done = settled(&f, transient.id).await;
    // 3 attempts with waits of 100 ms and then 150 ms (capped).
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.attempts, 3);
    assert_eq!(
        done.error.as_deref(),
        Some("The diagnostic job failed transiently, as asked (gave up after 3 attempts)")
    );

    let permanent = f
        .jobs
        .enqueue(
            noop(
                NoopPayload {
                    fail: true,
                    ..Default::default()
                },
                f.user,
            ),
            Utc::now(),
        )
        .await
        .unwrap();
    let done = settled(&f, permanent.id).await;
    assert_eq!((done.state, done.attempts), (JobState::Failed, 1));
    assert_eq!(
        done.error.as_deref(),
        Some("The diagnostic job failed, as asked.")
    );
    workers.shutdown().await;
}

#[test]
fn backoff_doubles_up_to_the_maximum() {
    let mut s = settings();
    s.backoff_base = Duration::from_secs(2);
    s.backoff_max = Duration::from_secs(600);
    let waits: Vec<u64> = (1..=11).map(|a| s.backoff(a).as_secs()).collect();
    assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
}

#[tokio::test]
async fn queued_jobs_cancel_failed_ones_retry_and_others_see_nothing() {
    let f = fixture().await;
    let later = NewJob {
        run_at: Some(Utc::now() + chrono::Duration::hours(1)),
        ..noop(NoopPayload::default(), f.user)
    };
    let job = f.jobs.enqueue(later, Utc::now()).await.unwrap();
    let stranger = Actor {
        user_id: f.user + 1,
        admin: false,
    };
    assert!(matches!(
        f.jobs.cancel(stranger, job.id, Utc::now()).await,
        Err(JobsError::NotFound(_))
    ));
    assert!(
        f.jobs
            .list(
                stranger,
                JobFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
    let admin = Actor {
        user_id: f.user + 1,
        admin: true,
    };
    assert_eq!(
        f.jobs
            .list(
                admin,
                JobFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );

    let cancelled = f.jobs.cancel(actor(&f), job.id, Utc::now()).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        f.jobs.cancel(actor(&f), job.id, Utc::now()).await,
        Err(JobsError::Conflict(_))
    ));

    // Retry: from the first attempt, now.
    let workers = f.jobs.start_workers(1);
    let retried = f.jobs.retry(actor(&f), job.id, Utc::now()).await.unwrap();
    assert_eq!((retried.state, retried.attempts), (JobState::Queued, 0));
    assert_eq!(settled(&f, job.id).await.state, JobState::Succeeded);
    assert!(matches!(
        f.jobs.retry(actor(&f), job.id, Utc::now()).await,
        Err(JobsError::Conflict(_))
    ));
    workers.shutdown().await;
}

#[tokio::test]
async fn duplicates_return_the_queued_job() {
    let counted = Counted::default();
    let f = fixture_with(settings(), counted.clone()).await;
    let new = |key: &str| NewJob {
        kind: Counted::KIND,
        payload: json!({"key": key}),
        requested_by: Some(f.user),
        target: Some(("host".into(), "7".into())),
        run_at: None,
    };
    let first = f.jobs.enqueue(new("host-7"), Utc::now()).await.unwrap();
    let again = f.jobs.enqueue(new("host-7"), Utc::now()).await.unwrap();
    let other = f.jobs.enqueue(new("host-8"), Utc::now()).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_ne!(first.id, other.id);
    assert_eq!(first.target_id.as_deref(), Some("7"));
    let workers = f.jobs.start_workers(2);
    settled(&f, first.id).await;
    settled(&f, other.id).await;
    assert_eq!(counted.0.load(Ordering::SeqCst), 2);
    // Once finished, the key is free again.
    let third = f.jobs.enqueue(new("host-7"), Utc::now()).await.unwrap();
    assert_ne!(third.id, first.id);
    settled(&f, third.id).await;
    workers.shutdown().await;
    // Unknown kinds and unreadable payloads are refused at once.
    let bad = NewJob {
        kind: "teleport",
        ..new("x")
    };
    assert!(matches!(
        f.jobs.enqueue(bad, Utc::now()).await,
        Err(JobsError::Invalid(_))
    ));
    let bad = NewJob {
        payload: json!({"nope": 1}),
        ..new("x")
    };
    assert!(matches!(
        f.jobs.enqueue(bad, Utc::now()).await,
        Err(JobsError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_panicking_job_fails_and_the_worker_goes_on() {
    let f = fixture().await;
    let workers = f.jobs.start_workers(1);
    let new = NewJob {
        kind: Counted::KIND,
        payload: json!({"key": "p", "panic": true}),
        requested_by: Some(f.user),
        target: None,
        run_at: None,
    };
    let job = f.jobs.enqueue(new, Utc::now()).await.unwrap();
    let done = settled(&f, job.id).await;
    assert_eq!(done.state, JobState::Failed);
    assert!(done.error.unwrap().contains("crashed"));
    let next = f
        .jobs
        .enqueue(noop(NoopPayload::default(), f.user), Utc::now())
        .await
        .unwrap();
    assert_eq!(settled(&f, next.id).await.state, JobState::Succeeded);
    workers.shutdown().await;
}

#[tokio::test]
async fn a_dead_workers_job_runs_again_and_its_late_result_is_dropped() {
    let counted = Counted::default();
    let mut s = settings();
    s.lease = Duration::from_millis(300);
    let f = fixture_with(s, counted.clone()).await;
    let new = NewJob {
        kind: Counted::KIND,
        payload: json!({"key": "k"}),
        requested_by: Some(f.user),
        target: None,
        run_at: None,
    };
    let job = f.jobs.enqueue(new, Utc::now()).await.unwrap();
    // A worker that claims and then dies (never heartbeats).
    let dead = f.jobs.claim("dead-worker/0").await.unwrap().unwrap();
    assert_eq!(
        (dead.id, dead.state, dead.attempts),
        (job.id, JobState::Running, 1)
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(f.jobs.reap().await.unwrap(), 1);
    let workers = f.jobs.start_workers(1);
    let done = settled(&f, job.id).await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
    assert_eq!(counted.0.load(Ordering::SeqCst), 1);
    // The dead worker waking up cannot finish it again.
    let now = Utc::now();
    let mut tx = f.jobs.db.begin().await.unwrap();
    let outcome = queue::Outcome::Failed("late".into());
    let late = queue::finish(
        &mut tx,
        job.id,
        "dead-worker/0",
        1,
        &outcome,
        now,
        &f.jobs.registry,
    );
    assert!(late.await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(
        f.jobs.get(actor(&f), job.id).await.unwrap().state,
        JobState::Succeeded
    );
    workers.shutdown().await;
}

#[tokio::test]
async fn shutdown_waits_for_running_jobs_then_puts_the_rest_back() {
    let mut s = settings();
    s.shutdown_grace = Duration::from_millis(300);
    let f = fixture_with(s, Counted::default()).await;
    let workers = f.jobs.start_workers(2);
    let short = f
        .jobs
        .enqueue(
            noop(
                NoopPayload {
                    sleep_ms: 100,
                    ..Default::default()
                },
                f.user,
            ),
            Utc::now(),
        )
        .await
        .unwrap();
    let long = f
        .jobs
        .enqueue(
            noop(
                NoopPayload {
                    sleep_ms: 5000,
                    ..Default::default()
                },
                f.user,
            ),
            Utc::now(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    workers.shutdown().await;
    assert_eq!(
        f.jobs.get(actor(&f), short.id).await.unwrap().state,
        JobState::Succeeded
    );
    let long = f.jobs.get(actor(&f), long.id).await.unwrap();
    assert_eq!(long.state, JobState::Queued);
    assert!(long.error.unwrap().contains("Bootler stopped"));
}

#[tokio::test]
async fn a_kind_may_choose_its_own_backoff() {
    let f = fixture().await;
    let new = NewJob {
        kind: Counted::KIND,
        payload: json!({"key": "b", "transient": true}),
        requested_by: Some(f.user),
        target: None,
        run_at: None,
    };
    let job = f.jobs.enqueue(new, Utc::now()).await.unwrap();
    let claimed = f.jobs.claim("test/0").await.unwrap().unwrap();
    f.jobs.execute(claimed, "test/0").await;
    let waiting = f.jobs.get(actor(&f), job.id).await.unwrap();
    assert_eq!(waiting.state, JobState::Queued);
    // Counted waits 10 ms, not the configured 100 ms.
    assert_eq!((waiting.run_at - waiting.updated_at).num_milliseconds(), 10);
    assert_eq!(
        waiting.max_attempts, 2,
        "its own attempts, not the configured 3"
    );
    assert!(waiting.error.unwrap().starts_with("busy (attempt 1 of 2;"));
}
