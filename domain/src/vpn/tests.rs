//! Sign-in decisions, sessions, the server configuration and profiles,
//! against a real SQLite database and the built-in directory; the
//! management protocol against a small server speaking it. The real
//! OpenVPN server and client are in the server's integration tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::accounts::{NewUser, Role, Settings};
use crate::directory::{Builtin, Directory, Entry, Group, SharedDirectory};
use crate::mail::{Mail, MailError, Mailer};

struct Dropped;

#[async_trait]
impl Mailer for Dropped {
    async fn send(&self, _: &Mail) -> Result<(), MailError> {
        Ok(())
    }
}

const PASSWORD: &str = "correct horse battery";

struct Fixture {
    vpn: Vpn,
    accounts: Accounts,
    admin: User,
    dir: tempfile::TempDir,
}

fn config(dir: &Path) -> VpnConfig {
    std::fs::write(
        dir.join("ca.crt"),
        "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----",
    )
    .unwrap();
    std::fs::write(
        dir.join("tc.key"),
        "-----BEGIN OpenVPN tls-crypt-v1 Key-----\nKEY\n-----END OpenVPN tls-crypt-v1 Key-----\n",
    )
    .unwrap();
    VpnConfig {
        enabled: true,
        networks: vec!["10.10.0.0/16".into(), "192.168.7.0/24".into()],
        ca_file: dir.join("ca.crt"),
        tls_crypt_key_file: dir.join("tc.key"),
        ..VpnConfig::default()
    }
}

