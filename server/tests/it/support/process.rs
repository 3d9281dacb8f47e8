//! A `bootler serve` process with JSON logs kept line by line, to count
//! what it did (jobs started and finished) even after it was killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_bootler");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Process {
    child: Child,
    pub url: String,
    /// Every log line, parsed (JSON format).
    pub logs: Arc<Mutex<Vec<Value>>>,
    /// Reads the log lines until the process's output ends.
    reader: Option<std::thread::JoinHandle<()>>,
}

/// `bootler <args>` in `dir` with a clean environment plus `env`.
pub fn command(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("BOOTLER_LOG_FORMAT", "json");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

impl Process {
    /// Starts `bootler serve <extra>` on a free port and waits for `/healthz`.
    pub async fn serve(dir: &Path, env: &[(&str, String)], extra: &[&str]) -> Process {
        let port = free_port();
        let mut cmd = command(dir, env);
        cmd.env("BOOTLER_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let kept = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    kept.lock().unwrap().push(value);
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("bootler exited with {status} before answering");
            }
            if let Ok(res) = reqwest::get(format!("{url}/healthz")).await
                && res.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "bootler did not answer in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Process {
            child,
            url,
            logs,
            reader: Some(reader),
        }
    }

    /// How many log lines say `message` (e.g. "job finished"), per `job` id.
    pub fn count(&self, message: &str) -> std::collections::HashMap<i64, usize> {
        let mut counts = std::collections::HashMap::new();
        for line in self.logs.lock().unwrap().iter() {
            if line["fields"]["message"] == message
                && let Some(job) = line["fields"]["job"].as_i64()
            {
                *counts.entry(job).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown at all. Afterwards [`Process::count`] sees
    /// every line the process wrote.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }

    /// SIGTERM and wait for the exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bootler user add --admin boss` with the password on stdin.
pub fn add_admin(dir: &Path, env: &[(&str, String)]) {
    add_user(dir, env, "boss", true);
}

/// `bootler user add [--admin] <name> --email <name>@uminho.pt` with the
/// password `correct horse battery` on stdin.
pub fn add_user(dir: &Path, env: &[(&str, String)], name: &str, admin: bool) {
    use std::io::Write;
    let mut cmd = command(dir, env);
    cmd.args(["user", "add"]);
    if admin {
        cmd.arg("--admin");
    }
    let mut child = cmd
        .args([name, "--email", &format!("{name}@uminho.pt")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
