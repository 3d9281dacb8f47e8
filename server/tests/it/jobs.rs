//! The job queue over HTTP and the WebSocket, on both engines.

use std::time::Duration;

use bootler_domain::accounts::Role;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::app::TestApp;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A WebSocket to `/ws<query>` as `username` (HTTP Basic on the upgrade).
pub async fn socket(url: &str, username: &str, query: &str) -> Result<Socket, tungstenite::Error> {
    let ws_url = format!("{}/ws{query}", url.replacen("http://", "ws://", 1));
    let mut request = ws_url.into_client_request().unwrap();
    let basic = base64_basic(username);
    request
        .headers_mut()
        .insert("authorization", basic.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

fn base64_basic(username: &str) -> String {
    use base64::Engine;
    let raw = format!("{username}:correct horse battery");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The next JSON text message, within `wait`.
pub async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Job events from the socket until one reports `job` in a final state.
async fn states_until_final(socket: &mut Socket, job: i64) -> Vec<String> {
    let mut states = Vec::new();
    while let Some(message) = next_message(socket, Duration::from_secs(10)).await {
        if message["type"] != "event" || message["event"]["data"]["id"] != job {
            continue;
        }
        let state = message["event"]["data"]["state"]
            .as_str()
            .unwrap()
            .to_string();
        let done = matches!(state.as_str(), "succeeded" | "failed" | "cancelled");
        states.push(state);
        if done {
            break;
        }
    }
    states
}

async fn wait_final(app: &TestApp, user: &str, id: i64) -> Value {
    for _ in 0..200 {
        let (_, body) = send(app.as_user(Method::GET, user, &format!("/api/v1/jobs/{id}"))).await;
        if matches!(
            body["job"]["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return body["job"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

both_engines! {
    async fn diagnostic_jobs_run_and_notify_their_owner(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        let mut ws = socket(&app.url, "boss", "").await.unwrap();
        let hello = next_message(&mut ws, Duration::from_secs(5)).await.unwrap();
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["last_event_id"], 0);
        // Another tab of the same person hears the same.
        let mut second_tab = socket(&app.url, "boss", "").await.unwrap();
        next_message(&mut second_tab, Duration::from_secs(5)).await.unwrap();
        let mut other_person = socket(&app.url, "ana", "").await.unwrap();
        next_message(&mut other_person, Duration::from_secs(5)).await.unwrap();

        let res = app
            .as_user(Method::POST, "boss", "/api/v1/jobs")
            .json(&json!({"kind": "noop", "sleep_ms": 50}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let body: Value = res.json().await.unwrap();
        let id = body["id"].as_i64().unwrap();
        assert_eq!(body["url"], format!("/api/v1/jobs/{id}"));
        assert_eq!(location, format!("/api/v1/jobs/{id}"));
        assert_eq!(body["job"]["state"], "queued");

        assert_eq!(states_until_final(&mut ws, id).await, ["running", "succeeded"]);
        assert_eq!(states_until_final(&mut second_tab, id).await, ["running", "succeeded"]);
        assert!(next_message(&mut other_person, Duration::from_millis(300)).await.is_none());

        let (_, body) = send(app.as_user(Method::GET, "boss", &location)).await;
        assert_eq!(body["job"]["state"], "succeeded");
        assert_eq!(body["job"]["result"]["slept_ms"], 50);
        assert_eq!(body["job"]["requested_by_name"], "boss");

        // A browser that was away replays what it missed.
        let mut back = socket(&app.url, "boss", "?after=0").await.unwrap();
        let hello = next_message(&mut back, Duration::from_secs(5)).await.unwrap();
        assert!(hello["last_event_id"].as_i64().unwrap() > 0);
        assert_eq!(states_until_final(&mut back, id).await, ["running", "succeeded"]);

        // A failure arrives with its sentence.
        let (_, body) = send(app.as_user(Method::POST, "boss", "/api/v1/jobs").json(&json!({"kind": "noop", "fail": true}))).await;
        let failed = body["id"].as_i64().unwrap();
        assert_eq!(states_until_final(&mut ws, failed).await, ["running", "failed"]);
        let job = wait_final(app, "boss", failed).await;
        assert_eq!(job["error"], "The diagnostic job failed, as asked.");

        // Lists: admins see everyone's, others their own (none here).
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/jobs")).await;
        assert_eq!(body["jobs"].as_array().unwrap().len(), 2);
        assert_eq!(body["jobs"][0]["id"], failed, "newest first");
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/jobs?state=failed")).await;
        assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
        let (_, body) = send(app.as_user(Method::GET, "ana", "/api/v1/jobs")).await;
        assert_eq!(body["jobs"], json!([]));
        assert_eq!(send(app.as_user(Method::GET, "ana", &location)).await.0, 404);

        // Retry the failed one: 202, and it runs again.
        let res = app.as_user(Method::POST, "boss", &format!("/api/v1/jobs/{failed}/retry")).send().await.unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(states_until_final(&mut ws, failed).await, ["queued", "running", "failed"]);
    }

    async fn job_requests_get_clear_refusals(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        let post = |user: &str, body: Value| app.as_user(Method::POST, user, "/api/v1/jobs").json(&body);
        let (status, body) = send(post("ana", json!({"kind": "noop"}))).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Only administrators"));
        let (status, body) = send(post("boss", json!({"kind": "reboot-everything"}))).await;
        assert_eq!(status, 422, "{body}");
        let (status, _) = send(post("boss", json!({"kind": "noop", "sleep_ms": 10_000_000}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(post("boss", json!({"kind": "noop", "sleep_ms": -1}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(post("boss", json!({"kind": "noop", "colour": "red"}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(app.as_user(Method::GET, "boss", "/api/v1/jobs/abc")).await;
        assert_eq!(status, 400);
        let (status, _) = send(app.as_user(Method::GET, "boss", "/api/v1/jobs/999")).await;
        assert_eq!(status, 404);
        let (status, _) = send(app.as_user(Method::GET, "boss", "/api/v1/jobs?state=stuck")).await;
        assert_eq!(status, 422);
        // Running or finished jobs cannot be cancelled; only failed ones retried.
        let (_, body) = send(post("boss", json!({"kind": "noop"}))).await;
        let id = body["id"].as_i64().unwrap();
        wait_final(app, "boss", id).await;
        let (status, body) = send(app.as_user(Method::POST, "boss", &format!("/api/v1/jobs/{id}/cancel"))).await;
        assert_eq!(status, 409, "{body}");
        let (status, _) = send(app.as_user(Method::POST, "boss", &format!("/api/v1/jobs/{id}/retry"))).await;
        assert_eq!(status, 409);
        // The WebSocket needs credentials.
        let ws_url = format!("{}/ws", app.url.replacen("http://", "ws://", 1));
        match tokio_tungstenite::connect_async(ws_url).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
    }
}

async fn queued_jobs_cancel_and_retry(engine: &str) {
    // No workers: jobs stay queued (an API-only replica).
    let app = TestApp::start_with(TestApp::database(engine).await, |c| c.jobs.workers = 0).await;
    app.add_user("boss", Role::Admin).await;
    let (_, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/jobs")
            .json(&json!({"kind": "noop"})),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = send(app.as_user(Method::GET, "boss", &format!("/api/v1/jobs/{id}"))).await;
    assert_eq!(body["job"]["state"], "queued");
    let (status, body) =
        send(app.as_user(Method::POST, "boss", &format!("/api/v1/jobs/{id}/cancel"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["state"], "cancelled");
    let (status, body) =
        send(app.as_user(Method::POST, "boss", &format!("/api/v1/jobs/{id}/retry"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["state"], "queued");
    assert_eq!(body["job"]["attempts"], 0);
    app.stop().await;
}

async fn backoff_and_attempts_follow_the_configuration(engine: &str) {
    let app = TestApp::start_with(TestApp::database(engine).await, |c| {
        c.jobs.max_attempts = 3;
        c.jobs.backoff_base_ms = 200;
        c.jobs.backoff_max_ms = 10_000;
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    let mut ws = socket(&app.url, "boss", "").await.unwrap();
    next_message(&mut ws, Duration::from_secs(5)).await.unwrap();
    let started = std::time::Instant::now();
    let (_, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/jobs")
            .json(&json!({"kind": "noop", "fail": true, "transient": true})),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    // running → queued (retry) → running → queued → running → failed.
    let mut seen = Vec::new();
    let mut retry_times = Vec::new();
    while let Some(message) = next_message(&mut ws, Duration::from_secs(10)).await {
        let data = &message["event"]["data"];
        if data["id"] != id {
            continue;
        }
        seen.push(data["state"].as_str().unwrap().to_string());
        if data["state"] == "queued" {
            retry_times.push(started.elapsed());
            assert!(
                data["error"].as_str().unwrap().contains("retrying in"),
                "{data}"
            );
        }
        if data["state"] == "failed" {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "running", "queued", "running", "queued", "running", "failed"
        ]
    );
    // Waits of 200 ms, then 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let job = wait_final(&app, "boss", id).await;
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["max_attempts"], 3);
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    // A permanent error does not retry.
    let (_, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/jobs")
            .json(&json!({"kind": "noop", "fail": true})),
    )
    .await;
    let job = wait_final(&app, "boss", body["id"].as_i64().unwrap()).await;
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    app.stop().await;
}

#[tokio::test]
async fn queued_jobs_cancel_and_retry_sqlite() {
    queued_jobs_cancel_and_retry("sqlite").await;
}

#[tokio::test]
async fn queued_jobs_cancel_and_retry_postgres() {
    queued_jobs_cancel_and_retry("postgres").await;
}

#[tokio::test]
async fn backoff_and_attempts_follow_the_configuration_sqlite() {
    backoff_and_attempts_follow_the_configuration("sqlite").await;
}

#[tokio::test]
async fn backoff_and_attempts_follow_the_configuration_postgres() {
    backoff_and_attempts_follow_the_configuration("postgres").await;
}