async fn fixture_with(directory: Option<SharedDirectory>, vpn_at_registration: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let builtin: SharedDirectory = Arc::new(Builtin::new(db.clone()));
    let setup = Accounts::new(
        db.clone(),
        Arc::clone(&builtin),
        Arc::new(Dropped),
        settings(true),
    );
    let admin = setup
        .create_user(
            NewUser {
                username: "chief".into(),
                display_name: "Root".into(),
                email: "chief@uminho.pt".into(),
                password: PASSWORD.into(),
                role: Role::Admin,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let accounts = Accounts::new(
        db.clone(),
        directory.unwrap_or(builtin),
        Arc::new(Dropped),
        settings(vpn_at_registration),
    );
    let vpn = Vpn::new(
        db,
        accounts.clone(),
        config(dir.path()),
        "https://bootler.lab:8443/",
    );
    Fixture {
        vpn,
        accounts,
        admin,
        dir,
    }
}

fn settings(vpn_at_registration: bool) -> Settings {
    Settings {
        allowed_domains: vec!["uminho.pt".into()],
        password_min_length: 12,
        confirmation_ttl: Duration::from_secs(3600),
        base_url: "https://bootler.lab".into(),
        vpn_at_registration,
    }
}

async fn person(f: &Fixture, name: &str) -> User {
    f.accounts
        .create_user(
            NewUser {
                username: name.into(),
                display_name: name.into(),
                email: format!("{name}@uminho.pt"),
                password: PASSWORD.into(),
                role: Role::User,
            },
            Utc::now(),
        )
        .await
        .unwrap()
}

fn refused(verdict: Verdict) -> String {
    match verdict {
        Verdict::Refuse(reason) => reason,
        Verdict::Accept => panic!("accepted"),
    }
}

#[test]
fn networks_in_openvpn_form() {
    assert_eq!(
        ipv4_network("10.8.0.0/24"),
        Some((
            "10.8.0.0".parse().unwrap(),
            "255.255.255.0".parse().unwrap()
        ))
    );
    assert_eq!(
        ipv4_network("10.10.3.7/16"),
        Some(("10.10.0.0".parse().unwrap(), "255.255.0.0".parse().unwrap()))
    );
    assert_eq!(ipv4_network("10.8.0.0"), None);
    assert_eq!(ipv4_network("10.8.0.0/33"), None);
    assert_eq!(ipv4_network("fd00::/8"), None);
}

#[tokio::test]
async fn who_may_connect() {
    let f = fixture_with(None, true).await;
    let ana = person(&f, "ana").await;
    let now = Utc::now();
    assert_eq!(
        f.vpn.verify("ana", PASSWORD, Some("127.0.0.1"), now).await,
        Verdict::Accept
    );
    // By e-mail address too, as on the web.
    assert_eq!(
        f.vpn.verify("ana@uminho.pt", PASSWORD, None, now).await,
        Verdict::Accept
    );
    assert_eq!(
        refused(f.vpn.verify("ana", "wrong password!", None, now).await),
        "wrong username or password"
    );
    assert_eq!(
        refused(f.vpn.verify("nobody", PASSWORD, None, now).await),
        "wrong username or password"
    );
    assert!(refused(f.vpn.verify("ana", "", None, now).await).contains("no password"));

    f.accounts.set_vpn(&f.admin, "ana", false).await.unwrap();
    assert_eq!(
        refused(f.vpn.verify("ana", PASSWORD, None, now).await),
        "VPN access is off for this account"
    );
    f.accounts.set_vpn(&f.admin, "ana", true).await.unwrap();
    f.accounts
        .set_enabled(&f.admin, "ana", false)
        .await
        .unwrap();
    assert!(
        refused(f.vpn.verify("ana", PASSWORD, None, now).await).contains("disabled"),
        "a disabled account"
    );
    f.accounts.set_enabled(&f.admin, "ana", true).await.unwrap();

    // A new password is the VPN's password at once.
    f.accounts
        .change_password(&ana, PASSWORD, "a brand new passphrase", None, now)
        .await
        .unwrap();
    assert_eq!(
        refused(f.vpn.verify("ana", PASSWORD, None, now).await),
        "wrong username or password"
    );
    assert_eq!(
        f.vpn
            .verify("ana", "a brand new passphrase", None, now)
            .await,
        Verdict::Accept
    );
}

#[tokio::test]
async fn accounts_wait_for_approval_when_so_configured() {
    let f = fixture_with(None, false).await;
    let bea = person(&f, "bea").await;
    assert!(!bea.vpn_enabled);
    let now = Utc::now();
    assert_eq!(
        refused(f.vpn.verify("bea", PASSWORD, None, now).await),
        "VPN access is off for this account"
    );
    f.accounts.set_vpn(&f.admin, "bea", true).await.unwrap();
    assert_eq!(
        f.vpn.verify("bea", PASSWORD, None, now).await,
        Verdict::Accept
    );
    // Only administrators say so.
    let err = f.accounts.set_vpn(&bea, "bea", false).await.unwrap_err();
    assert!(matches!(err, AccountError::Forbidden(_)), "{err}");
}

/// A directory that never answers (a server that accepts and stalls).
struct Stalled;

#[async_trait]
impl Directory for Stalled {
    fn kind(&self) -> &'static str {
        "stalled"
    }
    fn hash_password(&self, _: &str) -> Result<String, DirectoryError> {
        Ok(String::new())
    }
    async fn verify_hash(&self, _: &str, _: Option<&str>) -> bool {
        false
    }
    async fn create(&self, _: &Entry, _: &str) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn verify(&self, _: &Entry, _: &str) -> Result<bool, DirectoryError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(true)
    }
    async fn set_password(&self, _: &Entry, _: &str) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn update(&self, _: &Entry) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn set_enabled(&self, _: &Entry, _: bool) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn groups_of(&self, _: &str) -> Result<Vec<String>, DirectoryError> {
        Ok(Vec::new())
    }
    async fn groups(&self) -> Result<Vec<Group>, DirectoryError> {
        Ok(Vec::new())
    }
    async fn set_group(&self, _: &str, _: &[i64]) -> Result<(), DirectoryError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_directory_that_does_not_answer_is_a_refusal_in_time() {
    let mut f = fixture_with(Some(Arc::new(Stalled)), true).await;
    let mut settings = config(f.dir.path());
    settings.auth_timeout_seconds = 1;
    f.vpn = Vpn::new(
        f.vpn.db.clone(),
        f.accounts.clone(),
        settings,
        "https://bootler.lab",
    );
    let start = Instant::now();
    let reason = refused(f.vpn.verify("chief", PASSWORD, None, Utc::now()).await);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(reason.contains("longer than 1 s"), "{reason}");
}

#[tokio::test]
async fn a_lab_without_a_vpn_refuses_everyone() {
    let mut f = fixture_with(None, true).await;
    f.vpn = Vpn::new(
        f.vpn.db.clone(),
        f.accounts.clone(),
        VpnConfig::default(),
        "https://x",
    );
    assert!(
        refused(f.vpn.verify("chief", PASSWORD, None, Utc::now()).await).contains("vpn.enabled")
    );
    assert!(matches!(
        f.vpn.client_profile(&f.admin).await,
        Err(VpnError::Disabled)
    ));
}

#[tokio::test]
async fn sessions_begin_and_end() {
    let f = fixture_with(None, true).await;
    let ana = person(&f, "ana").await;
    let t0 = Utc::now();
    f.vpn
        .connected("ana", "192.0.2.5:51000", "10.8.0.2", t0)
        .await
        .unwrap();
    f.vpn
        .connected("chief", "192.0.2.9:40000", "10.8.0.3", t0)
        .await
        .unwrap();
    let ended = f
        .vpn
        .disconnected(
            "ana",
            "10.8.0.2",
            1200,
            3400,
            t0 + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert!(ended);
    // Nothing open to end.
    assert!(
        !f.vpn
            .disconnected("ana", "10.8.0.2", 0, 0, t0)
            .await
            .unwrap()
    );
    let mine = f.vpn.sessions(Some(ana.id), 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].virtual_address, "10.8.0.2");
    assert_eq!(mine[0].bytes_sent, 3400);
    assert!(mine[0].disconnected_at.is_some());
    let all = f.vpn.sessions(None, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].username, "chief", "newest first");
    assert!(all[0].disconnected_at.is_none());
}

