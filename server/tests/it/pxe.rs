//! A real PXE node (QEMU running iPXE) boots against the real server: it
//! fetches the entry script, chains to `/boot/<its MAC>`, registers itself
//! as a discovered host and boots "locally" (iPXE exits; QEMU ends). Marked
//! for an install, its next boot runs the rendered system script, fetches
//! its unattended file and says it is done; the one after boots locally.

use std::time::Duration;

use bootler_domain::accounts::Role;
use serde_json::Value;

use crate::support::app::TestApp;
use crate::support::pxe::{GUEST_SERVER_ADDR, PxeNode};

#[tokio::test]
async fn a_pxe_node_registers_itself_and_boots_locally() {
    // The node reaches the server at 10.0.2.100 (QEMU forwards it here), so
    // the scripts' links must use that address.
    let app = TestApp::start_with(None, |c| {
        c.base_url = Some(format!("http://{GUEST_SERVER_ADDR}"));
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();

    let mut node = tokio::task::spawn_blocking(move || PxeNode::boot("52:54:00:12:34:56", port))
        .await
        .unwrap();
    let exited = tokio::task::spawn_blocking(move || {
        let status = node.wait_exit(Duration::from_secs(120));
        (status, node.log())
    })
    .await
    .unwrap();
    let (status, log) = exited;
    assert!(
        status.is_some_and(|s| s.success()),
        "the node did not boot through to its local disk: {status:?}\n{log}"
    );
    // The console wraps at 80 columns.
    let console = log.replace(['\r', '\n'], "");
    assert!(
        console.contains("node-525400123456 (52:54:00:12:34:56) is not marked for an install; booting from the local disk."),
        "{log}"
    );
    assert!(
        !console.contains("no network interface got an address"),
        "{log}"
    );

    let hosts: Value = app
        .as_user(
            reqwest::Method::GET,
            "boss",
            "/api/v1/hosts?mac=52-54-00-12-34-56",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hosts["total"], 1, "{hosts}");
    let host = &hosts["hosts"][0];
    assert_eq!(host["state"], "discovered");
    assert_eq!(host["name"], "node-525400123456");
    let id = host["id"].as_i64().unwrap();
    let detail: Value = app
        .as_user(reqwest::Method::GET, "boss", &format!("/api/v1/hosts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["boot", "discovered"]);

    // Enrol it and mark it for an install whose system script chains to
    // the test's own unattended "installer": an iPXE script that reports
    // its context and calls `done`.
    let call = |method: reqwest::Method, path: String, body: Value| {
        let request = app.as_user(method, "boss", &path).json(&body);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert!(status < 300, "{path}: {status} {body}");
            body
        }
    };
    call(
        reqwest::Method::POST,
        "/api/v1/pools".into(),
        serde_json::json!({"name": "rack1"}),
    )
    .await;
    call(
        reqwest::Method::POST,
        "/api/v1/templates".into(),
        serde_json::json!({"name": "chain-to-test", "kind": "system", "body":
            "#!ipxe\necho TEST-SYSTEM {{ host.name }} {{ mac.mac_address }}\nchain {{ unattended_url }}\n"}),
    )
    .await;
    call(
        reqwest::Method::POST,
        "/api/v1/templates".into(),
        serde_json::json!({"name": "test-installer", "kind": "unattended", "body":
            "#!ipxe\necho TEST-INSTALLER for {{ user.username }} disk={{ vars.disk }}\nimgfetch {{ done_url }} && echo TEST-DONE-CALLED\nexit\n"}),
    )
    .await;
    call(
        reqwest::Method::PUT,
        format!("/api/v1/hosts/{id}"),
        serde_json::json!({"pool": "rack1", "system": "chain-to-test", "unattended": "test-installer", "vars": {"disk": "vda"}}),
    )
    .await;
    let marked = call(
        reqwest::Method::POST,
        format!("/api/v1/hosts/{id}/mark"),
        Value::Null,
    )
    .await;
    assert_eq!(marked["host"]["state"], "install_pending");

    let boot_node = || async move {
        let mut node =
            tokio::task::spawn_blocking(move || PxeNode::boot("52:54:00:12:34:56", port))
                .await
                .unwrap();
        tokio::task::spawn_blocking(move || {
            let status = node.wait_exit(Duration::from_secs(120));
            (status, node.log().replace(['\r', '\n'], ""))
        })
        .await
        .unwrap()
    };
    let (status, console) = boot_node().await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{console}");
    assert!(
        console.contains("TEST-SYSTEM node-525400123456 52-54-00-12-34-56"),
        "{console}"
    );
    assert!(
        console.contains("TEST-INSTALLER for boss disk=vda"),
        "{console}"
    );
    assert!(console.contains("TEST-DONE-CALLED"), "{console}");
    let detail = call(
        reqwest::Method::GET,
        format!("/api/v1/hosts/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(detail["host"]["state"], "installed", "{detail}");
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .take(3)
        .collect();
    assert_eq!(kinds, ["done", "unattended", "install"]);

    // The next boot goes to the disk: no reinstall loop.
    let (status, console) = boot_node().await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{console}");
    assert!(
        console.contains("is not marked for an install; booting from the local disk."),
        "{console}"
    );
    assert!(!console.contains("TEST-SYSTEM"), "{console}");
    app.stop().await;
}
