//! Power over HTTP: drivers set by admins (BMC passwords sealed, never
//! shown), power requests as jobs by the holder, Wake-on-LAN packets
//! caught by a UDP listener on loopback, the audit log, and power-ons
//! paced per pool.

use std::time::{Duration, Instant};

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::UdpSocket;

use crate::support::app::TestApp;

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Boots `count` hosts and enrols them into pool `lab`; their ids and MACs.
async fn hosts(app: &TestApp, count: u8) -> Vec<(i64, String)> {
    let (status, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/pools")
            .json(&json!({"name": "lab", "default_lease_hours": 72})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut out = Vec::new();
    for n in 1..=count {
        let mac = format!("52-54-00-ee-00-{n:02x}");
        let res = app
            .client
            .get(format!("{}/boot/{mac}?hostname=p{n}", app.url))
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
        out.push((id, mac.replace('-', ":")));
    }
    out
}

/// Waits for a job to end; its final JSON.
async fn finished(app: &TestApp, user: &str, job: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = send(app.as_user(Method::GET, user, &format!("/api/v1/jobs/{job}"))).await;
        let state = body["job"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            return body["job"].clone();
        }
        assert!(Instant::now() < deadline, "job {job} still {state}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next magic packet the listener gets, as the MAC it wakes.
async fn packet(listener: &UdpSocket) -> String {
    let mut buf = [0u8; 256];
    let (n, _) = tokio::time::timeout(Duration::from_secs(20), listener.recv_from(&mut buf))
        .await
        .expect("a Wake-on-LAN packet within 20 s")
        .unwrap();
    assert_eq!(n, 102, "a magic packet is 102 bytes");
    assert_eq!(buf[..6], [0xFF; 6]);
    let mac = &buf[6..12];
    for copy in buf[6..102].chunks(6) {
        assert_eq!(copy, mac);
    }
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

both_engines! {
    async fn holders_wake_their_nodes_and_admins_set_the_drivers(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        app.add_user("rui", Role::User).await;
        let hosts = hosts(app, 1).await;
        let (id, mac) = hosts[0].clone();
        let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let path = format!("/api/v1/hosts/{id}");

        // No driver yet: a sentence, no job.
        let (status, body) = send(app.as_user(Method::POST, "boss", &format!("{path}/power")).json(&json!({"action": "on"}))).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no power driver"), "{body}");

        // Only admins set drivers; bad ones are refused with the reason
        // and change nothing.
        let wol = json!([{"driver": "wol", "broadcast": "127.0.0.1", "port": port}]);
        assert_eq!(send(app.as_user(Method::PUT, "ana", &path).json(&json!({"power": wol}))).await.0, 403);
        for bad in [
            json!({"power": [{"driver": "wol", "broadcast": "everyone"}], "name": "renamed"}),
            json!({"power": [{"driver": "ipmi", "address": "10.0.0.9", "username": "admin"}]}),
            json!({"power": [{"driver": "telepathy"}]}),
        ] {
            let (status, body) = send(app.as_user(Method::PUT, "boss", &path).json(&bad)).await;
            assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
        let (_, body) = send(app.as_user(Method::GET, "boss", &path)).await;
        assert_eq!(body["host"]["name"], "p1", "nothing changed");
        assert_eq!(body["host"]["power"]["drivers"], json!([]));

        // A BMC password is sealed at rest and never shown back.
        let ipmi = json!({"driver": "ipmi", "address": "127.0.0.1", "port": 9, "username": "admin", "password": "calvin-7"});
        let (status, body) = send(app.as_user(Method::PUT, "boss", &path).json(&json!({"power": [ipmi, wol[0]]}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["host"]["power"]["drivers"][0]["password_set"], true);
        assert!(!body.to_string().contains("calvin"), "{body}");
        let db = bootler_server::cli::open_database(&app.config).await.unwrap();
        let stored: String = bootler_domain::with_pool!(&db, pool => {
            sqlx::query_scalar("SELECT power FROM hosts WHERE id = $1").bind(id).fetch_one(pool).await
        }).unwrap();
        assert!(!stored.contains("calvin") && stored.contains("sealed:v1:"), "{stored}");
        db.close().await;
        // Saved again without the password: it stays.
        let ipmi_again = json!({"driver": "ipmi", "address": "127.0.0.1", "port": 9, "username": "admin"});
        let (status, body) = send(app.as_user(Method::PUT, "boss", &path).json(&json!({"power": [ipmi_again, wol[0]]}))).await;
        assert_eq!((status, body["host"]["power"]["drivers"][0]["password_set"].clone()), (200, json!(true)), "{body}");
        // Wake-on-LAN alone from here.
        let (status, _) = send(app.as_user(Method::PUT, "boss", &path).json(&json!({"power": wol}))).await;
        assert_eq!(status, 200);

        // Ana holds it: she may wake it; Rui may not; bad actions say so.
        let (status, _) = send(app.as_user(Method::POST, "boss", &format!("{path}/allocate")).json(&json!({"user": "ana"}))).await;
        assert_eq!(status, 200);
        assert_eq!(send(app.as_user(Method::POST, "rui", &format!("{path}/power")).json(&json!({"action": "wake"}))).await.0, 404);
        let (status, body) = send(app.as_user(Method::POST, "ana", &format!("{path}/power")).json(&json!({"action": "explode"}))).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = send(app.as_user(Method::POST, "ana", &format!("{path}/power")).json(&json!({"action": "off"}))).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("wol only"), "{body}");
        let (status, body) = send(app.as_user(Method::POST, "ana", &format!("{path}/power")).json(&json!({"action": "wake"}))).await;
        assert_eq!(status, 202, "{body}");
        let job = body["job"]["id"].as_i64().unwrap();
        assert_eq!(packet(&listener).await, mac);
        let done = finished(app, "ana", job).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        // Wake-on-LAN cannot read the state: sent, not confirmed.
        assert_eq!(done["result"]["result"], "sent", "{done}");
        let (_, body) = send(app.as_user(Method::GET, "ana", &path)).await;
        let power = &body["host"]["power"];
        assert_eq!((power["action"].as_str(), power["result"].as_str(), power["state"].as_str()), (Some("wake"), Some("sent"), None), "{power}");
        let (_, log) = send(app.as_user(Method::GET, "boss", "/api/v1/audit?action=power")).await;
        assert_eq!(log["total"], 1, "{log}");
        assert_eq!(log["entries"][0]["actor"], "ana");
        assert_eq!(log["entries"][0]["subject"], "ana");
        let (_, body) = send(app.as_user(Method::GET, "ana", &path)).await;
        assert!(body["timeline"].to_string().contains("power wake sent by Wake-on-LAN"), "{}", body["timeline"]);
    }
}

/// Twenty power-ons at two per two seconds: the packets arrive in ten
/// waves, never more than two within any two seconds.
#[tokio::test]
async fn bulk_power_ons_are_paced_per_pool() {
    let app = TestApp::start_with(None, |config| {
        config.power.starts_per_window = 2;
        config.power.starts_window_seconds = 2;
        config.jobs.workers = 4;
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    let hosts = hosts(&app, 20).await;
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for (id, _) in &hosts {
        let (status, body) = send(
            app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}"))
                .json(
                    &json!({"power": [{"driver": "wol", "broadcast": "127.0.0.1", "port": port}]}),
                ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let ids: Vec<i64> = hosts.iter().map(|(id, _)| *id).collect();
    let (status, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/hosts/power")
            .json(&json!({"hosts": ids, "action": "wake"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"].as_array().unwrap().len(), 20);
    // When each host's power-on was scheduled.
    let unix = |at: &Value| {
        chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap())
            .unwrap()
            .timestamp_micros() as f64
            / 1e6
    };
    let turn: std::collections::HashMap<i64, f64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["payload"]["host_id"].as_i64().unwrap(),
                unix(&j["run_at"]),
            )
        })
        .collect();
    let mut plan: Vec<f64> = turn.values().copied().collect();
    plan.sort_by(f64::total_cmp);
    for window in plan.windows(3) {
        assert!(
            window[2] - window[0] >= 1.999,
            "three power-ons scheduled within two seconds: {plan:?}"
        );
    }
    assert!(plan[19] - plan[0] >= 17.999, "ten waves: {plan:?}");
    // Each driver sends three copies of its packet: the first of each host
    // arrives at its turn, never before (a busy machine may only make it
    // late).
    let now = || chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let mut firsts: Vec<(f64, String)> = Vec::new();
    while firsts.len() < 20 {
        let mac = packet(&listener).await;
        let at = now();
        if !firsts.iter().any(|(_, m)| *m == mac) {
            firsts.push((at, mac));
        }
    }
    for (at, mac) in &firsts {
        let (id, _) = hosts.iter().find(|(_, m)| m == mac).unwrap();
        assert!(
            *at >= turn[id] - 0.05,
            "{mac} woke {:.2} s before its turn",
            turn[id] - at
        );
    }
    // More than one request in bulk is refused whole for a host not held.
    app.add_user("ana", Role::User).await;
    let (status, _) = send(
        app.as_user(Method::POST, "ana", "/api/v1/hosts/power")
            .json(&json!({"hosts": [ids[0]], "action": "wake"})),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Through the API and the job queue to a real BMC (`ipmi_sim`): power on
/// is confirmed by a state read; "reinstall now" marks the host, sets the
/// network boot once and restarts it; a wrong password fails the job with a
/// sentence the holder reads on the host.
#[tokio::test]
async fn ipmi_power_is_confirmed_and_reinstall_boots_from_the_network() {
    use crate::support::ipmi_sim::{IpmiSim, PASSWORD, USER};
    let sim = tokio::task::spawn_blocking(IpmiSim::start).await.unwrap();
    let app = TestApp::sqlite().await;
    app.add_user("boss", Role::Admin).await;
    app.add_user("ana", Role::User).await;
    let (id, _) = hosts(&app, 1).await[0].clone();
    let path = format!("/api/v1/hosts/{id}");
    let bmc = |password: &str| json!({"power": [{"driver": "ipmi", "address": "127.0.0.1", "port": sim.port, "username": USER, "password": password}]});
    let (status, body) = send(app.as_user(Method::PUT, "boss", &path).json(&bmc(PASSWORD))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        app.as_user(Method::POST, "boss", &format!("{path}/allocate"))
            .json(&json!({"user": "ana"})),
    )
    .await;
    assert_eq!(status, 200);
    sim.set_power(false);

    let (status, body) = send(
        app.as_user(Method::POST, "ana", &format!("{path}/power"))
            .json(&json!({"action": "on"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = finished(&app, "ana", body["job"]["id"].as_i64().unwrap()).await;
    assert_eq!(
        (done["state"].as_str(), done["result"]["result"].as_str()),
        (Some("succeeded"), Some("confirmed")),
        "{done}"
    );
    assert!(sim.power(), "the chassis is on");
    assert!(sim.ipmitool_power(), "ipmitool agrees");
    assert!(
        sim.sets().contains(&"set power 1".to_string()),
        "{:?}",
        sim.sets()
    );
    let (_, body) = send(app.as_user(Method::GET, "ana", &path)).await;
    assert_eq!(
        (
            body["host"]["power"]["state"].as_str(),
            body["host"]["power"]["result"].as_str()
        ),
        (Some("on"), Some("confirmed")),
        "{body}"
    );

    // Reinstall now: marked, network boot once, restarted.
    let before = sim.sets().len();
    let (status, body) = send(app.as_user(Method::POST, "ana", &format!("{path}/reinstall"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["host"]["state"], "install_pending");
    let done = finished(&app, "ana", body["job"]["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["pxe"], true, "{done}");
    let sets = sim.sets()[before..].to_vec();
    let pxe = sets
        .iter()
        .position(|s| s == "set boot pxe")
        .expect("network boot set");
    let off = sets
        .iter()
        .position(|s| s == "set power 0")
        .expect("powered off");
    let on = sets
        .iter()
        .rposition(|s| s == "set power 1")
        .expect("and on again");
    assert!(pxe < off && off < on, "{sets:?}");
    assert!(sim.power());

    // A wrong password: the job fails with the BMC's refusal, shown on the host.
    let (status, _) = send(
        app.as_user(Method::PUT, "boss", &path)
            .json(&bmc("wrong-password")),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(
        app.as_user(Method::POST, "ana", &format!("{path}/power"))
            .json(&json!({"action": "off"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = finished(&app, "ana", body["job"]["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("wrong user name or password"),
        "{done}"
    );
    let (_, body) = send(app.as_user(Method::GET, "ana", &path)).await;
    assert!(
        body["host"]["power"]["result"]
            .as_str()
            .unwrap()
            .starts_with("failed: "),
        "{body}"
    );
    assert!(sim.power(), "nothing was switched off");
    let (_, log) = send(app.as_user(Method::GET, "boss", "/api/v1/audit?action=power")).await;
    assert_eq!(log["total"], 3, "{log}");
    app.stop().await;
}

/// The host's JSON as its admin sees it.
async fn host_json(app: &TestApp, id: i64) -> Value {
    let (status, body) =
        send(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

// A pool's Wake-on-LAN settings start its nodes that have no driver of
// their own, and fill in what a node's own Wake-on-LAN leaves empty;
// packets leave by the interface asked for.
both_engines! {
    async fn pools_wake_their_nodes_on_lan(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let hosts = hosts(app, 2).await;
        let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pool = "/api/v1/pools/lab";
        let wake = |id: i64| app.as_user(Method::POST, "boss", &format!("/api/v1/hosts/{id}/power")).json(&json!({"action": "wake"}));

        // Bad settings are refused with the reason; nothing changes.
        for (bad, words) in [
            (json!({"wake": {"broadcast": "everyone"}}), "not an IP address"),
            (json!({"wake": {"interface": "eth 0"}}), "network interface"),
            (json!({"wake": {"colour": "red"}}), "colour"),
        ] {
            let (status, body) = send(app.as_user(Method::PUT, "boss", pool).json(&bad)).await;
            assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
            assert!(body["error"]["message"].as_str().unwrap().contains(words), "{bad}: {body}");
        }
        let (status, body) = send(wake(hosts[0].0)).await;
        assert_eq!(status, 409, "no driver yet: {body}");

        let (status, body) = send(app.as_user(Method::PUT, "boss", pool).json(
            &json!({"wake": {"broadcast": "127.0.0.1", "port": port, "interface": "lo"}}),
        )).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["pool"]["wake"]["interface"], "lo", "{body}");

        // No driver of its own: woken as its pool says.
        let body = host_json(app, hosts[0].0).await;
        assert_eq!(body["host"]["power"]["drivers"], json!([]), "{body}");
        assert_eq!(body["host"]["power"]["effective"][0]["driver"], "wol", "{body}");
        let (status, body) = send(wake(hosts[0].0)).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(packet(&listener).await, hosts[0].1);
        let done = finished(app, "boss", body["job"]["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert!(done["result"]["driver"].as_str().unwrap().contains("via lo"), "{done}");

        // Its own Wake-on-LAN without a port: the pool's port.
        let (status, body) = send(app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{}", hosts[1].0))
            .json(&json!({"power": [{"driver": "wol", "broadcast": "127.0.0.1"}]}))).await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = send(wake(hosts[1].0)).await;
        assert_eq!(status, 202);
        // Three copies of each packet: skip what is left of the first.
        let mut got = packet(&listener).await;
        while got == hosts[0].1 {
            got = packet(&listener).await;
        }
        assert_eq!(got, hosts[1].1);

        // An interface that is not there: the job fails and names it.
        let (status, _) = send(app.as_user(Method::PUT, "boss", pool).json(
            &json!({"wake": {"broadcast": "127.0.0.1", "port": port, "interface": "bootlr-none0"}}),
        )).await;
        assert_eq!(status, 200);
        let (status, body) = send(wake(hosts[0].0)).await;
        assert_eq!(status, 202, "{body}");
        let done = finished(app, "boss", body["job"]["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "failed", "{done}");
        assert!(done["error"].as_str().unwrap().contains("bootlr-none0"), "{done}");

        // Cleared: the node without a driver cannot be started again.
        let (status, body) = send(app.as_user(Method::PUT, "boss", pool).json(&json!({"wake": null}))).await;
        assert_eq!((status, body["pool"]["wake"].clone()), (200, Value::Null), "{body}");
        let (status, body) = send(wake(hosts[0].0)).await;
        assert_eq!(status, 409, "{body}");
    }
}

/// Administrators test a host's power drivers (a BMC answers with the
/// state, a wrong password and Wake-on-LAN say so), and the poll keeps the
/// state fresh when the chassis changes behind Bootler's back.
#[tokio::test]
async fn connection_tests_and_the_state_poll_read_the_bmc() {
    use crate::support::ipmi_sim::{IpmiSim, PASSWORD, USER};
    let sim = tokio::task::spawn_blocking(IpmiSim::start).await.unwrap();
    let app = TestApp::start_with(None, |config| {
        config.power.poll_seconds = 1;
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    app.add_user("ana", Role::User).await;
    let hosts = hosts(&app, 3).await;
    let (bmc, wol, wrong) = (hosts[0].0, hosts[1].0, hosts[2].0);
    let set = |id: i64, power: Value| {
        app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}"))
            .json(&json!({ "power": power }))
    };
    let ipmi = |password: &str| json!([{"driver": "ipmi", "address": "127.0.0.1", "port": sim.port, "username": USER, "password": password}]);
    assert_eq!(send(set(bmc, ipmi(PASSWORD))).await.0, 200);
    assert_eq!(send(set(wrong, ipmi("not-the-one"))).await.0, 200);
    assert_eq!(
        send(set(
            wol,
            json!([{"driver": "wol", "broadcast": "127.0.0.1"}])
        ))
        .await
        .0,
        200
    );
    let test = |user: &str, id: i64| {
        app.as_user(
            Method::POST,
            user,
            &format!("/api/v1/hosts/{id}/power/test"),
        )
    };
    sim.set_power(false);

    assert_eq!(send(test("ana", bmc)).await.0, 403);
    let (status, body) = send(test("boss", bmc)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"][0]["outcome"], "ok", "{body}");
    assert!(
        body["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("power is off"),
        "{body}"
    );
    assert_eq!(host_json(&app, bmc).await["host"]["power"]["state"], "off");
    let (status, body) = send(test("boss", wrong)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"][0]["outcome"], "failed", "{body}");
    assert!(
        body["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    let (status, body) = send(test("boss", wol)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"][0]["outcome"], "untestable", "{body}");
    assert_eq!(send(test("boss", 9999)).await.0, 404);

    // Powered on behind Bootler's back: the poll sees it.
    sim.set_power(true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = host_json(&app, bmc).await;
        if body["host"]["power"]["state"] == "on" {
            assert!(
                body["timeline"]
                    .to_string()
                    .contains("power found on by the state poll"),
                "{}",
                body["timeline"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poll never read “on”: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Wake-on-LAN only: never read.
    assert_eq!(
        host_json(&app, wol).await["host"]["power"]["state"],
        Value::Null
    );
    app.stop().await;
}
