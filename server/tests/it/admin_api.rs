//! Account administration and the profile over the REST API, on both
//! engines: `/api/v1/users…` and `/api/v1/me/keys`.

use bootler_domain::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::TestApp;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa ana@laptop";

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

both_engines! {
    async fn admins_manage_accounts(app: TestApp) {
        app.add_user("boss", Role::Admin).await;
        app.add_user("ana", Role::User).await;
        for (username, email) in [("carla", "carla@uminho.pt"), ("typo", "typo@uminho.pt")] {
            let res = app
                .post_json(
                    "/api/v1/register",
                    json!({"username": username, "display_name": "C", "email": email, "password": "correct horse battery"}),
                )
                .await;
            assert_eq!(res.status(), 202);
        }

        let (status, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 4);
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users?status=pending")).await;
        let names: Vec<&str> = body["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"carla") && names.contains(&"typo"));
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users?search=%25")).await;
        assert_eq!(body["total"], 0, "% is not a wildcard");
        let (_, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users?role=admin&limit=1")).await;
        assert_eq!(body["users"][0]["username"], "boss");

        // Clear refusals.
        let (status, body) = send(app.as_user(Method::GET, "ana", "/api/v1/users")).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(message(&body), "Only administrators manage accounts.");
        let (status, _) = send(app.client.get(format!("{}/api/v1/users", app.url))).await;
        assert_eq!(status, 401);
        let (status, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users?status=gone")).await;
        assert_eq!(status, 422);
        assert!(message(&body).contains("pending, active or disabled"), "{body}");
        let (status, body) = send(app.as_user(Method::GET, "boss", "/api/v1/users/nobody")).await;
        assert_eq!(status, 404);
        assert!(message(&body).contains("nobody"));
        let (status, body) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/ana").json(&json!({"role": "root"}))).await;
        assert_eq!(status, 422, "{body}");
        let (status, _) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/ana").json(&json!({}))).await;
        assert_eq!(status, 422);
        let (status, _) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/ana").json(&json!({"status": "disabled", "colour": "red"}))).await;
        assert_eq!(status, 422);
        assert_eq!(send(app.as_user(Method::GET, "ana", "/api/v1/me")).await.0, 200, "nothing changed");

        // Pending: approve one, delete the other; neither can be disabled.
        let (status, body) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/carla").json(&json!({"status": "disabled"}))).await;
        assert_eq!(status, 409, "{body}");
        let (status, body) = send(app.as_user(Method::POST, "boss", "/api/v1/users/carla/approve")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["status"], "active");
        assert_eq!(send(app.as_user(Method::GET, "carla", "/api/v1/me")).await.0, 200);
        let (status, _) = send(app.as_user(Method::DELETE, "boss", "/api/v1/users/carla")).await;
        assert_eq!(status, 409, "active accounts are not deleted");
        let (status, _) = send(app.as_user(Method::DELETE, "boss", "/api/v1/users/typo")).await;
        assert_eq!(status, 204);
        assert_eq!(send(app.as_user(Method::GET, "boss", "/api/v1/users/typo")).await.0, 404);

        // Disable and enable, promote and demote.
        let (status, body) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/ana").json(&json!({"status": "disabled"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(send(app.as_user(Method::GET, "ana", "/api/v1/me")).await.0, 403);
        let (_, body) = send(app.as_user(Method::PATCH, "boss", "/api/v1/users/ana").json(&json!({"status": "active", "role": "admin"}))).await;
        assert_eq!(body["user"]["status"], "active");
        assert_eq!(body["user"]["role"], "admin");
        assert_eq!(send(app.as_user(Method::GET, "ana", "/api/v1/users")).await.0, 200);
        let (status, body) = send(app.as_user(Method::PATCH, "ana", "/api/v1/users/ana").json(&json!({"role": "user"}))).await;
        assert_eq!(status, 403);
        assert!(message(&body).contains("your own account"), "{body}");
        let (_, body) = send(app.as_user(Method::PATCH, "ana", "/api/v1/users/boss").json(&json!({"role": "user"}))).await;
        assert_eq!(body["user"]["role"], "user");
        assert_eq!(send(app.as_user(Method::GET, "boss", "/api/v1/users")).await.0, 403);
    }

    async fn people_keep_their_name_and_ssh_keys(app: TestApp) {
        app.add_user("ana", Role::User).await;
        app.add_user("bruno", Role::User).await;
        let (status, body) = send(app.as_user(Method::PATCH, "ana", "/api/v1/me").json(&json!({"display_name": "Ana Silva"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["display_name"], "Ana Silva");
        let (status, body) = send(app.as_user(Method::PATCH, "ana", "/api/v1/me").json(&json!({"display_name": ""}))).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["fields"][0]["field"], "display_name");

        let (status, body) = send(app.as_user(Method::POST, "ana", "/api/v1/me/keys").json(&json!({"public_key": KEY}))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["key"]["name"], "ana@laptop");
        assert_eq!(body["key"]["fingerprint"], "SHA256:FwnmtEIDMmcpJYb+83of9cxbm/gsNFiir08UiSD06tA");
        let id = body["key"]["id"].as_i64().unwrap();
        let (status, body) = send(app.as_user(Method::POST, "ana", "/api/v1/me/keys").json(&json!({"public_key": KEY, "name": "again"}))).await;
        assert_eq!(status, 422);
        assert!(message(&body).contains("already added"), "{body}");
        let (status, body) = send(app.as_user(Method::POST, "ana", "/api/v1/me/keys").json(&json!({"public_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"}))).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["fields"][0]["field"], "public_key");
        let (status, _) = send(app.as_user(Method::POST, "ana", "/api/v1/me/keys").json(&json!({"key": KEY}))).await;
        assert_eq!(status, 422, "unknown fields are refused");

        let (_, body) = send(app.as_user(Method::GET, "ana", "/api/v1/me/keys")).await;
        assert_eq!(body["keys"].as_array().unwrap().len(), 1);
        assert_eq!(body["keys"][0]["public_key"], KEY.rsplit_once(' ').unwrap().0);
        let (_, body) = send(app.as_user(Method::GET, "bruno", "/api/v1/me/keys")).await;
        assert_eq!(body["keys"], json!([]));
        let path = format!("/api/v1/me/keys/{id}");
        assert_eq!(send(app.as_user(Method::DELETE, "bruno", &path)).await.0, 404);
        assert_eq!(send(app.as_user(Method::DELETE, "ana", "/api/v1/me/keys/x")).await.0, 400);
        assert_eq!(send(app.as_user(Method::DELETE, "ana", &path)).await.0, 204);
        assert_eq!(send(app.as_user(Method::DELETE, "ana", &path)).await.0, 404);
    }
}