#[tokio::test]
async fn the_server_configuration_wires_bootler_in() {
    let mut f = fixture_with(None, true).await;
    let mut settings = config(f.dir.path());
    settings.management = Some("127.0.0.1:7505".into());
    settings.management_password_file = Some("/etc/openvpn/server/management.pw".into());
    f.vpn = Vpn::new(
        f.vpn.db.clone(),
        f.accounts.clone(),
        settings,
        "https://bootler.lab",
    );
    let text = f
        .vpn
        .server_config(
            "/usr/bin/bootler --config /etc/bootler/bootler.toml",
            &[(
                "BOOTLER_LDAP__BIND_PASSWORD".into(),
                r#"a "quoted" \ secret"#.into(),
            )],
        )
        .unwrap();
    for line in [
        "port 1194",
        "proto udp",
        "server 10.8.0.0 255.255.255.0",
        "push \"route 10.10.0.0 255.255.0.0\"",
        "push \"route 192.168.7.0 255.255.255.0\"",
        "tls-crypt ",
        "username-as-common-name",
        "verify-client-cert none",
        "auth-user-pass-verify \"/usr/bin/bootler --config /etc/bootler/bootler.toml vpn-auth\" via-file",
        "client-connect \"/usr/bin/bootler --config /etc/bootler/bootler.toml vpn-connect\"",
        "management 127.0.0.1 7505 /etc/openvpn/server/management.pw",
        r#"setenv BOOTLER_LDAP__BIND_PASSWORD "a \"quoted\" \\ secret""#,
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no “{line}” in:\n{text}"
        );
    }
    // An administrator's own template.
    let mut settings = config(f.dir.path());
    let own = f.dir.path().join("server.tmpl");
    std::fs::write(&own, "port {{ port }}\n{{ nonsense }}\n").unwrap();
    settings.server_template_file = Some(own);
    f.vpn = Vpn::new(
        f.vpn.db.clone(),
        f.accounts.clone(),
        settings,
        "https://bootler.lab",
    );
    let err = f.vpn.server_config("bootler", &[]).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("nonsense"), "{err}");
}

