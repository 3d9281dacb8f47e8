//! The LDAP directory against a real slapd: registration and confirmation
//! over the REST API create a POSIX entry, people bind with their password,
//! uidNumbers never collide, an unreachable server changes nothing, and
//! filter metacharacters never reach another entry. Entries are checked with
//! OpenLDAP's own `ldapsearch` and `ldapwhoami`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootler_domain::Config;
use bootler_domain::accounts::{AccountError, Accounts, NewUser, Role};
use bootler_domain::config::{DirectoryKind, LdapConfig};
use bootler_domain::directory::{Directory, DirectoryError, Entry, Ldap};
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::slapd::{
    DISABLED_GROUP, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SERVICE_SIZE_LIMIT, SUFFIX, Slapd, Tls,
};

const PASSWORD: &str = "correct horse battery";

fn dn(username: &str) -> String {
    format!("uid={username},{PEOPLE}")
}

async fn slapd() -> Slapd {
    tokio::task::spawn_blocking(Slapd::start).await.unwrap()
}

/// The server with `directory.kind = "ldap"` against `ldap`; also returns
/// its configuration, to reach the domain directly.
async fn app(ldap: LdapConfig) -> (TestApp, Config) {
    let mut seen = None;
    let app = TestApp::start_with(None, |config| {
        config.directory.kind = DirectoryKind::Ldap;
        config.ldap = ldap;
        seen = Some(config.clone());
    })
    .await;
    (app, seen.unwrap())
}

/// The domain's accounts on the same database and directory as the server.
async fn accounts(config: &Config) -> Accounts {
    let db = bootler_server::cli::open_database(config).await.unwrap();
    bootler_server::services::accounts(config, &db).unwrap()
}

/// Registers over the API; returns the confirmation token from the mail.
async fn register(app: &TestApp, username: &str, display_name: &str) -> String {
    let email = format!("{username}@uminho.pt");
    let res = app
        .post_json(
            "/api/v1/register",
            json!({
                "username": username,
                "display_name": display_name,
                "email": email,
                "password": PASSWORD,
            }),
        )
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let mail = app
        .mails()
        .into_iter()
        .rfind(|m| m.to == email)
        .expect("a confirmation mail");
    mail.confirm_token()
}

