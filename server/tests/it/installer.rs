//! A real Debian installer end to end: the Debian 12 netboot image is
//! imported from Debian's own package (`debian-installer-12-netboot-amd64`)
//! into Bootler's image store; a QEMU node (1 GiB, TCG) marked with the
//! shipped `debian-netboot` and `debian-preseed` templates boots; iPXE
//! fetches the kernel and initrd from `/images/debian-12-amd64/`, the
//! installer starts, configures its network and fetches its preseed from
//! `/boot/{mac}/unattended`. The host's timeline shows each step. The test
//! stops there (no mirror is reachable) and stops QEMU itself.

use std::path::Path;
use std::time::{Duration, Instant};

use bootler_domain::accounts::Role;
use bootler_domain::images::ImageStore;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::pxe::{GUEST_SERVER_ADDR, PxeNode};

const NETBOOT: &str = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64";
const MAC: &str = "52:54:00:de:b1:01";

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = app.as_user(method, "boss", path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

#[tokio::test]
async fn a_debian_installer_boots_from_the_image_store_and_fetches_its_preseed() {
    assert!(
        Path::new(NETBOOT).join("linux").is_file(),
        "{NETBOOT} is missing: install the Debian package debian-installer-12-netboot-amd64 (scripts/setup.sh test does)"
    );
    let app = TestApp::start_with(None, |c| {
        c.base_url = Some(format!("http://{GUEST_SERVER_ADDR}"));
    })
    .await;
    app.add_user("boss", Role::Admin).await;
    let image = ImageStore::new(app.config.images_dir())
        .import_dir("debian-12-amd64", Path::new(NETBOOT), false, |_, _| {})
        .unwrap();
    assert!(image.files.iter().any(|f| f.path == "initrd.gz"));

    // The node as Bootler knows it before its first boot: registered,
    // enrolled, with the shipped Debian templates, marked.
    let port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let mac = MAC.replace(':', "-");
    let res = app
        .client
        .get(format!("{}/boot/{mac}?hostname=deb1", app.url))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let hosts = call(&app, Method::GET, &format!("/api/v1/hosts?mac={mac}"), None).await;
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();
    call(
        &app,
        Method::POST,
        "/api/v1/pools",
        Some(json!({"name": "lab"})),
    )
    .await;
    call(
        &app,
        Method::PUT,
        &format!("/api/v1/hosts/{id}"),
        Some(json!({
            "pool": "lab", "system": "debian-netboot", "unattended": "debian-preseed",
            // QEMU's restricted network hands out no name server, as in an
            // isolated lab: the installer would ask for one.
            "vars": {"disk": "/dev/vda", "console": "console=ttyS0,115200n8", "nameservers": "10.0.2.3"}
        })),
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/api/v1/hosts/{id}/mark"),
        None,
    )
    .await;

    let node = tokio::task::spawn_blocking(move || PxeNode::boot_with(MAC, port, 1024))
        .await
        .unwrap();
    // Under TCG the installer reaches its preseed in about 1.5 minutes.
    let deadline = Instant::now() + Duration::from_secs(420);
    let timeline = loop {
        let host = call(&app, Method::GET, &format!("/api/v1/hosts/{id}"), None).await;
        let timeline: Vec<(String, String)> = host["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or_default().to_string(),
                    e["detail"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if timeline.iter().any(|(kind, _)| kind == "unattended") {
            break timeline;
        }
        assert!(
            Instant::now() < deadline,
            "no preseed fetch in 7 minutes; timeline: {timeline:#?}\nconsole (end):\n{}",
            tail(&node.log(), 60)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let log = node.log();
    node.stop();

    // Each step, in order: the system script, the kernel and initrd from
    // the image store, the preseed.
    let steps: Vec<&str> = timeline
        .iter()
        .map(|(kind, _)| kind.as_str())
        .skip_while(|kind| *kind != "install")
        .filter(|kind| matches!(*kind, "install" | "image" | "unattended"))
        .collect();
    assert_eq!(
        steps,
        ["install", "image", "image", "unattended"],
        "{timeline:#?}"
    );
    let images: Vec<&str> = timeline
        .iter()
        .filter(|(kind, _)| kind == "image")
        .map(|(_, detail)| detail.as_str())
        .collect();
    assert!(
        images[0].starts_with("served /images/debian-12-amd64/linux ("),
        "{images:?}"
    );
    assert!(
        images[1].starts_with("served /images/debian-12-amd64/initrd.gz ("),
        "{images:?}"
    );
    // The installer itself ran: its kernel printed on the serial console.
    assert!(log.contains("Linux version"), "{}", tail(&log, 40));
    let host = call(&app, Method::GET, &format!("/api/v1/hosts/{id}"), None).await;
    assert_eq!(host["host"]["state"], "installing");
    app.stop().await;
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
