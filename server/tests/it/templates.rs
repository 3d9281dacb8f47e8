//! Templates over the API, on both engines: global and private ones,
//! versions, clear refusals, and previews rendered for a real host.

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;

const A4: &str = include_str!("../../../domain/src/templates/thesis/a4-system.ipxe");

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

both_engines! {
    async fn templates_are_kept_versioned_and_previewed(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        let post = |user: &str, body: Value| app.as_user(Method::POST, user, "/api/v1/templates").json(&body);

        let (status, body) = send(post("boss", json!({"name": "xenial-netboot", "kind": "system", "body": A4, "description": "Listing A.4"}))).await;
        assert_eq!(status, 201, "{body}");
        let global = body["template"]["id"].as_i64().unwrap();
        assert_eq!(body["template"]["owner"], Value::Null);
        assert_eq!(body["template"]["version"], 1);

        // Clear refusals; nothing stored.
        let (status, body) = send(post("boss", json!({"name": "xenial-netboot", "kind": "system", "body": "#!ipxe\n"}))).await;
        assert_eq!(status, 409, "{body}");
        let (status, body) = send(post("boss", json!({"name": "broken", "kind": "system", "body": "#!ipxe\n{% if %}\n"}))).await;
        assert_eq!(status, 422);
        assert!(message(&body).contains("line 2"), "{body}");
        let (status, _) = send(post("boss", json!({"name": "../etc", "kind": "system", "body": ""}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(post("boss", json!({"name": "x", "kind": "firmware", "body": ""}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(post("boss", json!({"name": "x", "kind": "system", "body": "a".repeat(300_000)}))).await;
        assert_eq!(status, 422);

        // A private template of ana's; she cannot change global ones.
        let (status, body) = send(post("ana", json!({"name": "my-preseed", "kind": "unattended", "body": "d-i netcfg/get_hostname string {{ host.name }}\nd-i passwd/username string {{ user.username }}\n"}))).await;
        assert_eq!(status, 201, "{body}");
        let private = body["template"]["id"].as_i64().unwrap();
        assert_eq!(body["template"]["owner"], "ana");
        let (status, body) = send(app.as_user(Method::PUT, "ana", &format!("/api/v1/templates/{global}")).json(&json!({"body": "#!ipxe\nexit\n"}))).await;
        assert_eq!(status, 403);
        assert!(message(&body).contains("global template"), "{body}");
        let (_, body) = send(app.as_user(Method::GET, "ana", "/api/v1/templates")).await;
        let names: Vec<&str> = body["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        // The shipped templates (global), hers; global first, by name.
        let mut expected: Vec<&str> = bootler_domain::templates::defaults::SHIPPED.iter().map(|t| t.name).collect();
        expected.push("xenial-netboot");
        expected.sort();
        expected.push("my-preseed");
        assert_eq!(names, expected);
        // boss's private template is not ana's business.
        let (_, body) = send(post("boss", json!({"name": "boss-only", "kind": "system", "body": "#!ipxe\n", "private": true}))).await;
        let boss_private = body["template"]["id"].as_i64().unwrap();
        assert_eq!(send(app.as_user(Method::GET, "ana", &format!("/api/v1/templates/{boss_private}"))).await.0, 404);

        // A new body is a new version; the old one stays.
        let changed = A4.replace("xenial-64", "bionic-64");
        let (status, body) = send(app.as_user(Method::PUT, "boss", &format!("/api/v1/templates/{global}")).json(&json!({"body": changed}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["template"]["version"], 2);
        // A change made on version 1 is refused now; one on 2 goes in.
        let (status, body) = send(app.as_user(Method::PUT, "boss", &format!("/api/v1/templates/{global}")).json(&json!({"body": "#!ipxe\nexit\n", "version": 1}))).await;
        assert_eq!(status, 409, "{body}");
        assert!(message(&body).contains("is at version 2 now, not 1"), "{body}");
        let (status, body) = send(app.as_user(Method::PUT, "boss", &format!("/api/v1/templates/{global}")).json(&json!({"description": "Ubuntu 16.04", "version": 2}))).await;
        assert_eq!(status, 200, "{body}");
        let (_, body) = send(app.as_user(Method::GET, "ana", &format!("/api/v1/templates/{global}"))).await;
        let versions: Vec<i64> = body["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, [2, 1]);
        assert!(body["versions"][1]["body"].as_str().unwrap().contains("xenial-64"));
        assert_eq!(body["versions"][0]["created_by"], "boss");

        // Preview for a host that booted once.
        let res = app.client.get(format!("{}/boot/52-54-00-ab-cd-ef?hostname=node9", app.url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let (_, hosts) = send(app.as_user(Method::GET, "boss", "/api/v1/hosts")).await;
        let host = hosts["hosts"][0]["id"].as_i64().unwrap();
        let (status, body) = send(app.as_user(Method::POST, "boss", &format!("/api/v1/templates/{global}/preview")).json(&json!({"host": host}))).await;
        assert_eq!(status, 200, "{body}");
        let output = body["output"].as_str().unwrap();
        assert!(output.starts_with("#!ipxe\n\nset base-url http://127.0.0.1:"), "{output}");
        assert!(output.contains("/boot/52-54-00-ab-cd-ef/unattended"), "{output}");
        assert!(output.contains("netcfg/choose_interface=eth0 hostname=node9"), "{output}");
        assert!(output.contains("bionic-64"));
        // A missing variable is a 422 naming the line.
        let (_, body) = send(post("boss", json!({"name": "needs-disk", "kind": "unattended", "body": "one\nclearpart --drives={{ vars.disk }}\n"}))).await;
        let needs = body["template"]["id"].as_i64().unwrap();
        let (status, body) = send(app.as_user(Method::POST, "boss", &format!("/api/v1/templates/{needs}/preview")).json(&json!({"host": host}))).await;
        assert_eq!(status, 422);
        assert!(message(&body).starts_with("template “needs-disk”, line 2: undefined value"), "{body}");
        // Hosts one does not hold are not previewed.
        let (status, _) = send(app.as_user(Method::POST, "ana", &format!("/api/v1/templates/{private}/preview")).json(&json!({"host": host}))).await;
        assert_eq!(status, 404);

        assert_eq!(send(app.as_user(Method::DELETE, "ana", &format!("/api/v1/templates/{global}"))).await.0, 403);
        assert_eq!(send(app.as_user(Method::DELETE, "ana", &format!("/api/v1/templates/{private}"))).await.0, 204);
        assert_eq!(send(app.as_user(Method::GET, "ana", &format!("/api/v1/templates/{private}"))).await.0, 404);
    }
}

/// Templates that loop, recurse, print without end or reach for files,
/// previewed all at once: each fails with its reason in bounded time, and
/// the server keeps answering meanwhile.
#[tokio::test]
async fn harmful_templates_fail_fast_and_the_server_stays_responsive() {
    let app = TestApp::start(None).await;
    app.add_user("boss", Role::Admin).await;
    app.client
        .get(format!("{}/boot/52-54-00-12-34-56?hostname=node1", app.url))
        .send()
        .await
        .unwrap();
    let (_, hosts) = send(app.as_user(Method::GET, "boss", "/api/v1/hosts")).await;
    let host = hosts["hosts"][0]["id"].as_i64().unwrap();
    let harmful = [
        (
            "forever",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "too much work",
        ),
        (
            "recurse",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recursion",
        ),
        (
            "gigabytes",
            "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
            "longer than",
        ),
        ("files", "{% include '/etc/passwd' %}", "no other templates"),
        ("environment", "{{ env.HOME }}{{ config }}", "undefined"),
        // Few steps, each doubling a string: a terabyte in 40 calls.
        (
            "memory",
            "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ f('x' * 1000000, 40) }}",
            "more memory than templates may use (512 MiB)",
        ),
        // Few steps, each slow (100 MB strings thrown away).
        (
            "slow",
            "{% for i in range(20000) %}{% set y = ('x' ~ i) * 10000000 %}{% endfor %}done",
            "ran longer than 3 s",
        ),
    ];
    let mut previews = Vec::new();
    for (name, body, _) in harmful {
        let (status, created) = send(
            app.as_user(Method::POST, "boss", "/api/v1/templates")
                .json(&json!({"name": name, "kind": "system", "body": body})),
        )
        .await;
        assert_eq!(status, 201, "{name}: {created}");
        let id = created["template"]["id"].as_i64().unwrap();
        let request = app
            .as_user(
                Method::POST,
                "boss",
                &format!("/api/v1/templates/{id}/preview"),
            )
            .json(&json!({"host": host}));
        previews.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer = send(request).await;
            (answer, started.elapsed())
        }));
    }
    // Meanwhile the server answers at once.
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let res = app
            .client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (preview, (name, _, reason)) in previews.into_iter().zip(harmful) {
        let ((status, body), took) = preview.await.unwrap();
        assert_eq!(status, 422, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("template “{name}”")),
            "{name}: {message}"
        );
        assert!(message.contains(reason), "{name}: {message}");
        assert!(
            took < std::time::Duration::from_secs(10),
            "{name} took {took:?}"
        );
    }
    // The workers that died or were stopped are replaced: templates still
    // render.
    let (_, created) = send(app.as_user(Method::POST, "boss", "/api/v1/templates").json(
        &json!({"name": "fine", "kind": "system", "body": "#!ipxe\necho {{ host.name }}\n"}),
    ))
    .await;
    let id = created["template"]["id"].as_i64().unwrap();
    for _ in 0..4 {
        let (status, body) = send(
            app.as_user(
                Method::POST,
                "boss",
                &format!("/api/v1/templates/{id}/preview"),
            )
            .json(&json!({"host": host})),
        )
        .await;
        assert_eq!(
            (status, body["output"].as_str()),
            (200, Some("#!ipxe\necho node1\n")),
            "{body}"
        );
    }
    app.stop().await;
}
