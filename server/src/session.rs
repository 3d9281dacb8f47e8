//! The session cookie, and who is calling: a signed-in browser (cookie) or,
//! for the API, the same cookie.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use bootler_domain::accounts::{Session, User};
use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::state::AppState;

pub use bootler_domain::accounts::COOKIE;

/// The session token from the `Cookie` header.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(bootler_domain::accounts::token_from_cookies)
        .map(str::to_string)
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, Secure over HTTPS.
pub fn set_cookie(token: &str, expires: DateTime<Utc>, secure: bool) -> Option<HeaderValue> {
    let max_age = (expires - Utc::now()).num_seconds().max(0);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "bootler_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure",
        )
    } else {
        HeaderValue::from_static("bootler_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    }
}

/// Whether cookies must be `Secure`: Bootler is served over HTTPS.
pub fn secure(state: &AppState) -> bool {
    state.config.base_url().starts_with("https://")
}

/// The authenticated caller of an API request, or 401: a bearer token
/// (`Authorization: Bearer bt_…`), HTTP Basic (username and password, with
/// the sign-in rate limits), or the session cookie of a signed-in browser.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let now = Utc::now();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        if let Some(value) = authorization {
            if let Some(secret) = strip_scheme(value, "Bearer") {
                return match state.accounts.token_user(secret.trim(), now).await? {
                    Some(user) => Ok(Caller(user)),
                    None => Err(ApiError::Unauthorized(
                        "This API token is not valid (revoked, mistyped, or its account is disabled).".into(),
                    )),
                };
            }
            if let Some(encoded) = strip_scheme(value, "Basic") {
                let (login, password) = decode_basic(encoded.trim()).ok_or_else(|| {
                    ApiError::BadRequest(
                        "The Basic credentials are not valid base64 of `username:password`.".into(),
                    )
                })?;
                let address = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(peer)| peer.ip().to_string());
                let user = state
                    .accounts
                    .authenticate_limited(&login, &password, address.as_deref(), now)
                    .await?;
                return Ok(Caller(user));
            }
            return Err(ApiError::Unauthorized(
                "Use `Authorization: Bearer <token>` or HTTP Basic.".into(),
            ));
        }
        let Some(token) = token(&parts.headers) else {
            return Err(ApiError::Unauthorized(
                "Sign in first: send an API token (`Authorization: Bearer …`) or the session cookie.".into(),
            ));
        };
        match state.accounts.session(&token, now).await? {
            Some(Session { user, .. }) => Ok(Caller(user)),
            None => Err(ApiError::Unauthorized(
                "Your session has ended; sign in again.".into(),
            )),
        }
    }
}

/// `Bearer xyz` → `xyz` (the scheme is case-insensitive).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn decode_basic(encoded: &str) -> Option<(String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; bootler_session=abc_-9; b=2".parse().unwrap(),
        );
        assert_eq!(token(&headers).as_deref(), Some("abc_-9"));
        headers.insert(header::COOKIE, "bootler_session=".parse().unwrap());
        assert_eq!(token(&headers), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn authorization_schemes() {
        assert_eq!(strip_scheme("Bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Basic abc", "Bearer"), None);
        assert_eq!(strip_scheme("Bearer", "Bearer"), None);
        assert_eq!(
            decode_basic("YW5hOmNvcnJlY3QgaG9yc2U6YmF0dGVyeQ=="),
            Some(("ana".into(), "correct horse:battery".into()))
        );
        assert_eq!(decode_basic("%%%"), None);
    }

    #[test]
    fn cookies_are_http_only_and_lax() {
        let value = set_cookie("t", Utc::now() + chrono::Duration::days(1), true).unwrap();
        let text = value.to_str().unwrap();
        assert!(text.starts_with("bootler_session=t; Path=/; Max-Age="));
        assert!(text.contains("HttpOnly"));
        assert!(text.contains("SameSite=Lax"));
        assert!(text.ends_with("; Secure"));
        let plain = set_cookie("t", Utc::now(), false).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}
