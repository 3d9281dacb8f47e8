//! A `TestApp` is the real Bootler server on a free loopback port, with its
//! own temporary data folder and site folder, against SQLite or PostgreSQL.

use std::path::{Path, PathBuf};

use bootler_domain::Config;
use bootler_server::Server;
use tokio::sync::oneshot;

use super::pg::Cluster;

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
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

    pub async fn start(database_url: Option<String>) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let site_dir = write_site(dir.path());
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url,
            site_dir: site_dir.clone(),
            ..Config::default()
        };
        let server = Server::bind(config).await.expect("server starts");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestApp {
            url: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
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
