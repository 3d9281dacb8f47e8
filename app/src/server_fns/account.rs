//! What the account page shows: the profile, SSH keys and API tokens of the
//! signed-in user, and a token created a moment ago (shown once).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub algorithm: String,
    pub bits: i32,
    pub fingerprint: String,
    pub added: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub created: String,
    pub last_used: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub admin: bool,
    /// Goes back in every form of the page.
    pub csrf: String,
    /// Where the API is, for the examples.
    pub base_url: String,
    pub keys: Vec<KeyView>,
    pub tokens: Vec<TokenView>,
    /// A token made by the form post just before, from its flash cookie.
    pub new_token: Option<NewToken>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
    pub secret: String,
}

/// The cookie that carries a new token's secret from `POST /account/tokens`
/// to the next rendering of `/account`, which shows it once and clears it.
pub const NEW_TOKEN_COOKIE: &str = "bootler_new_token";

/// `2026-11-21 14:05 UTC`.
#[cfg(feature = "ssr")]
pub fn when(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[server(prefix = "/sfn", endpoint = "account_overview")]
pub async fn account_overview() -> Result<Option<AccountView>, ServerFnError> {
    use super::current_user::{accounts, request_cookie, request_session};
    use bootler_domain::accounts::Role;
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let accounts = accounts()?;
    let user = session.user;
    let csrf = session.csrf_token;
    let err = |e: bootler_domain::accounts::AccountError| ServerFnError::new(e.to_string());
    let keys = accounts.list_ssh_keys(&user).await.map_err(err)?;
    let tokens = accounts.list_tokens(&user).await.map_err(err)?;
    let mut new_token = None;
    if let Some(secret) = request_cookie(NEW_TOKEN_COOKIE) {
        // Shown only to its owner, and only while it is not revoked.
        if let Some(token) = accounts.own_token(&user, &secret).await.map_err(err)? {
            new_token = Some(NewToken {
                name: token.name,
                secret,
            });
        }
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            let secure = accounts.settings().base_url.starts_with("https://");
            let clear = format!(
                "{NEW_TOKEN_COOKIE}=; Path=/account; HttpOnly; SameSite=Strict; Max-Age=0{}",
                if secure { "; Secure" } else { "" }
            );
            if let Ok(value) = http::HeaderValue::from_str(&clear) {
                response.append_header(http::header::SET_COOKIE, value);
            }
            // The page holds a secret: keep it out of caches.
            response.insert_header(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
        }
    }
    Ok(Some(AccountView {
        admin: user.role == Role::Admin,
        csrf,
        base_url: accounts.settings().base_url.clone(),
        username: user.username,
        display_name: user.display_name,
        email: user.email,
        keys: keys
            .into_iter()
            .map(|k| KeyView {
                id: k.id,
                name: k.name,
                algorithm: k.algorithm,
                bits: k.bits,
                fingerprint: k.fingerprint,
                added: when(k.created_at),
            })
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                created: when(t.created_at),
                last_used: t.last_used_at.map(when),
            })
            .collect(),
        new_token,
    }))
}
