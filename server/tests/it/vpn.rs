//! VPN access with a real OpenVPN server and client on loopback: the
//! server runs what `bootler vpn server-config` prints, the client the
//! profile a person downloads, and `bootler vpn-auth` decides each sign-in
//! against the built-in directory (SQLite) and a real slapd (PostgreSQL).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::openvpn::{OpenVpn, Pki};
use crate::support::process::{Process, add_admin, add_user, command, free_port};
use crate::support::slapd::{PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd};

const PASSWORD: &str = "correct horse battery";

struct Lab {
    dir: tempfile::TempDir,
    server: Process,
    http: reqwest::Client,
}

impl Lab {
    async fn get(&self, who: &str, password: &str, path: &str) -> (u16, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.server.url))
            .basic_auth(who, Some(password))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn json(
        &self,
        who: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .basic_auth(who, Some(PASSWORD));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Downloads `who`'s profile and connects with it; whether it got in.
    async fn connects(&self, who: &str, password: &str, profile_of: &str) -> (bool, OpenVpn) {
        let (status, profile) = self.get(profile_of, PASSWORD, "/api/v1/vpn/profile").await;
        if status != 200 {
            for line in self.server.logs.lock().unwrap().iter().rev().take(8) {
                eprintln!("LOG {line}");
            }
        }
        assert_eq!(
            status, 200,
            "the profile of {profile_of} for {who}: {profile}"
        );
        let file = self.dir.path().join(format!("{profile_of}.ovpn"));
        std::fs::write(&file, profile).unwrap();
        let dir = self.dir.path().to_path_buf();
        let (who, password) = (who.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || {
            let client = OpenVpn::client(&dir, &file, &who, &password);
            (client.outcome(), client)
        })
        .await
        .unwrap()
    }
}

