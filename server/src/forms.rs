//! HTML form posts from the pages. Each handler calls one domain function
//! and answers with a redirect (303): to the next page on success, back to
//! the form with the errors and the typed values (never passwords) in the
//! query string on failure. Works without JavaScript.

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use std::net::SocketAddr;

use bootler_domain::accounts::{AccountError, Registration};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/confirm", post(confirm))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(state, same_origin))
}

/// `path?k=v&…`, URL-encoded.
fn to(path: &str, params: &[(&str, &str)]) -> Redirect {
    let params: Vec<_> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    if query.is_empty() {
        Redirect::to(path)
    } else {
        Redirect::to(&format!("{path}?{query}"))
    }
}

/// A sentence for errors that do not belong to one field.
fn general_message(err: AccountError) -> String {
    match ApiError::from(err) {
        ApiError::Internal(_) => {
            "Something went wrong on our side; nothing was changed. Please try again.".into()
        }
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn register(
    State(state): State<AppState>,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/register",
            &[(
                "err",
                "The form could not be read; please fill it in again.",
            )],
        );
    };
    let keep = |errors: Vec<(String, String)>| {
        let mut params: Vec<(&str, &str)> = vec![
            ("username", form.username.as_str()),
            ("display_name", form.display_name.as_str()),
            ("email", form.email.as_str()),
        ];
        let owned: Vec<(String, String)> = errors;
        let borrowed: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.extend(borrowed);
        to("/register", &params)
    };
    let result = state
        .accounts
        .register(
            Registration {
                username: form.username.clone(),
                display_name: form.display_name.clone(),
                email: form.email.clone(),
                password: form.password.clone(),
                password_confirm: Some(form.password_confirm.clone()),
            },
            chrono::Utc::now(),
        )
        .await;
    match result {
        Ok(user) => to("/register/sent", &[("email", user.email.as_str())]),
        Err(AccountError::Invalid(errors)) => keep(
            errors
                .into_iter()
                .map(|e| (format!("err_{}", e.field), e.message))
                .collect(),
        ),
        Err(AccountError::Taken { field, message }) => {
            keep(vec![(format!("err_{field}"), message)])
        }
        Err(err) => keep(vec![("err".into(), general_message(err))]),
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    token: String,
}

async fn confirm(
    State(state): State<AppState>,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Redirect {
    let token = form.map(|Form(f)| f.token).unwrap_or_default();
    // Tokens are URL-safe base64; anything else cannot be one.
    let safe = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let back = if safe && !token.is_empty() {
        format!("/confirm/{token}")
    } else {
        "/confirm/invalid".to_string()
    };
    match state.accounts.confirm(&token, chrono::Utc::now()).await {
        Ok(user) => to("/confirmed", &[("username", user.username.as_str())]),
        Err(err) => to(&back, &[("err", general_message(err).as_str())]),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Only paths on this site: `/hosts`, never `//evil.example` or `https://…`.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return to(
            "/login",
            &[("err", "The form could not be read; please sign in again.")],
        )
        .into_response();
    };
    let next = safe_next(&form.next);
    let address = peer.ip().to_string();
    match state
        .accounts
        .sign_in(
            &form.login,
            &form.password,
            Some(&address),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(session) => {
            let mut response = Redirect::to(next).into_response();
            if let Some(cookie) = crate::session::set_cookie(
                &session.token,
                session.expires_at,
                crate::session::secure(&state),
            ) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => {
            let message = match err {
                AccountError::WrongCredentials
                | AccountError::RateLimited { .. }
                | AccountError::NotActive(_) => err.to_string(),
                other => general_message(other),
            };
            to(
                "/login",
                &[
                    ("login", form.login.as_str()),
                    ("next", form.next.as_str()),
                    ("err", message.as_str()),
                ],
            )
            .into_response()
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let secure = crate::session::secure(&state);
    let mut response = Redirect::to("/").into_response();
    if let Some(token) = crate::session::token(&headers) {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        match state.accounts.session(&token, chrono::Utc::now()).await {
            Ok(Some(session)) if session.csrf_token != csrf => {
                return (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "This sign-out form is stale; reload the page and sign out again.",
                )
                    .into_response();
            }
            _ => {
                if let Err(err) = state.accounts.sign_out(&token).await {
                    tracing::warn!(error = %err, "sign-out failed");
                }
            }
        }
    }
    response
        .headers_mut()
        .insert(header::SET_COOKIE, crate::session::clear_cookie(secure));
    response
}

/// Refuses form posts from other sites (CSRF): a browser says where a post
/// comes from in `Sec-Fetch-Site` and `Origin`; both must point here.
async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_cross_site(request.headers(), &state.config.base_url()) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This form was sent from another site; Bootler refused it. Open the page on Bootler itself and send it again.",
        )
            .into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap, base_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // No Origin: not a browser form post from another site.
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    origin_host != host && origin.trim_end_matches('/') != base_url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/hosts?x=1"), "/hosts?x=1");
        for bad in [
            "",
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "hosts",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let base = "https://bootler.lab";
        let cases = [
            (vec![], false),
            (vec![("sec-fetch-site", "same-origin")], false),
            (vec![("sec-fetch-site", "cross-site")], true),
            (vec![("sec-fetch-site", "same-site")], true),
            (
                vec![("origin", "https://bootler.lab"), ("host", "internal:3000")],
                false,
            ),
            (
                vec![
                    ("origin", "http://127.0.0.1:3000"),
                    ("host", "127.0.0.1:3000"),
                ],
                false,
            ),
            (
                vec![("origin", "https://evil.example"), ("host", "bootler.lab")],
                true,
            ),
            (vec![("origin", "null"), ("host", "bootler.lab")], true),
        ];
        for (pairs, expected) in cases {
            assert_eq!(is_cross_site(&headers(&pairs), base), expected, "{pairs:?}");
        }
    }
}
