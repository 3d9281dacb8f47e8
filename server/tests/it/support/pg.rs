//! A real PostgreSQL for tests: `initdb` + `pg_ctl` from Debian's
//! `postgresql` package in a temporary folder, on a free loopback port.
//!
//! One cluster per test process, started on first use; every test gets its
//! own database. A watchdog shell stops the cluster when the test process is
//! gone, however it ended.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::OnceCell;

pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// Kept so the folder lives as long as the cluster.
    dir: tempfile::TempDir,
}

static SHARED: OnceCell<Cluster> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server binaries: `BOOTLER_TEST_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BOOTLER_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL is not installed (/usr/lib/postgresql missing): run scripts/setup.sh test",
        )
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
        .1
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root
/// (initdb and postgres refuse to run as root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    let tool = bin.join(tool);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(tool);
        cmd
    } else {
        Command::new(tool)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Starts a new cluster that the caller owns (stopped on drop).
    pub fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("bootler-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let data = dir.path().join("data");
        let port = free_port();
        run(
            {
                let mut c = pg_command(&bin, "initdb");
                c.arg("-D").arg(&data).args([
                    "-U",
                    "bootler",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]);
                c
            },
            "initdb",
        );
        run(
            {
                let mut c = pg_command(&bin, "pg_ctl");
                c.arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.path().join("postgres.log"))
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!(
                        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                        dir.path().display()
                    ))
                    .arg("start");
                c
            },
            "pg_ctl start",
        );
        let cluster = Cluster {
            port,
            bin,
            data,
            dir,
        };
        cluster.spawn_watchdog();
        cluster
    }

    /// The cluster shared by this test process.
    pub async fn shared() -> &'static Cluster {
        SHARED
            .get_or_init(|| async {
                tokio::task::spawn_blocking(Cluster::start)
                    .await
                    .expect("start")
            })
            .await
    }

    /// Stops the cluster and removes its folder when this process has ended,
    /// even if it was killed (the shared cluster is a static, never dropped).
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {prefix}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            prefix = if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = pg_ctl.display(),
            data = self.data.display(),
            dir = self.dir.path().display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://bootler@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database on this cluster.
    pub async fn fresh_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let admin = self.url("postgres");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to test cluster");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        self.url(&name)
    }

    pub fn stop(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
