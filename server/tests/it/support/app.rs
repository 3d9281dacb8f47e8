//! A `TestApp` is the real Bootler server on a free loopback port, with its
//! own temporary data folder and site folder, against SQLite or PostgreSQL.

use std::path::{Path, PathBuf};

use bootler_domain::Config;
use bootler_server::Server;
use tokio::sync::oneshot;

use super::pg::Cluster;

pub struct TestApp {
    pub url: String,
    /// Where the server writes mail (`mail.kind = "outbox"`).
    pub outbox: PathBuf,
    pub client: reqwest::Client,
    /// The configuration it runs with.
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// A site folder like cargo-leptos writes it, with small stand-in files.
pub fn write_site(dir: &Path) -> PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    // A WASM module header and enough padding to be worth compressing.
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.resize(4096, 0);
    std::fs::write(site.join("pkg/bootler.wasm"), wasm).unwrap();
    std::fs::write(site.join("pkg/bootler.js"), "export default function(){}\n").unwrap();
    std::fs::write(site.join("pkg/bootler.css"), "body{}\n").unwrap();
    std::fs::write(
        site.join("favicon.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    site
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        TestApp::start(None).await
    }

    pub async fn postgres() -> TestApp {
        let url = Cluster::shared().await.fresh_database().await;
        TestApp::start(Some(url)).await
    }

    /// A database URL for `engine` ("sqlite" → None, the default file).
    pub async fn database(engine: &str) -> Option<String> {
        match engine {
            "postgres" => Some(Cluster::shared().await.fresh_database().await),
            _ => None,
        }
    }

    pub async fn start(database_url: Option<String>) -> TestApp {
        TestApp::start_with(database_url, |_| {}).await
    }

    /// Starts with the test defaults changed by `adjust`.
    pub async fn start_with(
        database_url: Option<String>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let site_dir = write_site(dir.path());
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url,
            site_dir: site_dir.clone(),
            ..Config::default()
        };
        config.accounts.allowed_domains = vec!["uminho.pt".into(), "di.uminho.pt".into()];
        // Tests do not wait long for jobs.
        config.jobs.shutdown_grace_seconds = 2;
        config.jobs.poll_ms = 100;
        // Templates render in worker processes of the real binary (this
        // test program is not `bootler`).
        config.boot.render_program = Some(env!("CARGO_BIN_EXE_bootler").into());
        adjust(&mut config);
        let outbox = config.outbox_dir();
        let kept = config.clone();
        let server = Server::bind(config).await.expect("server starts");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestApp {
            url: format!("http://{addr}"),
            outbox,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            config: kept,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The accounts service on the server's database and directory.
    pub async fn accounts(&self) -> bootler_domain::accounts::Accounts {
        let db = bootler_server::cli::open_database(&self.config)
            .await
            .unwrap();
        bootler_server::services::accounts(&self.config, &db).unwrap()
    }

    /// An active account made directly (like `bootler user add`), with the
    /// password `correct horse battery`.
    pub async fn add_user(&self, username: &str, role: bootler_domain::accounts::Role) {
        self.accounts()
            .await
            .create_user(
                bootler_domain::accounts::NewUser {
                    username: username.into(),
                    display_name: format!("{username} Example"),
                    email: format!("{username}@uminho.pt"),
                    password: "correct horse battery".into(),
                    role,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }

    /// A request as `username` (HTTP Basic, password `correct horse battery`).
    pub fn as_user(
        &self,
        method: reqwest::Method,
        username: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .basic_auth(username, Some("correct horse battery"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The mails in the outbox, oldest first, parsed.
    pub fn mails(&self) -> Vec<OutboxMail> {
        let Ok(entries) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let raw = std::fs::read(path).unwrap();
                let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
                OutboxMail {
                    to: parsed
                        .to()
                        .unwrap()
                        .first()
                        .unwrap()
                        .address()
                        .unwrap()
                        .to_string(),
                    subject: parsed.subject().unwrap_or_default().to_string(),
                    text: parsed.body_text(0).unwrap_or_default().to_string(),
                }
            })
            .collect()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl OutboxMail {
    /// The first `http(s)://…/confirm/<token>` link in the text.
    pub fn confirm_link(&self) -> String {
        let start = self.text.find("/confirm/").expect("a confirmation link");
        let begin = self.text[..start].rfind("http").expect("absolute link");
        self.text[begin..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    pub fn confirm_token(&self) -> String {
        self.confirm_link().rsplit('/').next().unwrap().to_string()
    }
}
