//! The `bootler` binary as an operator runs it: configuration from files and
//! the environment, both database engines, the `migrate` subcommand.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::app::write_site;
use crate::support::pg::Cluster;

const BIN: &str = env!("CARGO_BIN_EXE_bootler");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bootler` with a clean environment (no inherited BOOTLER_* variables).
fn bootler(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

struct Running {
    child: Child,
    url: String,
    first_line: String,
}

impl Running {
    /// Starts `cmd`, waits for its "listening on" line, then for `/healthz`.
    fn start(mut cmd: Command, port: u16) -> Running {
        let mut child = cmd
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let first_line = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("listening on") => break line,
                Ok(_) => {}
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "bootler did not start: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Err(_) => {
                    if let Some(status) = child.try_wait().unwrap() {
                        let out = child.wait_with_output().unwrap();
                        panic!(
                            "bootler exited with {status}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            }
        };
        Running {
            child,
            url: format!("http://127.0.0.1:{port}"),
            first_line,
        }
    }

    async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("bootler did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test]
async fn serves_on_sqlite_with_nothing_but_a_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = bootler(dir.path());
    cmd.env("BOOTLER_LISTEN", format!("127.0.0.1:{port}"));
    let running = Running::start(cmd, port);
    assert!(
        running
            .first_line
            .contains(&format!("listening on http://127.0.0.1:{port}")),
        "{}",
        running.first_line
    );
    let (status, body) = running.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "sqlite");
    // The embedded default keeps its database under ./data/.
    assert!(dir.path().join("data/bootler.db").exists());
    assert!(running.stop().success());
}

#[tokio::test]
async fn serves_on_postgres_from_the_environment() {
    let url = Cluster::shared().await.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = bootler(dir.path());
    cmd.env("BOOTLER_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOOTLER_DATABASE_URL", &url);
    let running = Running::start(cmd, port);
    let (status, body) = running.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "postgres");
    assert!(
        !dir.path().join("data").exists(),
        "no SQLite file with PostgreSQL"
    );
    assert!(running.stop().success());
}

#[tokio::test]
async fn reads_the_config_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let site = write_site(dir.path());
    std::fs::write(
        dir.path().join("bootler.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"state\"\nsite_dir = \"{}\"\n",
            site.display()
        ),
    )
    .unwrap();
    let running = Running::start(bootler(dir.path()), port);
    let res = reqwest::get(format!("{}/pkg/bootler.wasm", running.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(dir.path().join("state/bootler.db").exists());
    assert!(running.stop().success());
}

#[test]
fn migrate_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = bootler(dir.path())
        .env("BOOTLER_DATA_DIR", "db")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("db/bootler.db").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("database is up to date"));
}

#[test]
fn unknown_keys_stop_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = bootler(dir.path())
        .env("BOOTLER_LISTN", "127.0.0.1:1")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`listn`"), "{stderr}");
    assert!(stderr.contains("BOOTLER_LISTN"), "{stderr}");

    std::fs::write(
        dir.path().join("custom.toml"),
        "[frobnicator]\nurl = \"ldap://x\"\n",
    )
    .unwrap();
    let out = bootler(dir.path())
        .args(["--config", "custom.toml", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`frobnicator`"), "{stderr}");
}

#[test]
fn help_explains_both_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
    assert!(text.contains("migrate"), "{text}");
    assert!(text.contains("BOOTLER_"), "{text}");
}

fn user_add(dir: &Path, args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = bootler(dir)
        .args(["user", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn user_add_creates_the_first_admin_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = user_add(
        dir.path(),
        &[
            "--admin",
            "boss",
            "--email",
            "boss@example.org",
            "--name",
            "The Boss",
        ],
        "correct horse battery",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin account “boss”"));

    // The same name again, and bad input: refused with the reason.
    let out = user_add(
        dir.path(),
        &["boss", "--email", "b2@example.org"],
        "correct horse battery",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
    let out = user_add(dir.path(), &["Bad*Name", "--email", "nope"], "short");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("username:"), "{stderr}");
    assert!(stderr.contains("email:"), "{stderr}");
    assert!(stderr.contains("password:"), "{stderr}");
    let out = user_add(dir.path(), &["empty", "--email", "e@example.org"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));

    // The password set on the command line is the one the directory checks.
    let db = bootler_domain::Db::connect(
        &format!("sqlite://{}/data/bootler.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    let config = bootler_domain::Config::default();
    let accounts = bootler_server::services::accounts(&config, &db).unwrap();
    let user = accounts
        .authenticate("boss", "correct horse battery", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(user.display_name, "The Boss");
    assert_eq!(accounts.count_admins().await.unwrap(), 1);
    db.close().await;
}

#[test]
fn an_empty_install_says_how_to_create_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = bootler(dir.path())
        .env("BOOTLER_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut hint = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.contains("bootler user add --admin") {
            hint = true;
        }
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(hint, "no hint about the first admin");
}