/// Bootler with `[vpn]` on (and whatever `extra` says), the users boss
/// (admin), ana, bea and cai, and an OpenVPN server from its configuration.
async fn lab(extra: Vec<(&'static str, String)>) -> (Lab, OpenVpn) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let management = free_port();
    let mut env = vec![
        (
            "BOOTLER_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("BOOTLER_VPN__ENABLED", "true".to_string()),
        ("BOOTLER_VPN__SERVER", "127.0.0.1".to_string()),
        ("BOOTLER_VPN__PORT", free_port().to_string()),
        ("BOOTLER_VPN__NETWORKS", "[\"10.77.0.0/16\"]".to_string()),
        ("BOOTLER_VPN__MANAGEMENT", format!("127.0.0.1:{management}")),
        ("BOOTLER_LOG_FORMAT", "json".to_string()),
    ];
    env.extend(pki.env());
    env.extend(extra);
    let server = Process::serve(dir.path(), &env, &[]).await;
    add_admin(dir.path(), &env);
    for name in ["ana", "bea", "cai"] {
        add_user(dir.path(), &env, name, false);
    }
    let out = command(dir.path(), &env)
        .args(["vpn", "server-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8(out.stdout).unwrap();
    assert!(
        config.contains("push \"route 10.77.0.0 255.255.0.0\""),
        "{config}"
    );
    let openvpn_dir = dir.path().to_path_buf();
    let openvpn = tokio::task::spawn_blocking(move || OpenVpn::server(&openvpn_dir, &config))
        .await
        .unwrap();
    (
        Lab {
            dir,
            server,
            http: reqwest::Client::new(),
        },
        openvpn,
    )
}

async fn sign_ins(lab: &Lab, openvpn: &OpenVpn) {
    // A registered, active user with VPN access connects with the profile
    // Bootler gave them.
    let (inside, ana) = lab.connects("ana", PASSWORD, "ana").await;
    assert!(
        inside,
        "ana was refused:\n{}\nserver:\n{}",
        ana.log(),
        openvpn.log()
    );
    // The session is recorded with its address inside the VPN…
    let deadline = Instant::now() + Duration::from_secs(10);
    let session = loop {
        let (_, me) = lab
            .json("ana", reqwest::Method::GET, "/api/v1/vpn", None)
            .await;
        if let Some(s) = me["sessions"].as_array().and_then(|s| s.first()).cloned() {
            break s;
        }
        assert!(Instant::now() < deadline, "no session recorded: {me}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        session["virtual_address"]
            .as_str()
            .unwrap()
            .starts_with("10.8.0."),
        "{session}"
    );
    assert!(session["disconnected_at"].is_null());
    // …and the management interface shows ana connected.
    let (status, connected) = lab
        .json("boss", reqwest::Method::GET, "/api/v1/vpn/connected", None)
        .await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["connected"][0]["username"], "ana", "{connected}");
    assert_eq!(
        connected["connected"][0]["virtual_address"],
        session["virtual_address"]
    );
    // An administrator disconnects her; the session ends.
    let (status, killed) = lab
        .json(
            "boss",
            reqwest::Method::DELETE,
            "/api/v1/vpn/connected/ana",
            None,
        )
        .await;
    assert_eq!(
        (status, killed["disconnected"].as_i64()),
        (200, Some(1)),
        "{killed}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, me) = lab
            .json("ana", reqwest::Method::GET, "/api/v1/vpn", None)
            .await;
        if !me["sessions"][0]["disconnected_at"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session did not end: {me}\n{}",
            openvpn.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ana.stop();

    // Refused: a wrong password, an unknown user, a disabled account, an
    // account whose VPN access is off.
    let (inside, client) = lab.connects("ana", "not her password", "ana").await;
    assert!(!inside, "a wrong password got in:\n{}", client.log());
    let (inside, _) = lab.connects("nobody", PASSWORD, "ana").await;
    assert!(!inside, "an unknown user got in");
    let (status, _) = lab
        .json(
            "boss",
            reqwest::Method::PATCH,
            "/api/v1/users/bea",
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, 200);
    let (inside, _) = lab.connects("bea", PASSWORD, "ana").await;
    assert!(!inside, "a disabled account got in");
    let (status, body) = lab
        .json(
            "boss",
            reqwest::Method::PATCH,
            "/api/v1/users/cai",
            Some(json!({"vpn": false})),
        )
        .await;
    assert_eq!(
        (status, &body["user"]["vpn_enabled"]),
        (200, &json!(false)),
        "{body}"
    );
    let (inside, _) = lab.connects("cai", PASSWORD, "ana").await;
    assert!(!inside, "an account without VPN access got in");
    // Nor does cai get a profile.
    let (status, text) = lab.get("cai", PASSWORD, "/api/v1/vpn/profile").await;
    assert_eq!(status, 403, "{text}");

    // A password changed in Bootler is the VPN's password at the next
    // connection.
    let (status, body) = lab
        .json(
            "ana",
            reqwest::Method::POST,
            "/api/v1/me/password",
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let (inside, _) = lab.connects("ana", PASSWORD, "boss").await;
    assert!(!inside, "the old password still works");
    let (inside, client) = lab.connects("ana", "a brand new passphrase", "boss").await;
    assert!(inside, "the new password does not work:\n{}", client.log());

    // Every decision is in OpenVPN's log, the password in none.
    let log = openvpn.log();
    assert!(log.contains("bootler vpn-auth: accepted ana"), "{log}");
    assert!(log.contains("bootler vpn-auth: refused nobody"), "{log}");
    assert!(log.contains("VPN access is off for this account"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("a brand new passphrase"));
}

#[tokio::test]
async fn openvpn_signs_in_with_the_built_in_directory() {
    let (lab, openvpn) = lab(Vec::new()).await;
    sign_ins(&lab, &openvpn).await;
    openvpn.stop();
}

#[tokio::test]
async fn openvpn_signs_in_with_ldap_on_postgresql() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let cluster = crate::support::pg::Cluster::shared().await;
    let database = cluster.fresh_database().await;
    let (lab, openvpn) = lab(vec![
        ("BOOTLER_DATABASE_URL", database),
        ("BOOTLER_DIRECTORY__KIND", "ldap".to_string()),
        ("BOOTLER_LDAP__URL", slapd.url.clone()),
        ("BOOTLER_LDAP__BIND_DN", SERVICE_DN.to_string()),
        ("BOOTLER_LDAP__BIND_PASSWORD", SERVICE_PASSWORD.to_string()),
        ("BOOTLER_LDAP__USERS_DN", PEOPLE.to_string()),
    ])
    .await;
    assert!(slapd.person("ana").is_some(), "ana is in the directory");
    sign_ins(&lab, &openvpn).await;
    openvpn.stop();
}

/// A directory that accepts connections and never answers.
fn stalled_ldap() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test]
async fn the_verifier_refuses_in_time_when_the_directory_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (_listener, url) = stalled_ldap();
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let mut env = vec![
        (
            "BOOTLER_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("BOOTLER_VPN__ENABLED", "true".to_string()),
        ("BOOTLER_VPN__AUTH_TIMEOUT_SECONDS", "2".to_string()),
        ("BOOTLER_DIRECTORY__KIND", "ldap".to_string()),
        ("BOOTLER_LDAP__URL", slapd.url.clone()),
        ("BOOTLER_LDAP__BIND_DN", SERVICE_DN.to_string()),
        ("BOOTLER_LDAP__BIND_PASSWORD", SERVICE_PASSWORD.to_string()),
        ("BOOTLER_LDAP__USERS_DN", PEOPLE.to_string()),
        ("BOOTLER_LDAP__TIMEOUT_SECONDS", "30".to_string()),
    ];
    let migrate = command(dir.path(), &env).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    add_user(dir.path(), &env, "ana", false);
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, format!("ana\n{PASSWORD}\n")).unwrap();
    let verify = |env: &[(&str, String)]| {
        let start = Instant::now();
        let out = command(dir.path(), env)
            .arg("vpn-auth")
            .arg(&credentials)
            .env("untrusted_ip", "192.0.2.7")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
            start.elapsed(),
        )
    };
    // With the directory up: accepted (via-file).
    let (code, log, _) = verify(&env);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("accepted ana from 192.0.2.7"), "{log}");
    // Via-env as well.
    let out = command(dir.path(), &env)
        .arg("vpn-auth")
        .env("username", "ana")
        .env("password", "wrong password here")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("refused ana: wrong username or password"),
        "{log}"
    );
    assert!(!log.contains("wrong password here"));

    // The directory stops answering: refused within the bound, and why.
    for (key, value) in env.iter_mut() {
        if *key == "BOOTLER_LDAP__URL" {
            *value = url.clone();
        }
    }
    let (code, log, took) = verify(&env);
    assert_eq!(code, Some(1), "{log}");
    assert!(took < Duration::from_secs(6), "took {took:?}: {log}");
    assert!(
        log.contains("refused ana") && log.contains("longer than 2 s"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn the_server_configuration_from_a_config_file_is_the_whole_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootler.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = \"{}\"\n[vpn]\nenabled = true\nnetworks = [\"10.10.0.0/16\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = command(dir.path(), &[])
        .env("RUST_LOG", "info")
        .env_remove("BOOTLER_LOG_FORMAT")
        .arg("--config")
        .arg(&file)
        .args(["vpn", "server-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("# OpenVPN server of the lab"), "{text}");
    let hook = format!(
        "auth-user-pass-verify \"{} --config {} vpn-auth\" via-file",
        crate::support::process::BIN,
        file.display()
    );
    assert!(text.lines().any(|l| l == hook), "no “{hook}” in:\n{text}");
    // Only what OpenVPN reads: no log lines, no `setenv` (the file has it all).
    assert!(!text.contains("INFO") && !text.contains("setenv"), "{text}");

    // With the VPN off, it says what that means.
    std::fs::write(&file, "[vpn]\nenabled = false\n").unwrap();
    let out = command(dir.path(), &[])
        .arg("--config")
        .arg(&file)
        .args(["vpn", "server-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vpn.enabled is off"));
}
