//! The HTTP surface every deployment has: pages, health, metrics, static
//! files and API errors. Each test runs against SQLite and PostgreSQL.

use crate::support::app::TestApp;

both_engines! {
    async fn health_and_readiness(app: TestApp) {
        let res = app.get("/healthz").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "ok");

        let res = app.get("/readyz").await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        let engine = body["database"].as_str().unwrap();
        assert!(engine == "sqlite" || engine == "postgres", "{body}");
    }

    async fn home_page_is_rendered_on_the_server(app: TestApp) {
        let res = app.get("/").await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/html; charset=utf-8"
        );
        let html = res.text().await.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("<title>Bootler</title>"));
        assert!(html.contains("Machines for research, without the ticket."));
        assert!(html.contains("id=\"sign-in\""));
        // The page links the hydration code cargo-leptos builds.
        assert!(html.contains("/pkg/bootler.js"));
        assert!(html.contains("/pkg/bootler.wasm"));
        assert!(html.contains("href=\"/pkg/bootler.css\""));
        // The first tab is open before any JavaScript runs; the others are hidden.
        assert!(html.contains("id=\"panel-metal\""));
        assert!(html.contains("id=\"panel-vm\""));
    }

    async fn unknown_page_is_a_404_page(app: TestApp) {
        let res = app.get("/no/such/page").await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        assert!(html.contains("Page not found"), "{html}");
    }

    async fn unknown_api_path_is_a_json_404(app: TestApp) {
        let res = app.get("/api/v1/no-such-thing").await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(
            body["error"]["message"],
            "There is no API endpoint at /api/v1/no-such-thing."
        );

        let res = app.get("/api/v1").await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["name"], "bootler");
    }

    async fn static_assets_have_types_and_cache_headers(app: TestApp) {
        let res = app.get("/pkg/bootler.wasm").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/wasm");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert!(res.headers().contains_key("last-modified"));
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), 4096);
        assert_eq!(&body[..8], b"\0asm\x01\0\0\0");

        // Compressed for browsers that accept it.
        for encoding in ["gzip", "br"] {
            let res = app
                .client
                .get(format!("{}/pkg/bootler.wasm", app.url))
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-encoding"], encoding);
            assert_eq!(res.headers()["content-type"], "application/wasm");
            assert!(res.bytes().await.unwrap().len() < 200);
        }

        let res = app.get("/pkg/bootler.js").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/javascript");

        let res = app.get("/pkg/bootler.css").await;
        assert_eq!(res.headers()["content-type"], "text/css");

        let res = app.get("/favicon.svg").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
        assert_eq!(res.headers()["cache-control"], "public, max-age=3600");

        // Revalidation answers 304 without a body.
        let last_modified = app.get("/pkg/bootler.wasm").await.headers()["last-modified"].clone();
        let res = app
            .client
            .get(format!("{}/pkg/bootler.wasm", app.url))
            .header("if-modified-since", last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304);

        let res = app.get("/pkg/missing.wasm").await;
        assert_eq!(res.status(), 404);
        let res = app.get("/pkg/../../Cargo.toml").await;
        assert_eq!(res.status(), 404);
    }

    async fn metrics_count_requests_by_route(app: TestApp) {
        for _ in 0..3 {
            assert_eq!(app.get("/healthz").await.status(), 200);
        }
        assert_eq!(app.get("/no/such/page").await.status(), 404);
        let res = app.get("/metrics").await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = res.text().await.unwrap();
        assert!(
            text.contains("bootler_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 3\n"),
            "{text}"
        );
        assert!(text.contains(
            "bootler_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "bootler_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 3\n"
        ));
        // Raw paths never become labels.
        assert!(!text.contains("/no/such/page"));
    }
}
