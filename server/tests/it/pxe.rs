//! A real PXE node (QEMU running iPXE) boots against the real server: it
//! fetches the entry script, chains to `/boot/<its MAC>`, registers itself
//! as a discovered host and boots "locally" (iPXE exits; QEMU ends).

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
    app.stop().await;
}
