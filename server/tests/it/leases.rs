//! Leasing over HTTP on both engines: the race for the last nodes, and
//! who may do what to a host (the authorization matrix).

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An active account with an API token, written straight to the database
/// (fifty password hashes would make the race slow to set up, not faster).
async fn person_with_token(app: &TestApp, username: &str) -> String {
    let db = bootler_server::cli::open_database(&app.config)
        .await
        .unwrap();
    let token = format!("bt_test{username}{}", "x".repeat(24));
    let now = chrono::Utc::now();
    bootler_domain::with_pool!(&db, pool => {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, email, display_name, role, status, created_at, activated_at) \
             VALUES ($1, $2, $1, 'user', 'active', $3, $3) RETURNING id",
        )
        .bind(username)
        .bind(format!("{username}@uminho.pt"))
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, 't', $2, $3)")
            .bind(id)
            .bind(bootler_domain::secret::token_hash(&token))
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
    });
    db.close().await;
    token
}

/// `count` hosts booted, enrolled into pool `lab` by `boss`; their ids.
async fn lab(app: &TestApp, count: u8) -> Vec<i64> {
    let (status, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/pools")
            .json(&json!({"name": "lab", "default_lease_hours": 72})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut ids = Vec::new();
    for n in 1..=count {
        let mac = format!("52-54-00-dd-00-{n:02x}");
        let res = app
            .client
            .get(format!("{}/boot/{mac}?hostname=n{n}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (_, body) =
            send(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts?mac={mac}"))).await;
        let id = body["hosts"][0]["id"].as_i64().unwrap();
        let (status, body) = send(
            app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}"))
                .json(&json!({"pool": "lab", "system": "local-boot"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(id);
    }
    ids
}

both_engines! {
    async fn fifty_requests_for_five_free_nodes_give_five(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let ids = lab(app, 5).await;
        let mut tokens = Vec::new();
        for n in 0..50 {
            tokens.push(person_with_token(app, &format!("u{n}")).await);
        }
        let url = format!("{}/api/v1/hosts/allocate", app.url);
        let requests: Vec<_> = tokens
            .iter()
            .map(|token| {
                let request = app.client.post(&url).bearer_auth(token).json(&json!({"pool": "lab"}));
                tokio::spawn(send(request))
            })
            .collect();
        let mut holders = std::collections::HashMap::new();
        let mut refused = 0;
        for request in requests {
            let (status, body) = request.await.unwrap();
            match status {
                200 => {
                    let id = body["host"]["id"].as_i64().unwrap();
                    let holder = body["host"]["holder"].as_str().unwrap().to_string();
                    assert!(holders.insert(id, holder).is_none(), "host {id} given twice");
                }
                409 => {
                    refused += 1;
                    let message = body["error"]["message"].as_str().unwrap();
                    assert!(message.starts_with("No free node in pool “lab” (5 held, next lease ends at "), "{message}");
                }
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!((holders.len(), refused), (5, 45));
        // The database agrees: each host one holder, each winner one host.
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/hosts?pool=lab")).await;
        let mut seen = std::collections::HashSet::new();
        for host in body["hosts"].as_array().unwrap() {
            let id = host["id"].as_i64().unwrap();
            assert!(ids.contains(&id));
            assert_eq!(host["holder"].as_str(), holders.get(&id).map(String::as_str));
            assert!(seen.insert(host["holder"].as_str().unwrap().to_string()));
        }
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/pools")).await;
        assert_eq!((body["pools"][0]["free"].as_i64(), body["pools"][0]["held"].as_i64()), (Some(0), Some(5)));
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/audit?action=allocate")).await;
        assert_eq!(body["total"], 5);
    }

    async fn only_holders_and_admins_act_on_a_host(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let ids = lab(app, 1).await;
        let id = ids[0];
        let ana = person_with_token(app, "ana").await;
        let rui = person_with_token(app, "rui").await;
        let (status, body) = send(app.as_user(Method::POST, "boss", "/api/v1/tokens").json(&json!({"name": "t"}))).await;
        assert_eq!(status, 201, "{body}");
        let boss = body["token"].as_str().unwrap().to_string();
        let call = |token: &str, method: Method, path: &str, body: Value| {
            app.client
                .request(method, format!("{}{path}", app.url))
                .bearer_auth(token)
                .json(&body)
        };
        // (name, method, path, body): each a holder's right.
        let actions = [
            ("boot options", Method::PUT, format!("/api/v1/hosts/{id}"), json!({"vars": {"disk": "sda"}})),
            ("mark", Method::POST, format!("/api/v1/hosts/{id}/mark"), json!({})),
            ("unmark", Method::POST, format!("/api/v1/hosts/{id}/unmark"), json!({})),
            ("extend", Method::POST, format!("/api/v1/hosts/{id}/extend"), json!({"hours": 1})),
            ("see", Method::GET, format!("/api/v1/hosts/{id}"), Value::Null),
        ];
        // The host is free: no user may act on it; admins may.
        for (name, method, path, body) in &actions {
            for token in [&ana, &rui] {
                let (status, answer) = send(call(token, method.clone(), path, body.clone())).await;
                // Extending a lease nobody has: nothing to extend (409).
                let refused = matches!(status, 403 | 404) || (*name == "extend" && status == 409);
                assert!(refused, "free host, {name}: {status} {answer}");
            }
        }
        let (status, answer) = send(call(&rui, Method::POST, &format!("/api/v1/hosts/{id}/allocate"), json!({"user": "rui"}))).await;
        assert_eq!(status, 403, "a user cannot take a host directly: {answer}");
        let (status, answer) = send(call(&rui, Method::POST, &format!("/api/v1/hosts/{id}/release"), json!({}))).await;
        assert_eq!(status, 409, "nobody holds it: {answer}");

        // Ana gets it: she may act on it; Rui may not; the admin may.
        let (status, answer) = send(call(&ana, Method::POST, "/api/v1/hosts/allocate", json!({"pool": "lab"}))).await;
        assert_eq!(status, 200, "{answer}");
        for (name, method, path, body) in &actions {
            let (status, answer) = send(call(&rui, method.clone(), path, body.clone())).await;
            assert!(matches!(status, 403 | 404), "Rui, {name}: {status} {answer}");
            let (status, answer) = send(call(&ana, method.clone(), path, body.clone())).await;
            assert_eq!(status, 200, "Ana, {name}: {answer}");
            let (status, answer) = send(call(&boss, method.clone(), path, body.clone())).await;
            assert!(status == 200 || (status == 409 && *name == "unmark"), "boss, {name}: {status} {answer}");
        }
        for (token, what) in [(&rui, "release"), (&rui, "allocate")] {
            let body = json!({"user": "rui"});
            let (status, answer) = send(call(token, Method::POST, &format!("/api/v1/hosts/{id}/{what}"), body)).await;
            assert_eq!(status, 403, "Rui, {what}: {answer}");
        }
        // Ana lends it to Rui; now the rights are his.
        let (status, answer) = send(call(&ana, Method::POST, &format!("/api/v1/hosts/{id}/allocate"), json!({"user": "rui"}))).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["host"]["holder"], "rui");
        let (status, _) = send(call(&ana, Method::PUT, &format!("/api/v1/hosts/{id}"), json!({"vars": {}}))).await;
        assert_eq!(status, 404, "no longer hers");
        let (status, answer) = send(call(&rui, Method::POST, &format!("/api/v1/hosts/{id}/release"), json!({}))).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["host"]["holder"], Value::Null);
        // Bad input: clear 4xx, nothing changed.
        for (path, body) in [
            ("/api/v1/hosts/allocate", json!({"pool": "nope"})),
            ("/api/v1/hosts/allocate", json!({"pool": "lab", "hours": 0})),
            ("/api/v1/hosts/allocate", json!({"pool": "lab", "tags": {"cores": [1]}})),
            ("/api/v1/hosts/allocate", json!({"pool": "lab", "colour": "red"})),
        ] {
            let (status, answer) = send(call(&ana, Method::POST, path, body.clone())).await;
            assert!(matches!(status, 400 | 404 | 422), "{body}: {status} {answer}");
            assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
        }
        let (_, answer) = send(call(&boss, Method::GET, "/api/v1/pools", Value::Null)).await;
        assert_eq!(answer["pools"][0]["free"], 1);
        // Everyone's steps are in the audit log; Rui sees his part only.
        let (_, log) = send(call(&boss, Method::GET, "/api/v1/audit", Value::Null)).await;
        let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["release", "lend", "extend", "extend", "unmark", "mark", "mark", "allocate"]);
        let (_, log) = send(call(&rui, Method::GET, "/api/v1/audit", Value::Null)).await;
        assert_eq!(log["total"], 2, "{log}");
    }

    async fn quotas_are_set_by_admins_and_refuse_with_the_count(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        lab(app, 2).await;
        let ana = person_with_token(app, "ana").await;
        person_with_token(app, "rui").await;
        let as_ana = |method: Method, path: &str| app.client.request(method, format!("{}{path}", app.url)).bearer_auth(&ana);
        let (status, body) = send(app.as_user(Method::PUT, "boss", "/api/v1/quotas/ana").json(&json!({"max_hosts": 1}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["quota"]["max_hosts"], 1);
        let (status, _) = send(as_ana(Method::POST, "/api/v1/hosts/allocate").json(&json!({}))).await;
        assert_eq!(status, 200);
        let (status, body) = send(as_ana(Method::POST, "/api/v1/hosts/allocate").json(&json!({}))).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["message"], "Your quota is 1 node and you hold 1; release one first.");
        let (_, body) = send(as_ana(Method::GET, "/api/v1/quotas/ana")).await;
        assert_eq!((body["quota"]["held"].as_i64(), body["quota"]["default"].as_i64()), (Some(1), Some(0)));
        assert_eq!(send(as_ana(Method::GET, "/api/v1/quotas/rui")).await.0, 403);
        assert_eq!(send(as_ana(Method::PUT, "/api/v1/quotas/ana").json(&json!({"max_hosts": 9}))).await.0, 403);
        assert_eq!(send(app.as_user(Method::PUT, "boss", "/api/v1/quotas/nobody").json(&json!({"max_hosts": 1}))).await.0, 404);
        let (status, body) = send(app.as_user(Method::PUT, "boss", "/api/v1/quotas/ana").json(&json!({"max_hosts": -1}))).await;
        assert_eq!(status, 422, "{body}");
        // Back to the default (no limit): the second node comes.
        let (status, body) = send(app.as_user(Method::PUT, "boss", "/api/v1/quotas/ana").json(&json!({"max_hosts": null}))).await;
        assert_eq!((status, body["quota"]["max_hosts"].clone()), (200, Value::Null));
        assert_eq!(send(as_ana(Method::POST, "/api/v1/hosts/allocate").json(&json!({}))).await.0, 200);
    }

    async fn groups_open_pools_and_others_see_only_taken_until(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let ids = lab(app, 2).await;
        let ana = person_with_token(app, "ana").await;
        let rui = person_with_token(app, "rui").await;
        let call = |token: &str, method: Method, path: &str| {
            app.client.request(method, format!("{}{path}", app.url)).bearer_auth(token)
        };
        let boss = |method: Method, path: &str| app.as_user(method, "boss", path);
        // Groups: admins only, known people, a well-formed name.
        let (status, body) = send(call(&ana, Method::PUT, "/api/v1/groups/hpc").json(&json!({"members": ["ana"]}))).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = send(boss(Method::PUT, "/api/v1/groups/hpc").json(&json!({"members": ["ana", "nobody"]}))).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("nobody"), "{body}");
        let (status, _) = send(boss(Method::PUT, "/api/v1/groups/-x").json(&json!({"members": ["ana"]}))).await;
        assert_eq!(status, 422);
        let (status, body) = send(boss(Method::PUT, "/api/v1/groups/hpc").json(&json!({"members": ["ana", " ana", "rui"]}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["group"]["members"], json!(["ana", "rui"]));
        let (status, body) = send(boss(Method::PUT, "/api/v1/groups/hpc").json(&json!({"members": ["ana"]}))).await;
        assert_eq!(status, 200, "{body}");
        let (_, body) = send(call(&rui, Method::GET, "/api/v1/groups")).await;
        assert_eq!(body, json!({"groups": [{"name": "hpc", "members": ["ana"]}], "editable": true}));

        // The pool opens to the group only.
        let (status, body) = send(boss(Method::PUT, "/api/v1/pools/lab").json(&json!({"access": ["@hpc"]}))).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = send(call(&rui, Method::POST, "/api/v1/hosts/allocate").json(&json!({"pool": "lab"}))).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = send(call(&ana, Method::POST, "/api/v1/hosts/allocate").json(&json!({"pool": "lab"}))).await;
        assert_eq!(status, 200, "{body}");
        let taken = body["host"]["id"].as_i64().unwrap();
        let ends = body["host"]["lease_ends_at"].clone();
        assert!(ends.is_string(), "{body}");

        // Rui (back in the group) sees it taken and until when, not by whom.
        let (status, _) = send(boss(Method::PUT, "/api/v1/groups/hpc").json(&json!({"members": ["ana", "rui"]}))).await;
        assert_eq!(status, 200);
        let (_, seen) = send(call(&rui, Method::GET, "/api/v1/availability")).await;
        let slots = seen["pools"][0]["hosts"].as_array().unwrap().clone();
        assert_eq!(slots.len(), 2, "{seen}");
        let slot = slots.iter().find(|s| s["status"] == "taken").unwrap();
        assert_eq!((slot["id"].clone(), slot["holder"].clone(), slot["until"].clone()), (Value::Null, Value::Null, ends.clone()));
        assert_eq!(slots.iter().filter(|s| s["status"] == "free").count(), 1);
        assert!(!seen.to_string().contains("\"ana\""), "the holder leaks: {seen}");
        let (_, hers) = send(call(&ana, Method::GET, "/api/v1/availability")).await;
        let slot = hers["pools"][0]["hosts"].as_array().unwrap().iter().find(|s| s["status"] == "yours").cloned().unwrap();
        assert_eq!(slot["id"].as_i64(), Some(taken));
        let (_, all) = send(boss(Method::GET, "/api/v1/availability")).await;
        let slot = all["pools"][0]["hosts"].as_array().unwrap().iter().find(|s| s["status"] == "taken").cloned().unwrap();
        assert_eq!(slot["holder"], "ana");
        assert!(ids.contains(&taken));

        // The group is gone: Rui no longer sees the pool.
        assert_eq!(send(boss(Method::DELETE, "/api/v1/groups/hpc")).await.0, 204);
        let (_, seen) = send(call(&rui, Method::GET, "/api/v1/availability")).await;
        assert_eq!(seen, json!({"pools": []}));
    }
}

/// Moves a lease's end to `hours` from now, in the database.
async fn set_end(app: &TestApp, host: i64, hours: i64) {
    let db = bootler_server::cli::open_database(&app.config)
        .await
        .unwrap();
    let end = chrono::Utc::now() + chrono::Duration::hours(hours);
    bootler_domain::with_pool!(&db, pool => {
        sqlx::query("UPDATE hosts SET lease_ends_at = $1 WHERE id = $2")
            .bind(end)
            .bind(host)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    db.close().await;
}

/// The first mail whose subject starts with `subject`, waited for.
async fn wait_for(app: &TestApp, subject: &str) -> crate::support::app::OutboxMail {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(mail) = app
            .mails()
            .into_iter()
            .find(|m| m.subject.starts_with(subject))
        {
            return mail;
        }
        let subjects: Vec<String> = app.mails().iter().map(|m| m.subject.clone()).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no mail “{subject}…”: {subjects:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The running server's sweeper: a lease near its end gets a reminder by
/// mail, an ended one is released and its holder told (the clock moved by
/// rewriting the lease's end in the database).
#[tokio::test]
async fn the_server_reminds_and_ends_leases_by_mail() {
    let app = TestApp::start_with(None, |c| c.leases.sweep_seconds = 1).await;
    app.add_user("boss", Role::Admin).await;
    let ids = lab(&app, 1).await;
    let ana = person_with_token(&app, "ana").await;
    let (status, body) = send(
        app.client
            .post(format!("{}/api/v1/hosts/allocate", app.url))
            .bearer_auth(&ana)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The lease (3 days) starts inside the 3-day reminder: none is sent
    // for it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        app.mails().is_empty(),
        "{:?}",
        app.mails()
            .iter()
            .map(|m| m.subject.clone())
            .collect::<Vec<_>>()
    );
    // Less than a day left: the 1-day reminder, once.
    set_end(&app, ids[0], 23).await;
    let reminder = wait_for(&app, "Your lease of n1 ends in").await;
    assert_eq!(reminder.subject, "Your lease of n1 ends in 22 hours");
    assert_eq!(reminder.to, "ana@uminho.pt");
    assert!(
        reminder.text.contains("Extend it in Bootler"),
        "{}",
        reminder.text
    );
    // Over: released by Bootler, Ana told, the audit has it.
    set_end(&app, ids[0], -1).await;
    let ended = wait_for(&app, "Your lease of n1 has ended").await;
    assert!(
        ended.text.contains("went back to pool “lab”"),
        "{}",
        ended.text
    );
    assert_eq!(app.mails().len(), 2, "one reminder, one end");
    let (_, body) =
        send(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{}", ids[0]))).await;
    assert_eq!(body["host"]["holder"], Value::Null);
    let (_, log) = send(app.as_user(Method::GET, "boss", "/api/v1/audit?action=expire")).await;
    assert_eq!(log["entries"][0]["actor"], "bootler");
    assert_eq!(log["entries"][0]["subject"], "ana");
    app.stop().await;
}