async fn confirm(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app
        .post_json("/api/v1/confirm", json!({ "token": token }))
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn entry(username: &str, display_name: &str) -> Entry {
    Entry {
        user_id: 0,
        username: username.into(),
        display_name: display_name.into(),
        email: format!("{username}@uminho.pt"),
    }
}

#[tokio::test]
async fn confirming_creates_a_posix_entry_people_bind_to() {
    let slapd = slapd().await;
    let (app, config) = app(slapd.ldap_config()).await;
    let accounts = accounts(&config).await;

    let ana_token = register(&app, "ana", "Ana Maria Silva").await;
    // Pending: nothing in the directory yet, and the password is checked
    // against the pending hash.
    assert!(slapd.person("ana").is_none());
    let err = accounts
        .authenticate("ana", PASSWORD, chrono::Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::NotActive(_)), "{err:?}");

    let (status, body) = confirm(&app, &ana_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["status"], "active");

    let ana = slapd.person("ana").expect("ana's entry");
    assert_eq!(ana.dn, dn("ana"));
    let mut classes: Vec<String> = ana
        .all("objectClass")
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    classes.sort();
    assert!(
        classes.contains(&"inetorgperson".to_string()),
        "{classes:?}"
    );
    assert!(classes.contains(&"posixaccount".to_string()), "{classes:?}");
    assert_eq!(ana.one("uid"), "ana");
    assert_eq!(ana.one("cn"), "Ana Maria Silva");
    assert_eq!(ana.one("sn"), "Silva");
    assert_eq!(ana.one("mail"), "ana@uminho.pt");
    assert_eq!(ana.one("uidNumber"), "10000");
    assert_eq!(ana.one("gidNumber"), "10000");
    assert_eq!(ana.one("homeDirectory"), "/home/ana");
    assert_eq!(ana.one("loginShell"), "/bin/bash");
    assert!(ana.one("userPassword").starts_with("{SSHA}"), "{ana:?}");

    // OpenLDAP itself accepts the password Bootler hashed at registration.
    assert_eq!(
        slapd.whoami(&dn("ana"), PASSWORD).as_deref(),
        Some(format!("dn:{}", dn("ana")).as_str())
    );
    assert_eq!(slapd.whoami(&dn("ana"), "correct horse batter"), None);

    // Signing in goes through an LDAP bind now.
    let user = accounts
        .authenticate("ana", PASSWORD, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(user.username, "ana");
    accounts
        .authenticate("ana@uminho.pt", PASSWORD, chrono::Utc::now())
        .await
        .unwrap();
    for wrong in ["correct horse batter", ""] {
        let err = accounts
            .authenticate("ana", wrong, chrono::Utc::now())
            .await
            .unwrap_err();
        assert!(matches!(err, AccountError::WrongCredentials), "{err:?}");
    }

    // A second person gets the next number.
    let token = register(&app, "bruno", "Bruno").await;
    let (status, body) = confirm(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    let bruno = slapd.person("bruno").expect("bruno's entry");
    assert_eq!(bruno.one("uidNumber"), "10001");
    assert_eq!(bruno.one("gidNumber"), "10001");
    assert_eq!(bruno.one("sn"), "Bruno");
    assert!(slapd.whoami(&dn("bruno"), PASSWORD).is_some());

    // A used link changes nothing: still one ana, with her number.
    let (status, _) = confirm(&app, &ana_token).await;
    assert_eq!(status, 422);
    let anas = slapd.search(PEOPLE, "(uid=ana)", &["uidNumber"]);
    assert_eq!(anas.len(), 1);
    assert_eq!(anas[0].one("uidNumber"), "10000");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uid_numbers_never_collide() {
    let slapd = slapd().await;
    // Someone else's entries: one above uid_start, one below it.
    slapd.add(&format!(
        "dn: uid=legacy,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         uid: legacy\ncn: Legacy\nsn: Legacy\nuidNumber: 10041\ngidNumber: 10041\n\
         homeDirectory: /home/legacy\n\n\
         dn: uid=system,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         uid: system\ncn: System\nsn: System\nuidNumber: 999\ngidNumber: 999\n\
         homeDirectory: /var/lib/system\n"
    ));
    let (app, _config) = app(slapd.ldap_config()).await;
    let names = ["carla", "duarte", "eva", "filipe", "gil"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(register(&app, name, "Some Person").await);
    }
    // All confirmed at the same moment.
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let client = app.client.clone();
            let url = format!("{}/api/v1/confirm", app.url);
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .json(&json!({ "token": token }))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }

    let all = slapd.search(PEOPLE, "(uidNumber=*)", &["uid", "uidNumber", "gidNumber"]);
    assert_eq!(all.len(), names.len() + 2, "{all:?}");
    let mut numbers: Vec<u32> = Vec::new();
    for name in names {
        let person = all
            .iter()
            .find(|e| e.one("uid") == name)
            .unwrap_or_else(|| panic!("{name} has no entry"));
        let number: u32 = person.one("uidNumber").parse().unwrap();
        assert!(number > 10041, "{name}: {number}");
        assert_eq!(person.one("gidNumber"), person.one("uidNumber"));
        numbers.push(number);
    }
    let mut unique = numbers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        numbers.len(),
        "duplicate uidNumbers: {numbers:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn answers_cut_short_still_find_the_highest_uid_number() {
    let slapd = slapd().await;
    // Added in this order, slapd returns the lower ones first; the service
    // account sees only SERVICE_SIZE_LIMIT entries per search.
    let numbers = [10003, 10007, 10011, 10001, 10015, 10020];
    assert!(numbers.len() > SERVICE_SIZE_LIMIT);
    let ldif: String = numbers
        .iter()
        .map(|n| {
            format!(
                "dn: uid=old{n},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
                 uid: old{n}\ncn: Old\nsn: Old\nuidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/old{n}\n\n"
            )
        })
        .collect();
    slapd.add(&ldif);
    assert_eq!(
        slapd.search_status(SERVICE_DN, SERVICE_PASSWORD, PEOPLE, "(uidNumber>=10000)"),
        4,
        "the service account's searches should be cut short"
    );
    let directory = Ldap::new(slapd.ldap_config());
    let hash = directory.hash_password(PASSWORD).unwrap();
    directory.create(&entry("neo", "Neo"), &hash).await.unwrap();
    assert_eq!(slapd.person("neo").unwrap().one("uidNumber"), "10021");
}

#[tokio::test]
async fn passwords_change_with_the_password_modify_operation() {
    let slapd = slapd().await;
    let dir = tempfile::tempdir().unwrap();
    // The service password from a file, as deployments keep it.
    let secret = dir.path().join("ldap-password");
    std::fs::write(&secret, format!("{SERVICE_PASSWORD}\n")).unwrap();
    let mut ldap = slapd.ldap_config();
    ldap.bind_password = None;
    ldap.bind_password_file = Some(secret);
    let (app, config) = app(ldap.clone()).await;
    let token = register(&app, "ana", "Ana Silva").await;
    assert_eq!(confirm(&app, &token).await.0, 200);

    let directory = Ldap::new(ldap.clone());
    let ana = entry("ana", "Ana Silva");
    directory
        .set_password(&ana, "a brand new passphrase")
        .await
        .unwrap();
    assert_eq!(slapd.whoami(&dn("ana"), PASSWORD), None);
    assert!(slapd.whoami(&dn("ana"), "a brand new passphrase").is_some());
    assert!(!directory.verify(&ana, PASSWORD).await.unwrap());
    assert!(
        directory
            .verify(&ana, "a brand new passphrase")
            .await
            .unwrap()
    );
    // slapd hashed the new one itself.
    let stored = slapd.person("ana").unwrap();
    assert!(stored.one("userPassword").starts_with("{SSHA}"));
    let accounts = accounts(&config).await;
    accounts
        .authenticate("ana", "a brand new passphrase", chrono::Utc::now())
        .await
        .unwrap();

    // Nobody there: refused, not created.
    let err = directory
        .set_password(&entry("nobody", "No One"), "a brand new passphrase")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Rejected(_)), "{err:?}");
    assert!(slapd.person("nobody").is_none());

    // A wrong service password is a configuration error that says so.
    let wrong = Ldap::new(LdapConfig {
        bind_password: Some("not the password".into()),
        bind_password_file: None,
        ..ldap
    });
    let err = wrong
        .set_password(&ana, "another passphrase")
        .await
        .unwrap_err();
    match err {
        DirectoryError::Internal(message) => {
            assert!(message.contains(SERVICE_DN), "{message}");
            assert!(!message.contains("not the password"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(slapd.whoami(&dn("ana"), "a brand new passphrase").is_some());
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_directory_leaves_the_account_pending() {
    let mut slapd = slapd().await;
    let (app, config) = app(slapd.ldap_config()).await;
    let accounts = accounts(&config).await;
    let token = register(&app, "ana", "Ana Silva").await;

    slapd.stop();
    let started = Instant::now();
    let (status, body) = confirm(&app, &token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("directory"), "{message}");
    assert!(message.contains("Try again"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let err = accounts
        .authenticate("ana", PASSWORD, chrono::Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AccountError::NotActive(_)),
        "still pending: {err:?}"
    );

    // Back up: nothing was half-created, and the same link works.
    slapd.restart();
    assert!(slapd.person("ana").is_none());
    let (status, body) = confirm(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["status"], "active");
    assert!(slapd.whoami(&dn("ana"), PASSWORD).is_some());
    assert_eq!(slapd.person("ana").unwrap().one("uidNumber"), "10000");
    app.stop().await;
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out() {
    // Accepts connections (the kernel does, from the backlog) and never
    // says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}/", silent.local_addr().unwrap());
    let ldap = LdapConfig {
        url: Some(url),
        bind_dn: Some(SERVICE_DN.into()),
        bind_password: Some(SERVICE_PASSWORD.into()),
        users_dn: Some(PEOPLE.into()),
        timeout_seconds: 1,
        ..LdapConfig::default()
    };
    let (app, _config) = app(ldap.clone()).await;
    let token = register(&app, "ana", "Ana Silva").await;
    let started = Instant::now();
    let (status, body) = confirm(&app, &token).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let directory = Ldap::new(ldap);
    let started = Instant::now();
    let err = directory
        .verify(&entry("ana", "Ana"), PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
    app.stop().await;
}

#[tokio::test]
async fn filter_metacharacters_never_reach_other_entries() {
    let slapd = slapd().await;
    let (app, config) = app(slapd.ldap_config()).await;
    let token = register(&app, "ana", "Ana Maria Silva").await;
    assert_eq!(confirm(&app, &token).await.0, 200);
    let accounts = accounts(&config).await;
    for login in [
        "*",
        "ana*",
        "a*",
        "*)(uid=*",
        "ana)(|(uid=*",
        "uid=ana,ou=people,dc=lab,dc=test",
    ] {
        let err = accounts
            .authenticate(login, PASSWORD, chrono::Utc::now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AccountError::WrongCredentials),
            "{login:?}: {err:?}"
        );
    }

    // Straight at the directory: the username is a literal everywhere.
    let directory = Ldap::new(slapd.ldap_config());
    for username in ["*", "ana*", "ana,ou=people", "ana)(uid=*"] {
        assert!(
            !directory
                .verify(&entry(username, "X"), PASSWORD)
                .await
                .unwrap(),
            "{username:?}"
        );
    }
    let hash = directory.hash_password("another passphrase").unwrap();
    for username in ["ana*", "*", "evil,cn=admin", "x)(uid=ana"] {
        directory
            .create(&entry(username, "Mallory Tricks"), &hash)
            .await
            .unwrap_or_else(|e| panic!("{username:?}: {e}"));
        let filter = format!(
            "(uid={})",
            username
                .replace('*', "\\2a")
                .replace('(', "\\28")
                .replace(')', "\\29")
        );
        let found = slapd.search(PEOPLE, &filter, &["uid", "cn"]);
        assert_eq!(found.len(), 1, "{username:?}: {found:?}");
        assert_eq!(found[0].one("uid"), username);
        assert!(found[0].dn.ends_with(&format!(",{PEOPLE}")), "{found:?}");
        // One RDN below ou=people, not a DN of the user's making.
        assert_eq!(
            found[0].dn.len() - PEOPLE.len() - 1,
            found[0].dn.find(&format!(",{PEOPLE}")).unwrap()
        );
    }
    // Ana is untouched.
    let ana = slapd.person("ana").unwrap();
    assert_eq!(ana.one("cn"), "Ana Maria Silva");
    assert_eq!(ana.one("uidNumber"), "10000");
    assert!(slapd.whoami(&dn("ana"), PASSWORD).is_some());
    assert!(
        !directory
            .verify(&entry("ana*", "X"), PASSWORD)
            .await
            .unwrap()
    );
    assert!(
        directory
            .verify(&entry("ana*", "X"), "another passphrase")
            .await
            .unwrap()
    );
    app.stop().await;
}

#[tokio::test]
async fn creating_again_updates_and_hand_made_entries_are_adopted() {
    let slapd = slapd().await;
    let directory = Ldap::new(slapd.ldap_config());
    let first = directory.hash_password("first passphrase").unwrap();
    directory
        .create(&entry("ana", "Ana Silva"), &first)
        .await
        .unwrap();
    let second = directory.hash_password("second passphrase").unwrap();
    directory
        .create(&entry("ana", "Ana Silva Costa"), &second)
        .await
        .unwrap();
    let anas = slapd.search(PEOPLE, "(uid=ana)", &["*"]);
    assert_eq!(anas.len(), 1);
    assert_eq!(anas[0].one("cn"), "Ana Silva Costa");
    assert_eq!(anas[0].one("sn"), "Costa");
    assert_eq!(anas[0].one("uidNumber"), "10000");
    assert!(slapd.whoami(&dn("ana"), "second passphrase").is_some());
    assert!(slapd.whoami(&dn("ana"), "first passphrase").is_none());

    // Made by hand, without posixAccount: Bootler completes it.
    slapd.add(&format!(
        "dn: uid=dora,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: dora\ncn: D\nsn: D\n"
    ));
    directory
        .create(&entry("dora", "Dora Lima"), &first)
        .await
        .unwrap();
    let dora = slapd.person("dora").unwrap();
    assert!(
        dora.all("objectClass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case("posixAccount"))
    );
    assert_eq!(dora.one("uidNumber"), "10001");
    assert_eq!(dora.one("gidNumber"), "10001");
    assert_eq!(dora.one("homeDirectory"), "/home/dora");
    assert_eq!(dora.one("cn"), "Dora Lima");
    assert!(slapd.whoami(&dn("dora"), "first passphrase").is_some());

    // The same uid somewhere else under ou=people: refused, nothing made.
    slapd.add(&format!(
        "dn: cn=Carla Legacy,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: carla\ncn: Carla Legacy\nsn: Legacy\n"
    ));
    let err = directory
        .create(&entry("carla", "Carla"), &first)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Rejected(_)), "{err:?}");
    assert!(slapd.person("carla").is_none());
}

#[tokio::test]
async fn starttls_and_ldaps_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let tls = Tls::generate(certs.path());
    let slapd = {
        let tls = Tls {
            ca: tls.ca.clone(),
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        };
        tokio::task::spawn_blocking(move || Slapd::start_with_tls(&tls))
            .await
            .unwrap()
    };
    let ldaps = format!("ldaps://127.0.0.1:{}/", slapd.tls_port.unwrap());

    // StartTLS on ldap://: create, bind and change the password over TLS.
    let starttls = Ldap::new(LdapConfig {
        starttls: true,
        tls_ca_file: Some(tls.ca.clone()),
        ..slapd.ldap_config()
    });
    let hash = starttls.hash_password(PASSWORD).unwrap();
    starttls
        .create(&entry("ana", "Ana Silva"), &hash)
        .await
        .unwrap();
    assert!(
        starttls
            .verify(&entry("ana", "Ana"), PASSWORD)
            .await
            .unwrap()
    );
    starttls
        .set_password(&entry("ana", "Ana"), "over tls now")
        .await
        .unwrap();
    assert!(slapd.whoami(&dn("ana"), "over tls now").is_some());

    // ldaps://
    let over_ldaps = Ldap::new(LdapConfig {
        url: Some(ldaps.clone()),
        tls_ca_file: Some(tls.ca.clone()),
        ..slapd.ldap_config()
    });
    assert!(
        over_ldaps
            .verify(&entry("ana", "Ana"), "over tls now")
            .await
            .unwrap()
    );
    assert!(
        !over_ldaps
            .verify(&entry("ana", "Ana"), PASSWORD)
            .await
            .unwrap()
    );

    // Without the CA, the certificate is not trusted: an error, not a bind.
    for config in [
        LdapConfig {
            url: Some(ldaps),
            ..slapd.ldap_config()
        },
        LdapConfig {
            starttls: true,
            ..slapd.ldap_config()
        },
    ] {
        let untrusted = Ldap::new(config);
        let err = untrusted
            .verify(&entry("ana", "Ana"), "over tls now")
            .await
            .unwrap_err();
        assert!(matches!(err, DirectoryError::Internal(_)), "{err:?}");
    }
}

#[tokio::test]
async fn bootler_user_add_with_the_environment_configuration() {
    let slapd = slapd().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("ldap-password");
    std::fs::write(&secret, format!("{SERVICE_PASSWORD}\n")).unwrap();
    let user_add = |skip: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootler"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1");
        let vars = [
            ("BOOTLER_DIRECTORY__KIND", "ldap".to_string()),
            ("BOOTLER_LDAP__URL", slapd.url.clone()),
            ("BOOTLER_LDAP__BIND_DN", SERVICE_DN.to_string()),
            (
                "BOOTLER_LDAP__BIND_PASSWORD_FILE",
                secret.display().to_string(),
            ),
            ("BOOTLER_LDAP__USERS_DN", PEOPLE.to_string()),
        ];
        for (var, value) in vars {
            if var != skip {
                cmd.env(var, value);
            }
        }
        let mut child = cmd
            .args([
                "user",
                "add",
                "--admin",
                "boss",
                "--email",
                "boss@uminho.pt",
            ])
            .args(["--name", "The Boss"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let out = user_add("BOOTLER_LDAP__USERS_DN");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`ldap.users_dn`"), "{stderr}");
    assert!(slapd.person("boss").is_none());

    let out = user_add("");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boss = slapd.person("boss").expect("boss's entry");
    assert_eq!(boss.one("cn"), "The Boss");
    assert_eq!(boss.one("uidNumber"), "10000");
    assert!(slapd.whoami(&dn("boss"), PASSWORD).is_some());
}

/// `PATCH path` with a JSON body, as `username` (HTTP Basic).
async fn patch_as(app: &TestApp, username: &str, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .patch(format!("{}{path}", app.url))
        .basic_auth(username, Some(PASSWORD))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn me_status(app: &TestApp, username: &str) -> u16 {
    app.client
        .get(format!("{}/api/v1/me", app.url))
        .basic_auth(username, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn members(slapd: &Slapd) -> Vec<String> {
    slapd
        .search(DISABLED_GROUP, "(objectClass=*)", &["memberUid"])
        .first()
        .map(|group| {
            group
                .all("memberUid")
                .into_iter()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn locked_time(slapd: &Slapd, username: &str) -> Vec<String> {
    slapd
        .search(
            PEOPLE,
            &format!("(uid={username})"),
            &["pwdAccountLockedTime"],
        )
        .first()
        .map(|e| {
            e.all("pwdAccountLockedTime")
                .into_iter()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn disabled_accounts_are_locked_in_the_directory_itself() {
    let slapd = tokio::task::spawn_blocking(Slapd::start_with_ppolicy)
        .await
        .unwrap();
    let mut ldap = slapd.ldap_config();
    ldap.disabled_attribute = Some("pwdAccountLockedTime".into());
    ldap.disabled_group_dn = Some(DISABLED_GROUP.into());
    let (app, config) = app(ldap.clone()).await;
    let accounts = accounts(&config).await;
    accounts
        .create_user(
            NewUser {
                username: "boss".into(),
                display_name: "Beatriz Boss".into(),
                email: "boss@uminho.pt".into(),
                password: PASSWORD.into(),
                role: Role::Admin,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let token = register(&app, "ana", "Ana Silva").await;
    assert_eq!(confirm(&app, &token).await.0, 200);
    assert!(slapd.whoami(&dn("ana"), PASSWORD).is_some());

    // The name changes in the entry too.
    let (status, body) = patch_as(
        &app,
        "ana",
        "/api/v1/me",
        json!({"display_name": "Ana Maria Costa"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let person = slapd.person("ana").unwrap();
    assert_eq!(person.one("cn"), "Ana Maria Costa");
    assert_eq!(person.one("sn"), "Costa");

    // Disabled over the API: slapd itself refuses ana's binds now (so the
    // VPN and SSH through LDAP do too), and she is in the disabled group.
    let (status, body) = patch_as(
        &app,
        "boss",
        "/api/v1/users/ana",
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["status"], "disabled");
    assert_eq!(locked_time(&slapd, "ana"), ["000001010000Z"]);
    assert_eq!(members(&slapd), ["ana"]);
    assert_eq!(slapd.whoami(&dn("ana"), PASSWORD), None);
    assert_eq!(me_status(&app, "ana").await, 401);
    // Disabling again changes nothing and fails nothing.
    let (status, _) = patch_as(
        &app,
        "boss",
        "/api/v1/users/ana",
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = patch_as(
        &app,
        "boss",
        "/api/v1/users/ana",
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(locked_time(&slapd, "ana").is_empty());
    assert!(members(&slapd).is_empty());
    assert!(slapd.whoami(&dn("ana"), PASSWORD).is_some());
    assert_eq!(me_status(&app, "ana").await, 200);

    // Plain users cannot, and nobody disables themselves.
    let (status, body) = patch_as(
        &app,
        "ana",
        "/api/v1/users/boss",
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = patch_as(
        &app,
        "boss",
        "/api/v1/users/boss",
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your own account")
    );

    // A group that does not exist: refused with a reason; the lock
    // attribute is put back and the account stays active, so the directory
    // and Bootler still agree.
    let mut broken = config.clone();
    broken.ldap.disabled_group_dn = Some(format!(
        "cn=missing,ou=groups,{}",
        crate::support::slapd::SUFFIX
    ));
    let broken = self::accounts(&broken).await;
    let boss = broken.find("boss").await.unwrap().unwrap();
    let err = broken.set_enabled(&boss, "ana", false).await.unwrap_err();
    assert!(err.to_string().contains("cn=missing"), "{err}");
    assert!(locked_time(&slapd, "ana").is_empty());
    assert!(slapd.whoami(&dn("ana"), PASSWORD).is_some());
    assert_eq!(me_status(&app, "ana").await, 200);
    app.stop().await;
}

#[tokio::test]
async fn pools_open_to_ldap_groups_follow_the_directory() {
    let slapd = slapd().await;
    // A posixGroup naming ana by uid, a groupOfNames naming rui by DN.
    slapd.add(&format!(
        "dn: cn=hpc,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: hpc\ngidNumber: 5000\nmemberUid: ana\n\n\
         dn: cn=vision,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: vision\nmember: {}\n",
        dn("rui")
    ));
    let mut ldap = slapd.ldap_config();
    ldap.groups_dn = Some(format!("ou=groups,{SUFFIX}"));
    let (app, _config) = app(ldap.clone()).await;
    for (name, role) in [
        ("boss", Role::Admin),
        ("ana", Role::User),
        ("rui", Role::User),
    ] {
        app.add_user(name, role).await;
    }

    let directory = Ldap::new(ldap);
    assert_eq!(directory.groups_of("ana").await.unwrap(), ["hpc"]);
    assert_eq!(directory.groups_of("rui").await.unwrap(), ["vision"]);
    assert!(directory.groups_of("boss").await.unwrap().is_empty());

    let res = app
        .as_user(reqwest::Method::GET, "ana", "/api/v1/groups")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["editable"], false);
    let groups: Vec<(String, Value)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["members"].clone(),
            )
        })
        .collect();
    assert!(
        groups.contains(&("hpc".into(), json!(["ana"]))),
        "{groups:?}"
    );
    assert!(
        groups.contains(&("vision".into(), json!(["rui"]))),
        "{groups:?}"
    );

    // Kept in LDAP: Bootler says where to change them.
    let res = app
        .as_user(reqwest::Method::PUT, "boss", "/api/v1/groups/hpc")
        .json(&json!({"members": ["rui"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("LDAP"),
        "{body}"
    );

    let res = app
        .as_user(reqwest::Method::POST, "boss", "/api/v1/pools")
        .json(&json!({"name": "gpu", "access": ["@hpc"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let pools = |who: &'static str| {
        let req = app.as_user(reqwest::Method::GET, who, "/api/v1/availability");
        async move {
            let body: Value = req.send().await.unwrap().json().await.unwrap();
            body["pools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pool"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(pools("ana").await, ["gpu"]);
    assert!(pools("rui").await.is_empty());
    let allocate = |who: &'static str| {
        app.as_user(reqwest::Method::POST, who, "/api/v1/hosts/allocate")
            .json(&json!({"pool": "gpu"}))
            .send()
    };
    // Ana may draw from it (it is only empty); rui may not.
    assert_eq!(allocate("ana").await.unwrap().status(), 409);
    assert_eq!(allocate("rui").await.unwrap().status(), 403);

    // Into the group in LDAP: rui may draw at once.
    slapd.modify(&format!(
        "dn: cn=hpc,ou=groups,{SUFFIX}\nchangetype: modify\nadd: memberUid\nmemberUid: rui\n"
    ));
    assert_eq!(pools("rui").await, ["gpu"]);
    assert_eq!(allocate("rui").await.unwrap().status(), 409);
    app.stop().await;
}
