//! The simulated lab, end to end: BMCs (OpenIPMI's `ipmi_sim`) whose
//! chassis is a QEMU PXE node, as `scripts/lab.sh` builds them, driven
//! through Bootler's API and job queue.
//!
//! - "Reinstall now" by the holder: the BMC is told to boot from the network
//!   once and to power on, which starts the node; the node chains to
//!   `/boot/<mac>`, gets its system script and the host is `installing`;
//!   the holder's WebSocket hears the power job and then the install, in
//!   that order. Powering off through the API stops the node.
//! - Bulk power-on of a pool, paced: the power-ons the BMCs see are never
//!   more than the pace allows within a window.

use std::time::{Duration, Instant};

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::jobs::{next_message, socket};
use crate::support::app::TestApp;
use crate::support::ipmi_sim::{IpmiSim, PASSWORD, USER};
use crate::support::pxe::{self, GUEST_SERVER_ADDR};

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sends and insists on a 2xx answer; its body.
async fn ok(request: reqwest::RequestBuilder) -> Value {
    let (status, body) = send(request).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body
}

/// The app's port on loopback.
fn port(app: &TestApp) -> u16 {
    app.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Registers `mac` as a node would (`GET /boot/<mac>?hostname=…`) and, as
/// an admin, gives it `settings` (pool, templates, power); its id.
async fn enrol(app: &TestApp, mac: &str, name: &str, settings: Value) -> i64 {
    let res = app
        .client
        .get(format!("{}/boot/{mac}?hostname={name}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{mac} registers");
    let body = ok(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts?mac={mac}"))).await;
    let id = body["hosts"][0]["id"].as_i64().unwrap();
    ok(app
        .as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}"))
        .json(&settings))
    .await;
    id
}

/// The IPMI driver settings for `sim`.
fn bmc(sim: &IpmiSim) -> Value {
    json!([{"driver": "ipmi", "address": "127.0.0.1", "port": sim.port, "username": USER, "password": PASSWORD}])
}

/// Waits for a job to end; its final JSON.
async fn finished(app: &TestApp, user: &str, job: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, body) = send(app.as_user(Method::GET, user, &format!("/api/v1/jobs/{job}"))).await;
        let state = body["job"]["state"].as_str().unwrap_or_default();
        if matches!(state, "succeeded" | "failed" | "cancelled") {
            return body["job"].clone();
        }
        assert!(Instant::now() < deadline, "job {job} still {state}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A WebSocket event about host `host` or job `job`, in words:
/// `job running`, `host install_pending`, `host power confirmed`, …
fn label(event: &Value, host: i64, job: i64) -> Option<String> {
    let data = &event["data"];
    match event["kind"].as_str()? {
        "job" if data["id"] == job => Some(format!("job {}", data["state"].as_str()?)),
        "host" if data["host"] == host => Some(match data["power"].as_str() {
            Some(power) => format!("host power {power}"),
            None => format!("host {}", data["state"].as_str()?),
        }),
        _ => None,
    }
}

/// Asserts that `expected` occur in `seen` in this order (others may come
/// between them).
fn in_order(seen: &[String], expected: &[&str]) {
    let mut from = 0;
    for want in expected {
        let Some(found) = seen[from..].iter().position(|s| s == want) else {
            panic!("expected {expected:?} in this order; the holder heard {seen:?}");
        };
        from += found + 1;
    }
}

/// The node's console, with the 80-column wrapping undone.
fn console(sim: &IpmiSim) -> String {
    sim.node_log().replace(['\r', '\n'], "")
}

/// "Reinstall now" on a lab node that is off: the whole path from the
/// holder's click to the node running its install, and back off.
async fn reinstall_now(database: Option<String>) {
    const MAC: &str = "52:54:00:1c:00:01";
    const HEXHYP: &str = "52-54-00-1c-00-01";
    // Nodes reach the server at 10.0.2.100 (QEMU forwards it here).
    let app = TestApp::start_with(database, |c| {
        c.boot.base_url = Some(format!("http://{GUEST_SERVER_ADDR}"));
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    app.add_user("ana", Role::User).await;
    let http_port = port(&app);

    // A pool, an install whose system script the node runs and then stays
    // on in (an installer at work), and the node, held by Ana.
    ok(app
        .as_user(Method::POST, "boss", "/api/v1/pools")
        .json(&json!({"name": "lab"})))
    .await;
    ok(app.as_user(Method::POST, "boss", "/api/v1/templates").json(&json!({
        "name": "lab-installer",
        "kind": "system",
        "body": "#!ipxe\necho LAB-SYSTEM {{ host.name }} {{ mac.mac_address }}\necho LAB-INSTALLER-RUNNING\nshell\n",
    })))
    .await;
    let id = enrol(
        &app,
        HEXHYP,
        "lab1",
        json!({"pool": "lab", "system": "lab-installer"}),
    )
    .await;
    let path = format!("/api/v1/hosts/{id}");
    ok(app
        .as_user(Method::POST, "boss", &format!("{path}/allocate"))
        .json(&json!({"user": "ana"})))
    .await;

    // Its BMC: power on starts the QEMU node, power off stops it.
    let sim = tokio::task::spawn_blocking(move || {
        IpmiSim::start_node(|dir| pxe::shell_command(MAC, http_port, dir).unwrap())
    })
    .await
    .unwrap();
    assert!(!sim.power(), "the node starts off");
    ok(app
        .as_user(Method::PUT, "boss", &path)
        .json(&json!({"power": bmc(&sim)})))
    .await;

    // Ana watches, then clicks "reinstall now".
    let mut ws = socket(&app.url, "ana", "").await.unwrap();
    let hello = next_message(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    let (status, body) = send(app.as_user(Method::POST, "ana", &format!("{path}/reinstall"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["host"]["state"], "install_pending", "{body}");
    let job = body["job"]["id"].as_i64().unwrap();

    // What Ana hears, until the install has begun.
    let mut heard = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !heard.iter().any(|l| l == "host installing") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = next_message(&mut ws, left).await else {
            panic!(
                "no install within 120 s; heard {heard:?}\nBMC calls: {:?}\nrequests: {:?}\nconsole:\n{}",
                sim.log(),
                pxe::requests(sim.dir()),
                sim.node_log()
            );
        };
        if message["type"] == "event"
            && let Some(label) = label(&message["event"], id, job)
        {
            heard.push(label);
        }
    }

    // The BMC: network boot once, then power on (the node was off: nothing
    // to cut first); the real ipmitool reads the boot flag back.
    let sets = sim.sets();
    let pxe_at = sets
        .iter()
        .position(|s| s == "set boot pxe")
        .unwrap_or_else(|| panic!("no network boot set: {sets:?}"));
    let on_at = sets
        .iter()
        .position(|s| s == "set power 1")
        .unwrap_or_else(|| panic!("never powered on: {sets:?}"));
    assert!(pxe_at < on_at, "network boot set after power-on: {sets:?}");
    assert!(
        !sets[..on_at].iter().any(|s| s == "set power 0"),
        "{sets:?}"
    );
    let flags = sim.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(flags.contains("Force PXE"), "{flags}");

    // QEMU runs, with the node's MAC, and went to the server: the entry
    // script, then its own boot URL, which served the system script.
    let pid = sim.node_pid().expect("the node (QEMU) runs");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains(pxe::QEMU) && cmdline.contains(&format!("mac={MAC}")),
        "{cmdline}"
    );
    let requests = pxe::requests(sim.dir());
    let entry = requests
        .iter()
        .position(|r| r == "GET /boot.ipxe")
        .unwrap_or_else(|| panic!("{requests:?}"));
    let own = requests
        .iter()
        .position(|r| r.starts_with(&format!("GET /boot/{HEXHYP}?")))
        .unwrap_or_else(|| panic!("{requests:?}"));
    assert!(entry < own, "{requests:?}");
    // The script runs: the console shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !console(&sim).contains("LAB-INSTALLER-RUNNING") {
        assert!(Instant::now() < deadline, "{}", sim.node_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        console(&sim).contains(&format!("LAB-SYSTEM lab1 {HEXHYP}")),
        "{}",
        sim.node_log()
    );

    // The host: installing, powered on (confirmed by a state read), and its
    // timeline says why.
    let body = ok(app.as_user(Method::GET, "ana", &path)).await;
    let host = &body["host"];
    assert_eq!(host["state"], "installing", "{body}");
    assert_eq!(
        (
            host["power"]["state"].as_str(),
            host["power"]["result"].as_str()
        ),
        (Some("on"), Some("confirmed")),
        "{body}"
    );
    let kinds: Vec<&str> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"install"), "{}", body["timeline"]);
    assert!(kinds.contains(&"power"), "{}", body["timeline"]);
    let job_done = finished(&app, "ana", job, Duration::from_secs(10)).await;
    assert_eq!(job_done["state"], "succeeded", "{job_done}");
    assert_eq!(job_done["result"]["pxe"], true, "{job_done}");
    assert_eq!(job_done["result"]["result"], "confirmed", "{job_done}");

    // Ana heard it in order: the mark, the power job run and its outcome,
    // then the install. The power job ends long before iPXE (5–10 s under
    // TCG) reaches the server.
    in_order(
        &heard,
        &[
            "host install_pending",
            "job running",
            "host power confirmed",
            "job succeeded",
            "host installing",
        ],
    );
    if let Some(queued) = heard.iter().position(|l| l == "job queued") {
        let running = heard.iter().position(|l| l == "job running").unwrap();
        assert!(queued < running, "{heard:?}");
    }
    assert!(
        !heard
            .iter()
            .any(|l| l == "job failed" || l == "host failed"),
        "{heard:?}"
    );

    // Off through the API: the BMC stops the node.
    let (status, body) = send(
        app.as_user(Method::POST, "ana", &format!("{path}/power"))
            .json(&json!({"action": "off"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let off = finished(
        &app,
        "ana",
        body["job"]["id"].as_i64().unwrap(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        (off["state"].as_str(), off["result"]["result"].as_str()),
        (Some("succeeded"), Some("confirmed")),
        "{off}"
    );
    assert_eq!(sim.sets().last().map(String::as_str), Some("set power 0"));
    assert_eq!(sim.node_pid(), None, "QEMU still runs");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.rsplit_once(") ").unwrap().1.starts_with('Z'),
        "QEMU {pid} still runs: {stat}"
    );
    assert!(!sim.ipmitool_power(), "ipmitool agrees");
    app.stop().await;
}

#[tokio::test]
async fn reinstall_now_boots_the_node_through_its_bmc_sqlite() {
    reinstall_now(None).await;
}

#[tokio::test]
async fn reinstall_now_boots_the_node_through_its_bmc_postgres() {
    reinstall_now(TestApp::database("postgres").await).await;
}

/// An RFC 3339 time from the API as Unix seconds.
fn unix(at: &Value) -> f64 {
    let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
    at.timestamp_micros() as f64 / 1e6
}

/// Six nodes of one pool powered on at once, at two per two seconds: the
/// BMCs see the power-ons in three waves.
async fn bulk_power_on_is_paced(database: Option<String>) {
    const NODES: usize = 6;
    let app = TestApp::start_with(database, |c| {
        c.power.starts_per_window = 2;
        c.power.starts_window_seconds = 2;
        c.jobs.workers = 4;
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    let sims: Vec<IpmiSim> = futures_util::future::join_all(
        (0..NODES).map(|_| tokio::task::spawn_blocking(IpmiSim::start)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    ok(app
        .as_user(Method::POST, "boss", "/api/v1/pools")
        .json(&json!({"name": "rack"})))
    .await;
    let mut ids = Vec::new();
    for (n, sim) in sims.iter().enumerate() {
        assert!(!sim.power());
        let mac = format!("52-54-00-1b-00-{:02x}", n + 1);
        let settings = json!({"pool": "rack", "system": "local-boot", "power": bmc(sim)});
        ids.push(enrol(&app, &mac, &format!("rack{}", n + 1), settings).await);
    }

    let (status, body) = send(
        app.as_user(Method::POST, "boss", "/api/v1/hosts/power")
            .json(&json!({"action": "on", "hosts": ids})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // When each host's power-on was scheduled (in the order of `ids`).
    let scheduled: Vec<(i64, f64)> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_i64().unwrap(), unix(&j["run_at"])))
        .collect();
    assert_eq!(scheduled.len(), NODES, "{body}");
    for (job, _) in &scheduled {
        let done = finished(&app, "boss", *job, Duration::from_secs(40)).await;
        assert_eq!(
            (done["state"].as_str(), done["result"]["result"].as_str()),
            (Some("succeeded"), Some("confirmed")),
            "{done}"
        );
    }
    // The schedule: never three power-ons within two seconds.
    let mut plan: Vec<f64> = scheduled.iter().map(|(_, at)| *at).collect();
    plan.sort_by(f64::total_cmp);
    for window in plan.windows(3) {
        assert!(
            window[2] - window[0] >= 1.999,
            "three power-ons scheduled within two seconds: {plan:?}"
        );
    }
    // And no BMC was told before its turn (its chassis script's clock); a
    // busy machine may only make them late.
    for (sim, (_, at)) in sims.iter().zip(&scheduled) {
        let times: Vec<f64> = sim
            .log()
            .into_iter()
            .filter(|(_, args)| args == "set power 1")
            .map(|(at, _)| at)
            .collect();
        assert_eq!(times.len(), 1, "one power-on per BMC: {:?}", sim.log());
        assert!(
            times[0] >= at - 0.05,
            "a BMC powered on {:.2} s before its turn",
            at - times[0]
        );
    }

    // Every host is on, confirmed, and every chassis agrees.
    for (id, sim) in ids.iter().zip(&sims) {
        let body = ok(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{id}"))).await;
        let power = &body["host"]["power"];
        assert_eq!(
            (power["state"].as_str(), power["result"].as_str()),
            (Some("on"), Some("confirmed")),
            "{body}"
        );
        assert!(sim.power(), "host {id}: its chassis is off");
    }
    assert!(sims[0].ipmitool_power(), "ipmitool agrees");
    app.stop().await;
}

#[tokio::test]
async fn bulk_power_on_is_paced_at_the_bmcs_sqlite() {
    bulk_power_on_is_paced(None).await;
}

#[tokio::test]
async fn bulk_power_on_is_paced_at_the_bmcs_postgres() {
    bulk_power_on_is_paced(TestApp::database("postgres").await).await;
}
