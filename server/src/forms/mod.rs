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

use bootler_domain::accounts::{AccountError, FieldError, Registration};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

mod account;
mod admin;
mod hosts;
mod jobs;
mod templates;
mod vms;
mod vpn;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/confirm", post(confirm))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/forgot", post(forgot))
        .route("/register/resend", post(resend))
        .route("/reset", post(reset))
        .route("/account/password", post(account::change_password))
        .route("/account/profile", post(account::profile))
        .route("/account/keys", post(account::add_key))
        .route("/account/keys/{id}/delete", post(account::delete_key))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/admin/users/{username}", post(admin::act))
        .route("/admin/groups", post(admin::set_group))
        .route("/admin/users/{username}/quota", post(admin::set_quota))
        .route("/jobs/diagnostic", post(jobs::diagnostic))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .merge(hosts::router())
        .merge(templates::router())
        .merge(vms::router())
        .merge(vpn::router())
        .layer(axum::middleware::from_fn_with_state(state, same_origin))
}

/// `path?k=v&…`, URL-encoded; empty values are left out.
fn to<K: AsRef<str>, V: AsRef<str>>(path: &str, params: &[(K, V)]) -> Redirect {
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    // `path#fragment`: the query goes before the fragment.
    let (path, fragment) = match path.split_once('#') {
        Some((path, fragment)) => (path, format!("#{fragment}")),
        None => (path, String::new()),
    };
    let joiner = if path.contains('?') { '&' } else { '?' };
    if query.is_empty() {
        Redirect::to(&format!("{path}{fragment}"))
    } else {
        Redirect::to(&format!("{path}{joiner}{query}{fragment}"))
    }
}

/// `err_<field>=<message>` for each invalid field.
fn field_params(errors: Vec<FieldError>) -> Vec<(String, String)> {
    errors
        .into_iter()
        .map(|e| (format!("err_{}", e.field), e.message))
        .collect()
}

/// A sentence for errors that do not belong to one field (a bug is never
/// described, only admitted).
fn general_message(err: impl Into<ApiError>) -> String {
    match err.into() {
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
    let keep = |mut errors: Vec<(String, String)>| {
        let mut params = vec![
            ("username".to_string(), form.username.clone()),
            ("display_name".to_string(), form.display_name.clone()),
            ("email".to_string(), form.email.clone()),
        ];
        params.append(&mut errors);
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
        Err(AccountError::Invalid(errors)) => keep(field_params(errors)),
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
    let back = token_path("/confirm", &token);
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

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    login: String,
}

/// Always the same answer, whether the account exists or not.
async fn forgot(
    State(state): State<AppState>,
    form: Result<Form<ForgotForm>, FormRejection>,
) -> Redirect {
    let login = form.map(|Form(f)| f.login).unwrap_or_default();
    if login.trim().is_empty() {
        return to(
            "/forgot",
            &[("err", "Enter your username or e-mail address.")],
        );
    }
    if let Err(err) = state
        .accounts
        .request_reset(&login, chrono::Utc::now())
        .await
    {
        return to(
            "/forgot",
            &[
                ("login", login.as_str()),
                ("err", general_message(err).as_str()),
            ],
        );
    }
    to("/forgot", &[("sent", "1")])
}

#[derive(Deserialize)]
struct ResendForm {
    #[serde(default)]
    email: String,
}

/// Always the same answer, whether a pending account has this address or not.
async fn resend(
    State(state): State<AppState>,
    form: Result<Form<ResendForm>, FormRejection>,
) -> Redirect {
    let email = form.map(|Form(f)| f.email).unwrap_or_default();
    let back = |extra: (&str, &str)| to("/register/sent", &[("email", email.as_str()), extra]);
    match state
        .accounts
        .resend_confirmation(&email, chrono::Utc::now())
        .await
    {
        Ok(()) => back(("resent", "1")),
        Err(err) => back(("err", general_message(err).as_str())),
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn reset(
    State(state): State<AppState>,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/forgot",
            &[("err", "The form could not be read; ask for a new link.")],
        );
    };
    let back = token_path("/reset", &form.token);
    match state
        .accounts
        .reset_password(
            &form.token,
            &form.new_password,
            Some(&form.new_password_confirm),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(user) => to(
            "/login",
            &[
                ("login", user.username.as_str()),
                (
                    "notice",
                    "Your password was changed: sign in with the new one.",
                ),
            ],
        ),
        Err(AccountError::Invalid(errors)) => to(&back, &field_params(errors)),
        Err(err) => to(&back, &[("err", general_message(err).as_str())]),
    }
}

/// The signed-in session behind a form post, its CSRF token checked; or the
/// redirect to answer instead (to sign in, or back with "stale form").
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    back: &str,
) -> Result<bootler_domain::accounts::Session, Redirect> {
    let now = chrono::Utc::now();
    let session = match crate::session::token(headers) {
        Some(token) => state.accounts.session(&token, now).await.ok().flatten(),
        None => None,
    };
    let Some(session) = session else {
        return Err(to(
            "/login",
            &[
                ("next", back),
                ("err", "Your session has ended; sign in again."),
            ],
        ));
    };
    if csrf != session.csrf_token {
        return Err(to(
            back,
            &[("err", "This form is stale; reload the page and try again.")],
        ));
    }
    Ok(session)
}

/// `/confirm/<token>` or `/reset/<token>` for a well-formed token, else a
/// path that shows "not valid".
fn token_path(prefix: &str, token: &str) -> String {
    let safe = !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if safe {
        format!("{prefix}/{token}")
    } else {
        format!("{prefix}/invalid")
    }
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