#[tokio::test]
async fn a_profile_carries_the_server_and_its_keys_but_no_password() {
    let f = fixture_with(None, true).await;
    let ana = person(&f, "ana").await;
    let profile = f.vpn.client_profile(&ana).await.unwrap();
    assert!(profile.contains("\nremote bootler.lab 1194\n"), "{profile}");
    assert!(profile.contains("\nauth-user-pass\n"));
    assert!(
        profile.contains("<ca>\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n</ca>")
    );
    assert!(profile.contains("<tls-crypt>\n-----BEGIN OpenVPN tls-crypt-v1 Key-----"));
    assert!(!profile.contains(PASSWORD));

    f.accounts.set_vpn(&f.admin, "ana", false).await.unwrap();
    let ana = f.accounts.get(ana.id).await.unwrap().unwrap();
    let err = f.vpn.client_profile(&ana).await.unwrap_err();
    assert!(matches!(err, VpnError::Forbidden(_)), "{err}");

    std::fs::remove_file(f.dir.path().join("ca.crt")).unwrap();
    let root = f.accounts.get(f.admin.id).await.unwrap().unwrap();
    let err = f.vpn.client_profile(&root).await.unwrap_err().to_string();
    assert!(
        err.starts_with("vpn.ca_file ") && err.contains("ca.crt"),
        "{err}"
    );
}

/// A management interface as OpenVPN 2.6 speaks it, with a password.
async fn management_double(
    clients: &'static str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut heard = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::new(reader).lines();
            writer.write_all(b"ENTER PASSWORD:").await.unwrap();
            let password = reader.next_line().await.unwrap().unwrap();
            if password != "s3cret" {
                writer.write_all(b"ERROR: bad password\r\n").await.unwrap();
                continue;
            }
            writer
                .write_all(b"SUCCESS: password is correct\r\n>INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n")
                .await
                .unwrap();
            while let Ok(Some(line)) = reader.next_line().await {
                heard.push(line.clone());
                match line.as_str() {
                    "status 3" => writer.write_all(clients.as_bytes()).await.unwrap(),
                    "kill ana" => writer
                        .write_all(b">CLIENT:DISCONNECT,0\r\nSUCCESS: common name 'ana' found, 1 client(s) killed\r\n")
                        .await
                        .unwrap(),
                    "quit" => break,
                    _ => writer.write_all(b"ERROR: unknown command\r\n").await.unwrap(),
                }
            }
        }
        heard
    });
    (address, task)
}

#[tokio::test]
async fn the_management_interface_lists_and_disconnects() {
    let status = "TITLE\tOpenVPN 2.6.3\r\nTIME\t2026-11-22 06:00:00\t1795327200\r\n\
HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\r\n\
CLIENT_LIST\tana\t127.0.0.1:41234\t10.8.0.2\t\t4242\t2121\t2026-11-22 05:59:00\t1795327140\tana\t0\t0\tAES-256-GCM\r\n\
HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)\r\n\
ROUTING_TABLE\t10.8.0.2\tana\t127.0.0.1:41234\t2026-11-22 06:00:00\t1795327200\r\n\
GLOBAL_STATS\tMax bcast/mcast queue length\t0\r\nEND\r\n";
    let (address, heard) = management_double(status).await;
    let management = Management::new(address, Some("s3cret".into()));
    let clients = management.clients().await.unwrap();
    assert_eq!(
        clients,
        vec![Connected {
            username: "ana".into(),
            real_address: "127.0.0.1:41234".into(),
            virtual_address: "10.8.0.2".into(),
            bytes_received: 4242,
            bytes_sent: 2121,
            connected_since: DateTime::from_timestamp(1795327140, 0),
        }]
    );
    assert_eq!(management.kill("ana").await.unwrap(), 1);
    assert_eq!(
        heard.await.unwrap(),
        ["status 3", "quit", "kill ana", "quit"]
    );

    let err = Management::new(address, None)
        .kill("ana bob")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a username"), "{err}");
    // Nobody listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Management::new(closed, None).clients().await.unwrap_err();
    assert!(matches!(err, ManagementError::Unreachable(..)), "{err}");
}
