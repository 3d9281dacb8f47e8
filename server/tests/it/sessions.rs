//! Signing in with the form, the session cookie, `/api/v1/me`, signing
//! out, and rate limiting, over HTTP.

use serde_json::Value;

use crate::support::app::TestApp;

async fn add_user(app: &TestApp, username: &str) {
    app.post_json(
        "/api/v1/register",
        serde_json::json!({
            "username": username,
            "display_name": "Ana Silva",
            "email": format!("{username}@uminho.pt"),
            "password": "correct horse battery",
        }),
    )
    .await;
    let token = app.mails().last().unwrap().confirm_token();
    let res = app
        .post_json("/api/v1/confirm", serde_json::json!({ "token": token }))
        .await;
    assert_eq!(res.status(), 200);
}

async fn login(app: &TestApp, login: &str, password: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/login", app.url))
        .form(&[("login", login), ("password", password), ("next", "/login")])
        .send()
        .await
        .unwrap()
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("bootler_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn sign_in_me_and_sign_out() {
    let app = TestApp::sqlite().await;
    add_user(&app, "ana").await;

    let res = app.get("/api/v1/me").await;
    assert_eq!(res.status(), 401);

    let res = login(&app, "ana", "wrong password").await;
    assert_eq!(res.status(), 303);
    assert!(session_cookie(&res).is_none());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("err=Wrong+username+or+password."),
        "{location}"
    );
    // Unknown users get the very same answer.
    let res = login(&app, "nobody", "wrong password").await;
    let other = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(other.replace("nobody", "ana"), location);

    let res = login(&app, "ana@uminho.pt", "correct horse battery").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "plain HTTP in tests");
    let cookie = session_cookie(&res).unwrap();

    let res = app
        .client
        .get(format!("{}/api/v1/me", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "ana");

    // The page knows who is signed in, server-rendered.
    let html = app
        .client
        .get(format!("{}/", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Ana Silva"), "{html}");
    assert!(html.contains(">Sign out</button>"), "{html}");

    // Sign-out needs the session's CSRF token.
    let res = app
        .client
        .post(format!("{}/logout", app.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let res = app
        .client
        .post(format!("{}/logout", app.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let res = app
        .client
        .get(format!("{}/api/v1/me", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_wrong_passwords_are_rate_limited_without_errors() {
    let app = TestApp::postgres().await;
    add_user(&app, "ana").await;
    let mut limited = 0;
    for i in 0..100 {
        let res = login(&app, "ana", &format!("wrong {i}")).await;
        assert_eq!(res.status(), 303, "attempt {i}");
        let location = res.headers()["location"].to_str().unwrap().to_string();
        if location.contains("Too+many+failed+sign-ins") {
            limited += 1;
        } else {
            assert!(location.contains("Wrong+username"), "{location}");
        }
    }
    assert_eq!(limited, 95, "5 tries, then limited");
    // Even the right password waits now.
    let res = login(&app, "ana", "correct horse battery").await;
    assert!(session_cookie(&res).is_none());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("Try+again+in"), "{location}");
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_by_basic_auth_bearer_use_and_revocation() {
    let app = TestApp::sqlite().await;
    add_user(&app, "ana").await;
    add_user(&app, "bob").await;
    let url = |path: &str| format!("{}{path}", app.url);

    // Scripts get a token with HTTP Basic.
    let res = app
        .client
        .post(url("/api/v1/tokens"))
        .basic_auth("ana", Some("correct horse battery"))
        .json(&serde_json::json!({ "name": "laptop script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let secret = body["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("bt_"), "{secret}");
    let id = body["id"].as_i64().unwrap();

    let res = app
        .client
        .get(url("/api/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["user"]["username"],
        "ana"
    );

    // Listed without the secret, with its last use.
    let res = app
        .client
        .get(url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains(&secret));
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["tokens"][0]["name"], "laptop script");
    assert!(list["tokens"][0]["last_used_at"].is_string());

    // Same name twice: 409. Bad name: 422. Wrong password: 401, generic.
    let res = app
        .client
        .post(url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .json(&serde_json::json!({ "name": "laptop script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = app
        .client
        .post(url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .json(&serde_json::json!({ "name": " " }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(url("/api/v1/tokens"))
        .basic_auth("ana", Some("wrong"))
        .json(&serde_json::json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["message"],
        "Wrong username or password."
    );

    // Bob cannot revoke Ana's token; forged and malformed tokens are 401/400.
    let res = app
        .client
        .post(url("/api/v1/tokens"))
        .basic_auth("bob", Some("correct horse battery"))
        .json(&serde_json::json!({ "name": "bob" }))
        .send()
        .await
        .unwrap();
    let bob: Value = res.json().await.unwrap();
    let bob_secret = bob["token"].as_str().unwrap();
    let res = app
        .client
        .delete(url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(bob_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .get(url("/api/v1/me"))
        .bearer_auth("bt_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .delete(url("/api/v1/tokens/abc"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .get(url("/api/v1/me"))
        .header("authorization", "Basic %%%")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Revoked: the token stops working at once.
    let res = app
        .client
        .delete(url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .get(url("/api/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn forgotten_password_reset_by_mail_and_change_over_the_api() {
    let app = TestApp::sqlite().await;
    add_user(&app, "ana").await;
    let mails_before = app.mails().len();

    // The same answer for unknown accounts, and no mail.
    let res = app
        .client
        .post(format!("{}/forgot", app.url))
        .form(&[("login", "nobody")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/forgot?sent=1");
    let res = app
        .client
        .post(format!("{}/forgot", app.url))
        .form(&[("login", "ana")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/forgot?sent=1");
    let mails = app.mails();
    assert_eq!(mails.len(), mails_before + 1);
    let mail = mails.last().unwrap();
    assert_eq!(mail.subject, "Reset your Bootler password");
    let link = mail
        .text
        .split_whitespace()
        .find(|w| w.contains("/reset/"))
        .unwrap();
    let token = link.rsplit('/').next().unwrap().to_string();

    let res = app
        .client
        .post(format!("{}/reset", app.url))
        .form(&[
            ("token", token.as_str()),
            ("new_password", "short"),
            ("new_password_confirm", "short"),
        ])
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("/reset/{token}?err_new_password=")),
        "{location}"
    );

    let res = app
        .client
        .post(format!("{}/reset", app.url))
        .form(&[
            ("token", token.as_str()),
            ("new_password", "a brand new password"),
            ("new_password_confirm", "a brand new password"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?login=ana&notice=")
    );

    // The new password works; change it again over the API with HTTP Basic.
    let res = app
        .client
        .post(format!("{}/api/v1/me/password", app.url))
        .basic_auth("ana", Some("a brand new password"))
        .json(&serde_json::json!({"current_password": "wrong", "new_password": "third password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(format!("{}/api/v1/me/password", app.url))
        .basic_auth("ana", Some("a brand new password"))
        .json(&serde_json::json!({"current_password": "a brand new password", "new_password": "third password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = login(&app, "ana", "third password here").await;
    assert!(session_cookie(&res).is_some());
    app.stop().await;
}
