//! The boot endpoints as nodes call them, and the hosts they register, on
//! both engines.

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::Value;

use crate::support::app::TestApp;

async fn plain(app: &TestApp, method: Method, path: &str) -> (u16, String, String) {
    let res = app
        .client
        .request(method, format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    (status, kind, res.text().await.unwrap())
}

async fn json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

both_engines! {
    async fn nodes_register_and_boot_locally(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;

        let (status, kind, body) = plain(app, Method::GET, "/boot.ipxe").await;
        assert_eq!(status, 200);
        assert_eq!(kind, "text/plain; charset=utf-8");
        assert!(body.starts_with("#!ipxe\n"));
        assert!(body.contains(&format!("chain {}/boot/${{mac_address}}?hostname=${{hostname:uristring}}", app.url)), "{body}");

        let (status, _, body) = plain(app, Method::GET, "/boot/52-54-00-12-34-56?hostname=rack1-node3").await;
        assert_eq!(status, 200);
        assert_eq!(body, "#!ipxe\necho Bootler: rack1-node3 (52:54:00:12:34:56) is not marked for an install; booting from the local disk.\nexit\n");
        // The other form, upper case, no host name: the same host.
        let (status, _, _) = plain(app, Method::GET, "/boot/52:54:00:12:34:56").await;
        assert_eq!(status, 200);
        let (status, _, _) = plain(app, Method::GET, "/boot/52-54-00-12-34-56?hostname=").await;
        assert_eq!(status, 200);

        let (status, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 1);
        let host = &body["hosts"][0];
        assert_eq!(host["name"], "rack1-node3");
        assert_eq!(host["state"], "discovered");
        assert_eq!(host["macs"], serde_json::json!(["52:54:00:12:34:56"]));
        assert_eq!(host["last_ip"], "127.0.0.1");
        assert_eq!(host["pool"], Value::Null);
        let id = host["id"].as_i64().unwrap();
        let (_, body) = json(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{id}"))).await;
        let kinds: Vec<&str> = body["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["boot", "boot", "boot", "discovered"]);
        assert_eq!(body["timeline"][0]["source_ip"], "127.0.0.1");
        assert_eq!(body["timeline"][0]["detail"], "served the local-boot script");

        // Filters.
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?mac=52-54-00-12-34-56&state=discovered")).await;
        assert_eq!(body["total"], 1);
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?state=installed")).await;
        assert_eq!(body["total"], 0);
        let (status, _) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?state=asleep")).await;
        assert_eq!(status, 422);
        let (status, _) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?mac=nope")).await;
        assert_eq!(status, 422);
        // People who hold nothing see nothing.
        let (_, body) = json(app.as_user(Method::GET, "ana", "/api/v1/hosts")).await;
        assert_eq!(body["total"], 0);
        assert_eq!(json(app.as_user(Method::GET, "ana", &format!("/api/v1/hosts/{id}"))).await.0, 404);
        assert_eq!(json(app.client.get(format!("{}/api/v1/hosts", app.url))).await.0, 401);

        // Boot options: name, interface, vars; each change on the timeline.
        let put = |user: &str, body: Value| app.as_user(Method::PUT, user, &format!("/api/v1/hosts/{id}")).json(&body);
        let (status, body) = json(put("boss", serde_json::json!({"name": "Rack1-Node3b", "interface": "enp3s0", "vars": {"disk": "nvme0n1"}}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["host"]["name"], "rack1-node3b");
        assert_eq!(body["host"]["interface"], "enp3s0");
        assert_eq!(body["host"]["vars"]["disk"], "nvme0n1");
        for bad in [
            serde_json::json!({"name": "two words"}),
            serde_json::json!({"name": "x\nexit"}),
            serde_json::json!({"interface": "eth0; reboot"}),
            serde_json::json!({"vars": ["not", "an", "object"]}),
            serde_json::json!({"vars": "disk=sda"}),
            serde_json::json!({"colour": "red"}),
        ] {
            let (status, body) = json(put("boss", bad.clone())).await;
            assert_eq!(status, 422, "{bad}: {body}");
        }
        assert_eq!(json(put("ana", serde_json::json!({"name": "mine"}))).await.0, 404);
        let (_, body) = json(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{id}"))).await;
        assert_eq!(body["host"]["name"], "rack1-node3b", "nothing changed by the refusals");
        assert_eq!(body["timeline"][0]["kind"], "changed");
        assert_eq!(body["timeline"][0]["detail"], "boss changed name rack1-node3 → rack1-node3b, interface eth0 → enp3s0, vars");
        // The next boot greets the new name.
        let (_, _, script) = plain(app, Method::GET, "/boot/52-54-00-12-34-56").await;
        assert!(script.contains("rack1-node3b (52:54:00:12:34:56)"), "{script}");

        // Not marked: no answer file, no "done".
        let (status, kind, body) = plain(app, Method::GET, "/boot/52-54-00-12-34-56/unattended").await;
        assert_eq!((status, kind.as_str()), (409, "text/plain; charset=utf-8"));
        assert!(body.contains("is not installing (it is discovered)"), "{body}");
        let (status, _, _) = plain(app, Method::POST, "/boot/52-54-00-12-34-56/done").await;
        assert_eq!(status, 409);
        let (status, _, _) = plain(app, Method::GET, "/boot/52-54-00-12-34-56/done").await;
        assert_eq!(status, 409);
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts")).await;
        assert_eq!(body["hosts"][0]["state"], "discovered", "nothing changed");
    }

    async fn a_marked_node_installs_once_through_the_api(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        let (status, _, _) = plain(app, Method::GET, "/boot/52-54-00-aa-00-01?hostname=gpu1").await;
        assert_eq!(status, 200);
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?mac=52:54:00:aa:00:01")).await;
        let id = body["hosts"][0]["id"].as_i64().unwrap();
        let post = |user: &str, path: &str| app.as_user(Method::POST, user, path);
        let put = |body: Value| app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}")).json(&body);

        // Pools: administrators create them; a discovered host is enrolled.
        let (status, body) = json(post("ana", "/api/v1/pools").json(&serde_json::json!({"name": "gpu"}))).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = json(post("boss", "/api/v1/pools").json(&serde_json::json!({"name": "gpu", "description": "A100 nodes"}))).await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = json(post("boss", "/api/v1/pools").json(&serde_json::json!({"name": "gpu"}))).await;
        assert_eq!(status, 409);
        let (status, body) = json(post("boss", "/api/v1/pools").json(&serde_json::json!({"name": "two words"}))).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = json(put(serde_json::json!({"pool": "nope"}))).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["message"], "There is no pool “nope”.");

        // Marking needs a pool and a system template.
        let (status, body) = json(post("boss", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 409);
        assert!(body["error"]["message"].as_str().unwrap().contains("not enrolled in a pool"), "{body}");
        let (status, body) = json(put(serde_json::json!({"pool": "gpu"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["host"]["pool"].as_str(), body["host"]["state"].as_str()), (Some("gpu"), Some("local")));
        let (status, body) = json(post("boss", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 409);
        assert!(body["error"]["message"].as_str().unwrap().contains("Choose a system template"), "{body}");

        let new_template = |name: &str, kind: &str, body: &str| {
            post("boss", "/api/v1/templates").json(&serde_json::json!({"name": name, "kind": kind, "body": body}))
        };
        let (status, body) = json(new_template("chain", "system", "#!ipxe\nchain {{ unattended_url }}?h={{ host.name }}&disk={{ vars.disk }}\n")).await;
        assert_eq!(status, 201, "{body}");
        let system = body["template"]["id"].as_i64().unwrap();
        let (_, _) = json(new_template("script", "unattended", "#!/bin/sh\necho {{ email }}\ncurl -X POST {{ done_url }}\n")).await;
        // The wrong kind, or an unknown template: 422 with a reason.
        let (status, body) = json(put(serde_json::json!({"system": "script"}))).await;
        assert_eq!(status, 422);
        assert!(body["error"]["message"].as_str().unwrap().contains("no system template “script”"), "{body}");
        let (status, body) = json(put(serde_json::json!({"unattended": 9999}))).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = json(put(serde_json::json!({"system": system, "unattended": "script"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["host"]["system"]["name"], "chain");
        assert_eq!(body["host"]["unattended"]["name"], "script");

        // The template reads vars.disk, which is missing: 422 names the line.
        let (status, body) = json(post("boss", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["message"], "template “chain”, line 2: undefined value: `vars.disk` is undefined");
        json(put(serde_json::json!({"vars": {"disk": "nvme0n1"}}))).await;
        let (status, body) = json(post("boss", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["host"]["state"], "install_pending");
        let (status, body) = json(post("boss", &format!("/api/v1/hosts/{id}/unmark"))).await;
        assert_eq!((status, body["host"]["state"].as_str()), (200, Some("local")));
        let (status, _) = json(post("boss", &format!("/api/v1/hosts/{id}/unmark"))).await;
        assert_eq!(status, 409);
        let (status, _) = json(post("ana", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 404, "not hers");
        let (status, _) = json(post("boss", "/api/v1/hosts/abc/mark")).await;
        assert_eq!(status, 400);
        json(post("boss", &format!("/api/v1/hosts/{id}/mark"))).await;

        // The boot: the rendered script once, then the disk.
        let (status, _, script) = plain(app, Method::GET, "/boot/52-54-00-AA-00-01?hostname=gpu1").await;
        assert_eq!(status, 200);
        assert_eq!(script, format!("#!ipxe\nchain {}/boot/52-54-00-aa-00-01/unattended?h=gpu1&disk=nvme0n1\n", app.url));
        let (_, _, again) = plain(app, Method::GET, "/boot/52-54-00-aa-00-01").await;
        assert!(again.contains("booting from the local disk"), "{again}");
        let (status, _, answer) = plain(app, Method::GET, "/boot/52-54-00-aa-00-01/unattended").await;
        assert_eq!(status, 200);
        assert_eq!(answer, format!("#!/bin/sh\necho boss@uminho.pt\ncurl -X POST {}/boot/52-54-00-aa-00-01/done\n", app.url));
        let (status, _, said) = plain(app, Method::POST, "/boot/52-54-00-aa-00-01/done").await;
        assert_eq!((status, said.as_str()), (200, "gpu1 (52:54:00:aa:00:01) is installed.\n"));
        let (status, body) = json(app.as_user(Method::DELETE, "boss", &format!("/api/v1/templates/{system}"))).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["message"], "“chain” is a boot option of gpu1; choose another template there first.");
        let (_, body) = json(app.as_user(Method::GET, "boss", &format!("/api/v1/hosts/{id}"))).await;
        assert_eq!(body["host"]["state"], "installed");
        let kinds: Vec<&str> = body["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(&kinds[..6], ["done", "unattended", "boot", "install", "mark", "unmark"]);
        assert_eq!(body["timeline"][3]["detail"], "served the system script “chain” v1; the install begins");
    }

    async fn the_shipped_debian_templates_install_a_marked_node(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa boss@laptop";
        let (status, body) = json(app.as_user(Method::POST, "boss", "/api/v1/me/keys").json(&serde_json::json!({"public_key": key}))).await;
        assert_eq!(status, 201, "{body}");
        plain(app, Method::GET, "/boot/52-54-00-bb-00-01?hostname=deb1").await;
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts?mac=52-54-00-bb-00-01")).await;
        let id = body["hosts"][0]["id"].as_i64().unwrap();
        json(app.as_user(Method::POST, "boss", "/api/v1/pools").json(&serde_json::json!({"name": "lab"}))).await;
        // The shipped templates are there from the start, chosen by name.
        let (status, body) = json(app.as_user(Method::PUT, "boss", &format!("/api/v1/hosts/{id}")).json(&serde_json::json!({
            "pool": "lab", "system": "debian-netboot", "unattended": "debian-preseed", "vars": {"disk": "/dev/vda"}
        }))).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = json(app.as_user(Method::POST, "boss", &format!("/api/v1/hosts/{id}/mark"))).await;
        assert_eq!(status, 200, "{body}");
        let (_, _, script) = plain(app, Method::GET, "/boot/52-54-00-bb-00-01").await;
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        // The installer from Bootler's own image store; the packages from the mirror.
        assert!(script.contains(&format!("\nset base {}/images/debian-12-amd64\n", app.url)), "{script}");
        assert!(script.contains(" mirror/http/hostname=deb.debian.org "), "{script}");
        assert!(script.contains(&format!("url={}/boot/52-54-00-bb-00-01/unattended", app.url)), "{script}");
        assert!(script.contains("hostname=deb1"), "{script}");
        let (status, _, preseed) = plain(app, Method::GET, "/boot/52-54-00-bb-00-01/unattended").await;
        assert_eq!(status, 200, "{preseed}");
        assert!(preseed.contains("/dev/vda"), "{preseed}");
        assert!(preseed.contains(key), "the holder's key is installed: {preseed}");
        assert!(preseed.contains(&format!("{}/boot/52-54-00-bb-00-01/done", app.url)), "{preseed}");
    }

    async fn bad_boot_requests_get_plain_reasons(app: TestApp) {
        for bad in ["52-54-00-12-34", "zz-54-00-12-34-56", "525400123456", "52-54-00-12-34-56-78", "%24%7Bnet0%2Fmac%7D"] {
            let (status, kind, body) = plain(app, Method::GET, &format!("/boot/{bad}")).await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(kind, "text/plain; charset=utf-8");
            assert!(body.contains("is not a MAC address"), "{bad}: {body}");
        }
        let long = format!("/boot/52-54-00-12-34-56?hostname={}", "a".repeat(2000));
        let (status, _, body) = plain(app, Method::GET, &long).await;
        assert_eq!(status, 400);
        assert!(body.contains("too long"), "{body}");
        let (status, _, _) = plain(app, Method::GET, "/boot/52-54-00-12-34-56/unattended".replace("52-54-00-12-34-56", "bad").as_str()).await;
        assert_eq!(status, 400);
        let (status, _, body) = plain(app, Method::GET, "/boot/52-54-00-00-00-01/unattended").await;
        assert_eq!(status, 404);
        assert!(body.contains("No host has the MAC address 52:54:00:00:00:01"));
        let (status, _, _) = plain(app, Method::POST, "/boot/52-54-00-00-00-01/done").await;
        assert_eq!(status, 404);
        // Nothing of that was registered.
        app.add_user("boss", Role::Admin).await;
        let (_, body) = json(app.as_user(Method::GET, "boss", "/api/v1/hosts")).await;
        assert_eq!(body["total"], 0);
    }
}

#[tokio::test]
async fn boot_endpoints_answer_only_provisioning_networks() {
    let app = TestApp::start_with(None, |c| {
        c.boot.allowed_networks = vec!["10.20.0.0/16".into()];
    })
    .await;
    let (status, kind, body) = plain(&app, Method::GET, "/boot/52-54-00-12-34-56").await;
    assert_eq!((status, kind.as_str()), (403, "text/plain; charset=utf-8"));
    assert!(
        body.contains("127.0.0.1 is not on a provisioning network"),
        "{body}"
    );
    assert_eq!(plain(&app, Method::GET, "/boot.ipxe").await.0, 403);
    // The rest of the site is not affected.
    assert_eq!(plain(&app, Method::GET, "/healthz").await.0, 200);
    app.stop().await;
}

/// Marks a fresh node (MAC `mac`) through `a` for an install whose answer
/// file shows what boot requests read from memory: the host's name and
/// variables, the marker's name and keys, the template's version. Returns
/// (host id, template id).
async fn installing_node(client: &reqwest::Client, a: &str, token: &str, mac: &str) -> (i64, i64) {
    let call = |method: Method, path: &str| {
        client
            .request(method, format!("{a}{path}"))
            .bearer_auth(token)
    };
    let res = client
        .get(format!("{a}/boot/{mac}?hostname=mem1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, body) = json(call(Method::GET, &format!("/api/v1/hosts?mac={mac}"))).await;
    let id = body["hosts"][0]["id"].as_i64().unwrap();
    let (status, body) =
        json(call(Method::POST, "/api/v1/pools").json(&serde_json::json!({"name": "mem"}))).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = json(
        call(Method::POST, "/api/v1/templates").json(&serde_json::json!({
            "name": "mem-system", "kind": "system", "body": "#!ipxe\nchain {{ unattended_url }}\n"
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = json(call(Method::POST, "/api/v1/templates").json(&serde_json::json!({
        "name": "mem-answer", "kind": "unattended",
        "body": "v1 {{ host.name }} {{ vars.disk }} {{ user.display_name }} keys={{ ssh_keys|length }}\n"
    }))).await;
    assert_eq!(status, 201, "{body}");
    let template = body["template"]["id"].as_i64().unwrap();
    let (status, body) = json(call(Method::PUT, &format!("/api/v1/hosts/{id}")).json(&serde_json::json!({
        "pool": "mem", "system": "mem-system", "unattended": "mem-answer", "vars": {"disk": "sda"}
    }))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json(call(Method::POST, &format!("/api/v1/hosts/{id}/mark"))).await;
    assert_eq!(status, 200, "{body}");
    let script = client
        .get(format!("{a}/boot/{mac}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("/unattended"), "{script}");
    (id, template)
}

/// What `url` answers at `path` (status and text), asked until `check`
/// holds or `wait` is over (at least once).
async fn answer_until(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    wait: std::time::Duration,
    check: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let res = client.get(format!("{url}{path}")).send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if check(status, &text) || std::time::Instant::now() >= deadline {
            return (status, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Boot requests to `b` follow every change made through `a` (the same
/// server, or another replica on the same database) within `wait`.
async fn answers_follow_changes(a: &str, b: &str, token: &str, wait: std::time::Duration) {
    let client = reqwest::Client::new();
    let mac = "52-54-00-cc-00-01";
    let (id, template) = installing_node(&client, a, token, mac).await;
    let call = |method: Method, path: &str| {
        client
            .request(method, format!("{a}{path}"))
            .bearer_auth(token)
    };
    let unattended = format!("/boot/{mac}/unattended");
    let (_, me) = json(call(Method::GET, "/api/v1/me")).await;
    let name = me["user"]["display_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!name.is_empty(), "{me}");
    // `b` reads it once and keeps it.
    for _ in 0..3 {
        let (status, text) = answer_until(&client, b, &unattended, wait, |s, _| s == 200).await;
        assert_eq!(
            (status, text),
            (200, format!("v1 mem1 sda {name} keys=0\n"))
        );
    }

    // Each change reaches `b`: the template, the host, the marker's name
    // and keys.
    let (status, body) = json(call(Method::PUT, &format!("/api/v1/templates/{template}")).json(&serde_json::json!({
        "version": 1,
        "body": "v2 {{ host.name }} {{ vars.disk }} {{ user.display_name }} keys={{ ssh_keys|length }}\n"
    }))).await;
    assert_eq!(status, 200, "{body}");
    let (_, text) = answer_until(&client, b, &unattended, wait, |_, t| t.starts_with("v2")).await;
    assert_eq!(text, format!("v2 mem1 sda {name} keys=0\n"));
    let (status, body) = json(call(Method::PUT, &format!("/api/v1/hosts/{id}")).json(
        &serde_json::json!({
            "name": "mem2", "vars": {"disk": "nvme0n1"}
        }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, text) = answer_until(&client, b, &unattended, wait, |_, t| t.contains("mem2")).await;
    assert_eq!(text, format!("v2 mem2 nvme0n1 {name} keys=0\n"));
    let (status, body) = json(
        call(Method::PATCH, "/api/v1/me").json(&serde_json::json!({"display_name": "Big Boss"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, text) =
        answer_until(&client, b, &unattended, wait, |_, t| t.contains("Big Boss")).await;
    assert_eq!(text, "v2 mem2 nvme0n1 Big Boss keys=0\n");
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa boss@laptop";
    let (status, body) =
        json(call(Method::POST, "/api/v1/me/keys").json(&serde_json::json!({"public_key": key})))
            .await;
    assert_eq!(status, 201, "{body}");
    let (_, text) = answer_until(&client, b, &unattended, wait, |_, t| t.contains("keys=1")).await;
    assert_eq!(text, "v2 mem2 nvme0n1 Big Boss keys=1\n");

    // State changes: "done" through `a` ends the answer file on `b`; a new
    // mark through `a` makes `b` serve the install, once.
    let res = client
        .post(format!("{a}/boot/{mac}/done"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, text) = answer_until(&client, b, &unattended, wait, |s, _| s == 409).await;
    assert_eq!(status, 409, "{text}");
    let boot = format!("/boot/{mac}");
    let (_, text) = answer_until(&client, b, &boot, std::time::Duration::ZERO, |_, _| true).await;
    assert!(text.contains("booting from the local disk"), "{text}");
    let (status, body) = json(call(Method::POST, &format!("/api/v1/hosts/{id}/mark"))).await;
    assert_eq!(status, 200, "{body}");
    let (_, text) = answer_until(&client, b, &boot, wait, |_, t| t.contains("chain")).await;
    assert!(text.contains(&format!("/boot/{mac}/unattended")), "{text}");
    let (_, text) = answer_until(&client, a, &boot, std::time::Duration::ZERO, |_, _| true).await;
    assert!(
        text.contains("booting from the local disk"),
        "served once: {text}"
    );
    // The MACs change: the old one is unknown at once.
    let (status, body) = json(call(Method::PUT, &format!("/api/v1/hosts/{id}")).json(
        &serde_json::json!({
            "macs": ["52:54:00:cc:00:02"]
        }),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = answer_until(&client, b, &unattended, wait, |s, _| s == 404).await;
    assert_eq!(status, 404);
    let (status, text) = answer_until(
        &client,
        b,
        "/boot/52-54-00-cc-00-02/unattended",
        wait,
        |s, _| s == 200,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (200, "v2 mem2 nvme0n1 Big Boss keys=1\n")
    );
}

both_engines! {
    async fn boot_answers_follow_every_change_at_once(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        let res = app.as_user(Method::POST, "boss", "/api/v1/tokens").json(&serde_json::json!({"name": "t"})).send().await.unwrap();
        let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        // One server: every answer is right the first time (no waiting).
        answers_follow_changes(&app.url, &app.url, &token, std::time::Duration::ZERO).await;
    }
}

#[tokio::test]
async fn replicas_hear_each_others_changes() {
    use crate::support::pg::Cluster;
    use crate::support::process::{Process, add_admin};
    let url = Cluster::shared().await.fresh_database().await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let envs: Vec<Vec<(&'static str, String)>> = dirs
        .iter()
        .map(|d| {
            vec![
                (
                    "BOOTLER_DATA_DIR",
                    d.path().join("data").display().to_string(),
                ),
                ("BOOTLER_DATABASE_URL", url.clone()),
            ]
        })
        .collect();
    add_admin(dirs[0].path(), &envs[0]);
    let a = Process::serve(dirs[0].path(), &envs[0], &[]).await;
    let b = Process::serve(dirs[1].path(), &envs[1], &[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", a.url))
        .basic_auth("boss", Some("correct horse battery"))
        .json(&serde_json::json!({"name": "t"}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Changes made on `a` reach `b`'s memory through NOTIFY, well before
    // entries expire (a minute).
    answers_follow_changes(&a.url, &b.url, &token, std::time::Duration::from_secs(5)).await;
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// Nodes on a provisioning network reach Bootler at `boot.base_url`;
/// people (and the links in their mails) keep `base_url`.
#[tokio::test]
async fn nodes_and_people_may_reach_bootler_at_different_addresses() {
    let app = TestApp::start_with(None, |c| {
        c.boot.base_url = Some("http://10.0.2.100:8080/".into());
    })
    .await;
    let (status, _, body) = plain(&app, Method::GET, "/boot.ipxe").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("chain http://10.0.2.100:8080/boot/${mac_address}?hostname="),
        "{body}"
    );
    // A registration's confirmation link is the people's address.
    let res = app
        .post_json(
            "/api/v1/register",
            serde_json::json!({
                "username": "ana",
                "display_name": "Ana Silva",
                "email": "ana@uminho.pt",
                "password": "correct horse battery",
            }),
        )
        .await;
    assert_eq!(res.status(), 202);
    let link = app
        .mails()
        .last()
        .expect("a confirmation mail")
        .confirm_link();
    assert!(link.starts_with(&app.url), "{link}");
    app.stop().await;

    // A boot address that is not a URL stops the start with its key.
    let err = bootler_domain::Config::load(
        None,
        [(
            "BOOTLER_BOOT__BASE_URL".to_string(),
            "10.0.2.100".to_string(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("boot.base_url"), "{err}");
}
