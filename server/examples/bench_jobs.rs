//! Job queue benchmarks for docs/benchmarks.md (run by
//! `scripts/bench-jobs.sh`, which starts a PostgreSQL and passes its URL).
//!
//! 1. Throughput: a backlog of no-op jobs (sleep 0) drained by 1, 4 and 16
//!    workers, on SQLite and on PostgreSQL. Each job is claimed, run and
//!    finished with its two events, as in production.
//! 2. Event latency: from the moment a job's end is recorded (its
//!    `finished_at`) to the moment its event arrives on a WebSocket client
//!    of a real server, median and p99.
//!
//! `BENCH_PG_URL=postgres://…/postgres` (a database it may create others
//! from); `BENCH_JOBS` (default 5000) and `BENCH_EVENTS` (default 500).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bootler_domain::Db;
use bootler_domain::jobs::kinds::noop::{Noop, NoopPayload};
use bootler_domain::jobs::{self, Events, JobState, Jobs, NewJob};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn settings() -> jobs::Settings {
    jobs::Settings {
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(50),
        max_attempts: 3,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        event_retention: Duration::from_secs(3600),
    }
}

/// The database URL of run `n`.
fn url_of(engine: &str, n: usize, dir: &std::path::Path) -> String {
    match engine {
        "sqlite" => format!("sqlite://{}/bench-{n}.db", dir.display()),
        _ => {
            let admin_url = std::env::var("BENCH_PG_URL").unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            format!("{base}/bench_{}_{n}", std::process::id())
        }
    }
}

/// A fresh, migrated database with one user.
async fn fresh(engine: &str, n: usize, dir: &std::path::Path) -> (Db, String, i64) {
    let url = url_of(engine, n, dir);
    if engine != "sqlite" {
        let admin = Db::connect(&std::env::var("BENCH_PG_URL").unwrap(), 1)
            .await
            .unwrap();
        let name = url.rsplit_once('/').unwrap().1.to_string();
        if let Db::Postgres(pool) = &admin {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(pool)
                .await
                .unwrap();
        }
        admin.close().await;
    }
    let db = Db::connect(&url, 40).await.unwrap();
    db.migrate().await.unwrap();
    let user: i64 = bootler_domain::with_pool!(&db, pool => {
        sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, role, status, created_at) \
             VALUES ('boss', 'boss@uminho.pt', 'Boss', 'admin', 'active', $1) RETURNING id",
        )
        .bind(Utc::now())
        .fetch_one(pool)
        .await
    })
    .unwrap();
    (db, url, user)
}

async fn throughput(
    engine: &str,
    workers: usize,
    count: usize,
    n: usize,
    dir: &std::path::Path,
) -> f64 {
    let (db, _, user) = fresh(engine, n, dir).await;
    let jobs = Jobs::new(
        db.clone(),
        jobs::kinds::builtin(),
        Events::new(db.clone()),
        settings(),
    );
    // The backlog, in one transaction.
    let mut tx = db.begin().await.unwrap();
    for _ in 0..count {
        jobs.enqueue_in(
            &mut tx,
            NewJob::of::<Noop>(&NoopPayload::default(), Some(user)),
            Utc::now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut events = jobs.events().subscribe();
    let started = Instant::now();
    let running = jobs.start_workers(workers);
    let mut done = 0;
    while done < count {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(event)) => {
                if event.data["state"] == "succeeded" {
                    done += 1;
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                // Count from the table instead.
                let finished: i64 = bootler_domain::with_pool!(&db, pool => {
                    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")
                        .fetch_one(pool)
                        .await
                })
                .unwrap();
                done = finished as usize;
            }
            other => panic!("jobs stopped: {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    running.shutdown().await;
    let left: i64 = bootler_domain::with_pool!(&db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state <> $1")
            .bind(JobState::Succeeded.as_str())
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(left, 0);
    db.close().await;
    count as f64 / elapsed.as_secs_f64()
}

async fn latency(engine: &str, count: usize, n: usize, dir: &std::path::Path) -> (f64, f64, f64) {
    let (db, url, _) = fresh(engine, n, dir).await;
    db.close().await;
    debug_assert_eq!(url, url_of(engine, n, dir));
    let site = dir.join(format!("site-{n}"));
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let mut config = bootler_domain::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join(format!("data-{n}")),
        database_url: Some(url),
        site_dir: site,
        ..Default::default()
    };
    config.jobs.workers = 4;
    config.jobs.poll_ms = 50;
    let server = bootler_server::Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let token = token_for_boss(&url_of(engine, n, dir), dir, n).await;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let res = client
            .post(format!("http://{addr}/api/v1/jobs"))
            .bearer_auth(&token)
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let received = Utc::now();
            let value: Value = serde_json::from_str(&text).unwrap();
            let data = &value["event"]["data"];
            if data["id"] == id && data["state"] == "succeeded" {
                let finished: chrono::DateTime<Utc> =
                    serde_json::from_value(data["finished_at"].clone()).unwrap();
                latencies.push((received - finished).num_microseconds().unwrap() as f64 / 1000.0);
                break;
            }
        }
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99), latencies[latencies.len() - 1])
}

/// A bearer token for `boss`: the benchmark user has no password, so it
/// goes through the accounts service of the same database.
async fn token_for_boss(url: &str, dir: &std::path::Path, n: usize) -> String {
    let url = url.to_string();
    let config = bootler_domain::Config {
        database_url: Some(url),
        data_dir: dir.join(format!("data-{n}")),
        ..Default::default()
    };
    let db = bootler_server::cli::open_database(&config).await.unwrap();
    let accounts = bootler_server::services::accounts(&config, &db).unwrap();
    let boss = accounts.find("boss").await.unwrap().unwrap();
    let (_, secret) = accounts
        .create_token(&boss, "bench", Utc::now())
        .await
        .unwrap();
    db.close().await;
    secret
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let mut engines = vec!["sqlite"];
    if std::env::var("BENCH_PG_URL").is_ok() {
        engines.push("postgres");
    }
    let only: Vec<usize> = std::env::var("BENCH_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16]);
    let mut n = 0;
    for engine in &engines {
        for &workers in &only {
            n += 1;
            let rate = throughput(engine, workers, count, n, dir.path()).await;
            println!(
                "throughput {engine} workers={workers}: {rate:.0} jobs/s ({count} no-op jobs)"
            );
        }
    }
    for engine in &engines {
        n += 1;
        let (median, p99, max) = latency(engine, events, n, dir.path()).await;
        println!(
            "event latency {engine}: median {median:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({events} jobs, end recorded → WebSocket message received)"
        );
    }
}
