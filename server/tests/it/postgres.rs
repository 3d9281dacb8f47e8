//! PostgreSQL specifics: migrations and a database that goes away.

use bootler_domain::Db;

use crate::support::app::TestApp;
use crate::support::pg::Cluster;

#[tokio::test]
async fn migrations_apply_once_and_record_an_installation_id() {
    let url = Cluster::shared().await.fresh_database().await;
    let db = Db::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(db.engine(), "postgres");
    let id = db.installation_id().await.unwrap();
    assert_eq!(id.len(), 32, "{id}");
    db.close().await;
}

#[tokio::test]
async fn readiness_fails_cleanly_when_postgres_stops() {
    // A cluster of its own, because this test stops it.
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let url = cluster.fresh_database().await;
    let app = TestApp::start(Some(url)).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        body["error"]["message"],
        "The postgres database does not answer."
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}
