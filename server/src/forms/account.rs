//! The forms of `/account`: profile, SSH keys, API tokens, password. Each
//! answers with a redirect back to its section (`in=<section>#<section>`).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use bootler_app::server_fns::account::NEW_TOKEN_COOKIE;
use bootler_domain::accounts::{AccountError, FieldError};
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::state::AppState;

/// Back to `section` of `/account` with these parameters.
fn back<K: AsRef<str>, V: AsRef<str>>(section: &str, params: &[(K, V)]) -> Redirect {
    let mut all = vec![("in", section)];
    all.extend(params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    to(&format!("/account#{section}"), &all)
}

/// Field errors as `err_<prefix><field>` parameters.
fn field_errors(errors: &[FieldError], rename: &[(&str, &str)]) -> Vec<(String, String)> {
    errors
        .iter()
        .map(|e| {
            let field = rename
                .iter()
                .find(|(from, _)| *from == e.field)
                .map(|(_, to)| *to)
                .unwrap_or(e.field);
            (format!("err_{field}"), e.message.clone())
        })
        .collect()
}

fn unreadable(section: &str) -> Redirect {
    back(
        section,
        &[("err", "The form could not be read; please try again.")],
    )
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
}

pub async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ProfileForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return unreadable("profile");
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state
        .accounts
        .set_display_name(&session.user, &form.display_name)
        .await
    {
        Ok(_) => back("profile", &[("notice", "Your name was saved.")]),
        Err(AccountError::Invalid(errors)) => {
            let mut params = vec![("display_name".to_string(), form.display_name.clone())];
            params.extend(field_errors(&errors, &[]));
            back("profile", &params)
        }
        Err(err) => back("profile", &[("err", general_message(err).as_str())]),
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    public_key: String,
}

pub async fn add_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<KeyForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return unreadable("keys");
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state
        .accounts
        .add_ssh_key(
            &session.user,
            Some(&form.name),
            &form.public_key,
            chrono::Utc::now(),
        )
        .await
    {
        Ok(key) => {
            let notice = format!("Key “{}” added ({}).", key.name, key.fingerprint);
            back("keys", &[("notice", notice.as_str())])
        }
        Err(AccountError::Invalid(errors)) => {
            // The typed key goes back unless it is too long for a URL.
            let keep_key = if form.public_key.len() <= 2048 {
                form.public_key.as_str()
            } else {
                ""
            };
            let mut params = vec![
                ("public_key".to_string(), keep_key.to_string()),
                ("key_name".to_string(), form.name.clone()),
            ];
            params.extend(field_errors(&errors, &[("name", "key_name")]));
            back("keys", &params)
        }
        Err(err) => back("keys", &[("err", general_message(err).as_str())]),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Ok(id) = id.parse::<i64>() else {
        return back("keys", &[("err", "There is no such key.")]);
    };
    match state.accounts.delete_ssh_key(&session.user, id).await {
        Ok(true) => back("keys", &[("notice", "The key was removed.")]),
        Ok(false) => back(
            "keys",
            &[("err", "That key was already removed (or is not yours).")],
        ),
        Err(err) => back("keys", &[("err", general_message(err).as_str())]),
    }
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Creates a token; its secret travels to the next rendering of `/account`
/// in a short-lived HttpOnly cookie (never in a URL), which that page shows
/// once and clears.
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return unreadable("tokens").into_response();
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect.into_response(),
    };
    match state
        .accounts
        .create_token(&session.user, &form.name, chrono::Utc::now())
        .await
    {
        Ok((_, secret)) => {
            let mut response = back::<&str, &str>("tokens", &[]).into_response();
            let cookie = format!(
                "{NEW_TOKEN_COOKIE}={secret}; Path=/account; HttpOnly; SameSite=Strict; Max-Age=300{}",
                if crate::session::secure(&state) {
                    "; Secure"
                } else {
                    ""
                }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(AccountError::Invalid(errors)) => {
            let mut params = vec![("token_name".to_string(), form.name.clone())];
            params.extend(field_errors(&errors, &[("name", "token_name")]));
            back("tokens", &params).into_response()
        }
        Err(AccountError::Taken { message, .. }) => back(
            "tokens",
            &[
                ("token_name", form.name.as_str()),
                ("err_token_name", message.as_str()),
            ],
        )
        .into_response(),
        Err(err) => back("tokens", &[("err", general_message(err).as_str())]).into_response(),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Ok(id) = id.parse::<i64>() else {
        return back("tokens", &[("err", "There is no such token.")]);
    };
    match state.accounts.revoke_token(&session.user, id).await {
        Ok(true) => back(
            "tokens",
            &[(
                "notice",
                "The token was revoked; scripts using it now get 401.",
            )],
        ),
        Ok(false) => back(
            "tokens",
            &[("err", "That token was already revoked (or is not yours).")],
        ),
        Err(err) => back("tokens", &[("err", general_message(err).as_str())]),
    }
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ChangePasswordForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return unreadable("password");
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/account").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state
        .accounts
        .change_password(
            &session.user,
            &form.current_password,
            &form.new_password,
            Some(&form.new_password_confirm),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(()) => back("password", &[("notice", "Your password was changed.")]),
        Err(AccountError::Invalid(errors)) => back("password", &field_errors(&errors, &[])),
        Err(err) => back("password", &[("err", general_message(err).as_str())]),
    }
}
