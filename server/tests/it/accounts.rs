//! Registration and confirmation over the REST API, with mail going to the
//! outbox, on both engines; and `bootler user add`.

use serde_json::{Value, json};

use crate::support::app::TestApp;

fn registration(username: &str, email: &str) -> Value {
    json!({
        "username": username,
        "display_name": "Ana Silva",
        "email": email,
        "password": "correct horse battery",
    })
}

async fn register_and_confirm(engine: &str) {
    let app = TestApp::start(TestApp::database(engine).await).await;

    let res = app
        .post_json("/api/v1/register", registration("ana", "Ana@UMinho.pt"))
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "ana");
    assert_eq!(body["user"]["status"], "pending");
    assert_eq!(body["user"]["email"], "ana@uminho.pt");
    assert!(body["user"].get("pending_password_hash").is_none());

    let mails = app.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ana@uminho.pt");
    assert_eq!(mails[0].subject, "Confirm your Bootler account");
    let link = mails[0].confirm_link();
    assert!(link.starts_with(&format!("{}/confirm/", app.url)), "{link}");

    let res = app
        .post_json(
            "/api/v1/confirm",
            json!({ "token": mails[0].confirm_token() }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["status"], "active");

    // Single use.
    let res = app
        .post_json(
            "/api/v1/confirm",
            json!({ "token": mails[0].confirm_token() }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );

    // Taken now.
    let res = app
        .post_json("/api/v1/register", registration("ana", "other@uminho.pt"))
        .await;
    assert_eq!(res.status(), 409);
    let res = app
        .post_json("/api/v1/register", registration("other", "ANA@uminho.pt"))
        .await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("e-mail address")
    );
    app.stop().await;
}

#[tokio::test]
async fn register_and_confirm_on_sqlite() {
    register_and_confirm("sqlite").await;
}

#[tokio::test]
async fn register_and_confirm_on_postgres() {
    register_and_confirm("postgres").await;
}

#[tokio::test]
async fn bad_registrations_get_clear_errors_and_change_nothing() {
    let app = TestApp::sqlite().await;

    let res = app
        .post_json("/api/v1/register", registration("ana", "ana@gmail.com"))
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");
    assert_eq!(body["error"]["fields"][0]["field"], "email");
    assert!(
        body["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("@uminho.pt, @di.uminho.pt")
    );

    let res = app
        .post_json(
            "/api/v1/register",
            json!({"username": "a*)(uid=*", "display_name": "x", "email": "x@uminho.pt", "password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "password"]);

    // Missing field, wrong type, broken JSON, wrong content type: 4xx with a sentence.
    let res = app
        .post_json("/api/v1/register", json!({"username": "ana"}))
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field")
    );
    let res = app
        .client
        .post(format!("{}/api/v1/register", app.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(format!("{}/api/v1/register", app.url))
        .body("username=ana")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    let res = app
        .post_json("/api/v1/confirm", json!({"token": "made-up"}))
        .await;
    assert_eq!(res.status(), 422);

    assert!(app.mails().is_empty(), "no mail for refused registrations");
    app.stop().await;
}

#[tokio::test]
async fn the_registration_form_redirects_with_errors_or_to_the_next_page() {
    let app = TestApp::sqlite().await;
    let post = |body: &'static str, origin: Option<&'static str>| {
        let mut req = app
            .client
            .post(format!("{}/register", app.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };

    let res = post(
        "username=ana&display_name=Ana&email=ana%40gmail.com&password=correct+horse+battery&password_confirm=correct+horse+battery",
        Some("https://evil.example"),
    )
    .await
    .unwrap();
    // Another origin than the server's own: refused before anything happens.
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("another site"));

    let res = post(
        "username=ana&display_name=Ana&email=ana%40gmail.com&password=correct+horse+battery&password_confirm=correct+horse+battery",
        None,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/register?"), "{location}");
    assert!(location.contains("err_email="), "{location}");
    assert!(location.contains("username=ana"), "{location}");
    assert!(
        !location.contains("password=") && !location.contains("horse"),
        "{location}"
    );

    let res = post(
        "username=ana&display_name=Ana&email=ana%40uminho.pt&password=correct+horse+battery&password_confirm=correct+horse+battery",
        None,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/register/sent?email=ana%40uminho.pt"
    );
    assert_eq!(app.mails().len(), 1);

    // A broken body is not a 500 either.
    let res = app
        .client
        .post(format!("{}/register", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn the_confirmation_link_can_be_sent_again() {
    let app = TestApp::sqlite().await;
    let res = app
        .post_json("/api/v1/register", registration("ana", "ana@uminho.pt"))
        .await;
    assert_eq!(res.status(), 202);
    let resend = |email: &'static str| {
        app.client
            .post(format!("{}/register/resend", app.url))
            .form(&[("email", email)])
            .send()
    };
    // Within a minute of the first mail: the same answer, no second mail.
    let res = resend("ana@uminho.pt").await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/register/sent?email=ana%40uminho.pt&resent=1"
    );
    let res = resend("nobody@uminho.pt").await.unwrap();
    assert_eq!(
        res.headers()["location"],
        "/register/sent?email=nobody%40uminho.pt&resent=1"
    );
    assert_eq!(app.mails().len(), 1);
    app.stop().await;
}
