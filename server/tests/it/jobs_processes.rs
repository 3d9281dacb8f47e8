//! The queue across real `bootler` processes: killed with SIGKILL in the
//! middle of its work, and two processes sharing one PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::jobs::{next_message, socket};
use crate::support::pg::Cluster;
use crate::support::process::{Process, add_admin};

/// An API token for `boss` (HTTP Basic once; argon2 per request is slow).
async fn token(url: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{url}/api/v1/tokens"))
        .basic_auth("boss", Some("correct horse battery"))
        .json(&json!({"name": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn enqueue(url: &str, token: &str, count: usize, sleep_ms: u64) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..count {
        let res = client
            .post(format!("{url}/api/v1/jobs"))
            .bearer_auth(token)
            .json(&json!({"kind": "noop", "sleep_ms": sleep_ms}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    ids
}

/// Every job, once none is queued or running any more.
async fn settled(url: &str, token: &str, count: usize, wait: Duration) -> Vec<Value> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + wait;
    loop {
        let body: Value = client
            .get(format!("{url}/api/v1/jobs?limit=500"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jobs = body["jobs"].as_array().unwrap().clone();
        let open = jobs
            .iter()
            .filter(|j| matches!(j["state"].as_str(), Some("queued" | "running")))
            .count();
        if jobs.len() == count && open == 0 {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} jobs still open after {wait:?}",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn merged(counts: &[HashMap<i64, usize>]) -> HashMap<i64, usize> {
    let mut all = HashMap::new();
    for counts in counts {
        for (job, n) in counts {
            *all.entry(*job).or_insert(0) += n;
        }
    }
    all
}

fn env(dir: &Path, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("BOOTLER_DATA_DIR", dir.join("data").display().to_string()),
        ("BOOTLER_JOBS__LEASE_SECONDS", "2".to_string()),
        ("BOOTLER_JOBS__POLL_MS", "100".to_string()),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn killed_mid_run_every_job_still_ends_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), &[]);
    add_admin(dir.path(), &env);
    let mut first = Process::serve(dir.path(), &env, &["--workers", "4"]).await;
    let token = token(&first.url).await;
    let ids = enqueue(&first.url, &token, 200, 40).await;

    // SIGKILL once a fifth is done: four jobs are running at that moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.count("job finished").len() < 40 {
        assert!(Instant::now() < deadline, "jobs do not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    // Counted once it is dead: a job may start between a count and the kill.
    let finished_before = first.count("job finished");
    let started_before = first.count("job started");
    assert!(
        finished_before.len() < 200,
        "the kill came too late to test anything"
    );

    let second = Process::serve(dir.path(), &env, &["--workers", "4"]).await;
    let jobs = settled(&second.url, &token, 200, Duration::from_secs(60)).await;
    assert!(jobs.iter().all(|j| j["state"] == "succeeded"), "{jobs:?}");
    let finished = merged(&[finished_before.clone(), second.count("job finished")]);
    assert_eq!(finished.len(), 200);
    for id in &ids {
        assert_eq!(
            finished.get(id),
            Some(&1),
            "job {id} finished {:?} times",
            finished.get(id)
        );
    }
    // The jobs the kill interrupted (started, not finished) ran a second
    // time; no job ran a third.
    let again: Vec<i64> = jobs
        .iter()
        .filter(|j| j["attempts"] == 2)
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert!(!again.is_empty(), "no job was interrupted by the kill");
    for id in &again {
        assert!(
            started_before.contains_key(id) && !finished_before.contains_key(id),
            "job {id}"
        );
    }
    assert!(jobs.iter().all(|j| j["attempts"].as_i64() <= Some(2)));
    assert!(second.stop().success());
}

#[tokio::test]
async fn two_processes_share_one_postgresql_queue_and_its_events() {
    let url = Cluster::shared().await.fresh_database().await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let envs: Vec<Vec<(&'static str, String)>> = dirs
        .iter()
        .map(|d| env(d.path(), &[("BOOTLER_DATABASE_URL", url.clone())]))
        .collect();
    add_admin(dirs[0].path(), &envs[0]);
    let a = Process::serve(dirs[0].path(), &envs[0], &["--workers", "4"]).await;
    let b = Process::serve(dirs[1].path(), &envs[1], &["--workers", "4"]).await;
    // An API-only replica: it runs no job itself.
    let c = Process::serve(dirs[2].path(), &envs[2], &["--workers", "0"]).await;
    let token = token(&a.url).await;

    let ids = enqueue(&a.url, &token, 300, 5).await;
    let jobs = settled(&c.url, &token, 300, Duration::from_secs(60)).await;
    assert!(
        jobs.iter()
            .all(|j| j["state"] == "succeeded" && j["attempts"] == 1)
    );
    let (on_a, on_b) = (a.count("job started"), b.count("job started"));
    assert!(c.count("job started").is_empty());
    let started = merged(&[on_a.clone(), on_b.clone()]);
    for id in &ids {
        assert_eq!(
            started.get(id),
            Some(&1),
            "job {id} claimed {:?} times",
            started.get(id)
        );
    }
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both share the work: {} / {}",
        on_a.len(),
        on_b.len()
    );

    // A job sent to the API-only replica runs on another; its events still
    // reach a browser connected to the replica.
    let mut ws = socket(&c.url, "boss", "").await.unwrap();
    assert_eq!(
        next_message(&mut ws, Duration::from_secs(5)).await.unwrap()["type"],
        "hello"
    );
    let id = enqueue(&c.url, &token, 1, 0).await[0];
    let mut states = Vec::new();
    while let Some(message) = next_message(&mut ws, Duration::from_secs(10)).await {
        if message["event"]["data"]["id"] == id {
            states.push(
                message["event"]["data"]["state"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            if states.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(states, ["running", "succeeded"]);
    for process in [a, b, c] {
        assert!(process.stop().success());
    }
}
