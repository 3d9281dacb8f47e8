//! VMs over HTTP against a real, private libvirtd: the three answers
//! (bad ones refused with a sentence, nothing written), a VM that boots
//! (iPXE from a qcow2 base image), gets an address from the network's
//! DHCP and turns `running`; quotas; stop, start, destroy (nothing left in
//! libvirt); and a VM deleted behind Bootler's back shown as missing.

use std::time::{Duration, Instant};

use bootler_domain::accounts::Role;
use bootler_domain::vms::config::{Flavor, Image};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::libvirt::{Libvirtd, NETWORK_PREFIX, POOL};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb8Qb5fGB8Yk1lJc2yqb0F0+f3e3m1vSxV6Qb2lJ0bq ana@laptop";

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits until the VM is in `state` (none: gone); its JSON.
async fn settles(
    app: &TestApp,
    user: &str,
    id: i64,
    state: Option<&str>,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) =
            send(app.as_user(Method::GET, user, &format!("/api/v1/instances/{id}"))).await;
        match state {
            None if status == 404 => return body,
            Some(want) if body["instance"]["state"] == want => return body["instance"].clone(),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "VM {id} never became {state:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn vms_are_made_from_three_answers_and_go_without_a_trace() {
    let libvirtd = tokio::task::spawn_blocking(Libvirtd::start).await.unwrap();
    let image = libvirtd.ipxe_image();
    let mut libvirt = libvirtd.config();
    libvirt.pool_path = Some(libvirtd.pool_path());
    let app = TestApp::start_with(None, move |config| {
        config.vm.libvirt = libvirt;
        config.vm.flavors = vec![
            Flavor::new("tiny", 1, 128, 1),
            Flavor::new("wide", 2, 128, 1),
        ];
        config.vm.images = vec![Image {
            name: "iPXE".into(),
            reference: image.display().to_string(),
            login: Some("root".into()),
        }];
        config.vm.max_instances_per_user = 2;
        config.vm.max_vcpus_per_user = 2;
        config.vm.reconcile_seconds = 1;
        config.vm.create_timeout_seconds = 120;
    })
    .await;
    app.add_user("ana", Role::User).await;
    app.add_user("boss", Role::Admin).await;
    let create = |body: Value| {
        app.as_user(Method::POST, "ana", "/api/v1/instances")
            .json(&body)
    };

    // Bad answers: a sentence each, nothing written, nothing in libvirt.
    for (body, words) in [
        (
            json!({"hostname": "-x", "flavor": "tiny", "image": "iPXE", "ssh_key": KEY}),
            "not a host name",
        ),
        (
            json!({"hostname": "web", "flavor": "huge", "image": "iPXE", "ssh_key": KEY}),
            "no flavor “huge”",
        ),
        (
            json!({"hostname": "web", "flavor": "tiny", "image": "Windows", "ssh_key": KEY}),
            "no image “Windows”",
        ),
        (
            json!({"hostname": "web", "flavor": "tiny", "image": "iPXE", "ssh_key": "ssh-rsa AAAA"}),
            "key",
        ),
        (
            json!({"hostname": "web", "flavor": "tiny", "image": "iPXE"}),
            "SSH public key",
        ),
    ] {
        let (status, answer) = send(create(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(words),
            "{body}: {answer}"
        );
    }
    let (status, answer) = send(create(json!({"hostname": "web"}))).await;
    assert!(matches!(status, 400 | 422), "{answer}");
    let (_, list) = send(app.as_user(Method::GET, "ana", "/api/v1/instances")).await;
    assert_eq!(list["instances"], json!([]));
    assert!(libvirtd.domains().is_empty());

    // The three answers: creating at once, running with an address later.
    let (status, answer) = send(create(
        json!({"hostname": "Web-1", "flavor": "tiny", "image": "iPXE", "ssh_key": KEY}),
    ))
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["instance"]["state"], "creating");
    assert_eq!(answer["instance"]["hostname"], "web-1");
    let id = answer["instance"]["id"].as_i64().unwrap();
    let vm = settles(&app, "ana", id, Some("running"), Duration::from_secs(90)).await;
    assert_eq!(vm["backend"], "libvirt");
    let domain = format!("bootler-{id}-web-1");
    assert_eq!(libvirtd.domains(), std::slice::from_ref(&domain));
    let xml = libvirtd.virsh(&["dumpxml", &domain]);
    assert!(xml.contains("<vcpu placement='static'>1</vcpu>"), "{xml}");
    assert!(xml.contains("<memory unit='KiB'>131072</memory>"), "{xml}");
    // Its address comes from the network's DHCP (the reconciler fills it
    // in if the create job ended first).
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let (_, body) =
            send(app.as_user(Method::GET, "ana", &format!("/api/v1/instances/{id}"))).await;
        if let Some(address) = body["instance"]["addresses"][0].as_str() {
            assert_eq!(
                body["instance"]["ssh_command"],
                format!("ssh root@{address}")
            );
            break address.to_string();
        }
        assert!(Instant::now() < deadline, "no address: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(address.starts_with(NETWORK_PREFIX), "{address}");

    // Quotas: two vCPUs at most; the message says which and how much.
    let (status, answer) = send(create(
        json!({"hostname": "web-2", "flavor": "wide", "image": "iPXE", "ssh_key": KEY}),
    ))
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you use 1 of your 2"),
        "{answer}"
    );
    let (status, answer) = send(create(
        json!({"hostname": "web-1", "flavor": "tiny", "image": "iPXE", "ssh_key": KEY}),
    ))
    .await;
    assert_eq!(status, 409, "{answer}");
    let (_, choices) = send(app.as_user(Method::GET, "ana", "/api/v1/instances/choices")).await;
    let wide = choices["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "wide")
        .unwrap();
    assert!(
        wide["unavailable"].as_str().unwrap().contains("vCPUs"),
        "{choices}"
    );

    // Others see nothing of it; admins see everything and the capacity.
    assert_eq!(
        send(app.as_user(Method::GET, "boss", &format!("/api/v1/instances/{id}")))
            .await
            .0,
        200
    );
    app.add_user("rui", Role::User).await;
    assert_eq!(
        send(app.as_user(Method::GET, "rui", &format!("/api/v1/instances/{id}")))
            .await
            .0,
        404
    );
    assert_eq!(
        send(app.as_user(Method::DELETE, "rui", &format!("/api/v1/instances/{id}")))
            .await
            .0,
        404
    );
    let (status, capacity) =
        send(app.as_user(Method::GET, "boss", "/api/v1/instances/capacity")).await;
    assert_eq!(status, 200, "{capacity}");
    assert_eq!(capacity["used"]["vcpus"], 1);
    assert!(
        capacity["capacity"]["max_host_cores"].as_u64().unwrap() >= 1,
        "{capacity}"
    );
    assert_eq!(
        send(app.as_user(Method::GET, "ana", "/api/v1/instances/capacity"))
            .await
            .0,
        403
    );

    // Stop, start.
    let (status, answer) =
        send(app.as_user(Method::POST, "ana", &format!("/api/v1/instances/{id}/stop"))).await;
    assert_eq!(
        (status, answer["instance"]["state"].clone()),
        (202, json!("stopping")),
        "{answer}"
    );
    settles(&app, "ana", id, Some("stopped"), Duration::from_secs(60)).await;
    assert!(libvirtd.virsh(&["domstate", &domain]).contains("shut off"));
    let (status, answer) =
        send(app.as_user(Method::POST, "ana", &format!("/api/v1/instances/{id}/stop"))).await;
    assert_eq!(status, 409, "{answer}");
    let (status, _) = send(app.as_user(
        Method::POST,
        "ana",
        &format!("/api/v1/instances/{id}/start"),
    ))
    .await;
    assert_eq!(status, 202);
    settles(&app, "ana", id, Some("running"), Duration::from_secs(60)).await;

    // Destroyed: gone from Bootler and from libvirt, storage included.
    let (status, answer) =
        send(app.as_user(Method::DELETE, "ana", &format!("/api/v1/instances/{id}"))).await;
    assert_eq!(
        (status, answer["instance"]["state"].clone()),
        (202, json!("destroying")),
        "{answer}"
    );
    settles(&app, "ana", id, None, Duration::from_secs(60)).await;
    assert!(libvirtd.domains().is_empty());
    assert!(
        libvirtd.volumes(POOL).is_empty(),
        "{:?}",
        libvirtd.volumes(POOL)
    );

    // Deleted behind Bootler's back: the reconciler shows it missing.
    let (status, answer) = send(create(
        json!({"hostname": "gone", "flavor": "tiny", "image": "iPXE", "ssh_key": KEY}),
    ))
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["instance"]["id"].as_i64().unwrap();
    settles(&app, "ana", id, Some("running"), Duration::from_secs(90)).await;
    let domain = format!("bootler-{id}-gone");
    libvirtd.virsh(&["destroy", &domain]);
    libvirtd.virsh(&["undefine", &domain]);
    settles(&app, "ana", id, Some("missing"), Duration::from_secs(30)).await;
    // Removing it is allowed and leaves nothing.
    let (status, _) =
        send(app.as_user(Method::DELETE, "ana", &format!("/api/v1/instances/{id}"))).await;
    assert_eq!(status, 202);
    settles(&app, "ana", id, None, Duration::from_secs(30)).await;
    assert!(
        libvirtd.volumes(POOL).is_empty(),
        "{:?}",
        libvirtd.volumes(POOL)
    );

    // Every change is in the audit log.
    let (_, log) = send(app.as_user(Method::GET, "boss", "/api/v1/audit?action=vm%20create")).await;
    assert_eq!(log["total"], 2, "{log}");
    app.stop().await;
}

/// A person's own VM limits over `/api/v1/quotas/{username}`: only
/// administrators set them, bad values are refused whole, and creation
/// follows them (the backend is not needed for that: it never answers).
#[tokio::test]
async fn a_persons_vm_quota_is_set_over_http_and_followed() {
    let app = TestApp::start_with(None, |config| {
        config.vm.libvirt.uri = "qemu:///system?socket=/nonexistent/libvirt-sock".into();
        config.vm.images = vec![Image {
            name: "Debian 12".into(),
            reference: "/nonexistent.qcow2".into(),
            login: None,
        }];
    })
    .await;
    app.add_user("ana", Role::User).await;
    app.add_user("boss", Role::Admin).await;
    let path = "/api/v1/quotas/ana";

    let (status, body) = send(app.as_user(Method::GET, "ana", path)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["vms"]["own"],
        json!({"instances": null, "vcpus": null, "memory_mib": null})
    );
    assert_eq!(body["vms"]["default"]["vcpus"], 8);
    // Only administrators; bad values change nothing (not even max_hosts).
    assert_eq!(
        send(
            app.as_user(Method::PUT, "ana", path)
                .json(&json!({"max_vms": 9}))
        )
        .await
        .0,
        403
    );
    let (status, body) = send(
        app.as_user(Method::PUT, "boss", path)
            .json(&json!({"max_hosts": 3, "max_vms": 100000})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_vms"),
        "{body}"
    );
    let (_, body) = send(app.as_user(Method::GET, "boss", path)).await;
    assert_eq!(
        (
            body["quota"]["max_hosts"].clone(),
            body["vms"]["own"]["instances"].clone()
        ),
        (Value::Null, Value::Null)
    );
    let (status, body) = send(
        app.as_user(Method::PUT, "boss", path)
            .json(&json!({"max_vms": "many"})),
    )
    .await;
    assert!(matches!(status, 400 | 422), "{body}");

    // One VM, one vCPU.
    let (status, body) = send(
        app.as_user(Method::PUT, "boss", path)
            .json(&json!({"max_vms": 1, "max_vm_vcpus": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["vms"]["own"],
        json!({"instances": 1, "vcpus": 1, "memory_mib": null})
    );
    let create = |hostname: &str, flavor: &str| {
        app.as_user(Method::POST, "ana", "/api/v1/instances").json(
            &json!({"hostname": hostname, "flavor": flavor, "image": "Debian 12", "ssh_key": KEY}),
        )
    };
    let (status, body) = send(create("big", "medium")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you use 0 of your 1"),
        "{body}"
    );
    assert_eq!(send(create("one", "small")).await.0, 202);
    let (status, body) = send(create("two", "small")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of your 1 VMs"),
        "{body}"
    );
    // Back to the default: the second fits.
    let (status, _) = send(
        app.as_user(Method::PUT, "boss", path)
            .json(&json!({"max_vms": null, "max_vm_vcpus": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(send(create("two", "small")).await.0, 202);
    app.stop().await;
}

/// Six people ask at the same moment for a VM each, with room in the budget
/// for three: exactly three get one, on both engines (PostgreSQL serialises
/// the check with an advisory lock, SQLite with its write lock).
async fn the_budget_holds_under_concurrent_requests(database: Option<String>) {
    let app = TestApp::start_with(database, |config| {
        config.vm.libvirt.uri = "qemu:///system?socket=/nonexistent/libvirt-sock".into();
        config.vm.vcpu_budget = 3;
        config.vm.images = vec![Image {
            name: "Debian 12".into(),
            reference: "/nonexistent.qcow2".into(),
            login: None,
        }];
    })
    .await;
    let people: Vec<String> = (1..=6).map(|n| format!("user{n}")).collect();
    for name in &people {
        app.add_user(name, Role::User).await;
    }
    let requests = people.iter().map(|name| {
        send(app.as_user(Method::POST, name, "/api/v1/instances").json(
            &json!({"hostname": "vm", "flavor": "small", "image": "Debian 12", "ssh_key": KEY}),
        ))
    });
    let answers = futures_util::future::join_all(requests).await;
    let won = answers.iter().filter(|(status, _)| *status == 202).count();
    assert_eq!(won, 3, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 202) {
        assert_eq!(*status, 409, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("budget is spent"),
            "{body}"
        );
    }
    app.add_user("boss", Role::Admin).await;
    let (_, all) = send(app.as_user(Method::GET, "boss", "/api/v1/instances?all=true")).await;
    assert_eq!(all["instances"].as_array().unwrap().len(), 3, "{all}");
    app.stop().await;
}

#[tokio::test]
async fn the_budget_holds_under_concurrent_requests_sqlite() {
    the_budget_holds_under_concurrent_requests(None).await;
}

#[tokio::test]
async fn the_budget_holds_under_concurrent_requests_postgres() {
    the_budget_holds_under_concurrent_requests(TestApp::database("postgres").await).await;
}
