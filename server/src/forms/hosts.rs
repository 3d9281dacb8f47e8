//! The forms of `/hosts`: boot options, mark, unmark, and (admins) pools.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use bootler_domain::hosts::{HostChange, TemplateChoice};
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::api::hosts::actor;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hosts/{id}/options", post(options))
        .route("/hosts/{id}/mark", post(mark))
        .route("/hosts/{id}/unmark", post(unmark))
        .route("/pools", post(create_pool))
}

/// Typed variables go back to the form when they fit in a URL.
const KEEP_VARS: usize = 4096;

#[derive(Deserialize)]
pub struct OptionsForm {
    #[serde(default)]
    csrf: String,
    name: Option<String>,
    interface: Option<String>,
    system: Option<String>,
    unattended: Option<String>,
    pool: Option<String>,
    vars: Option<String>,
    /// Comma- or space-separated (admins).
    macs: Option<String>,
}

/// A template select's value: "" is none.
fn choice(value: Option<String>) -> Result<Option<Option<TemplateChoice>>, String> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(text) => text
            .parse::<i64>()
            .map(|id| Some(Some(TemplateChoice::Id(id))))
            .map_err(|_| "Choose a template from the list.".to_string()),
    }
}

pub async fn options(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<OptionsForm>, FormRejection>,
) -> Redirect {
    let Ok(host) = id.parse::<i64>() else {
        return to("/hosts", &[("err", "There is no such host.")]);
    };
    let back = format!("/hosts/{host}");
    let Ok(Form(form)) = form else {
        return to(
            &back,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let typed = form.vars.clone().unwrap_or_default();
    let fail = |message: String| {
        let mut params = vec![("err".to_string(), message)];
        if typed.len() <= KEEP_VARS {
            params.push(("vars".into(), typed.clone()));
        }
        to(&format!("{back}#options-title"), &params)
    };
    let vars = match form.vars.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(serde_json::json!({})),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => Some(value),
            Err(err) => {
                return fail(format!(
                    "The variables are not valid JSON (line {}, column {}); nothing was saved.",
                    err.line(),
                    err.column()
                ));
            }
        },
    };
    let (system, unattended) = match (choice(form.system), choice(form.unattended)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(message), _) | (_, Err(message)) => return fail(message),
    };
    let actor = actor(&session.user);
    let (pool, macs) = if actor.admin {
        (
            form.pool
                .map(|p| Some(p.trim().to_string()).filter(|p| !p.is_empty())),
            form.macs.map(|text| {
                text.split([',', ' ', '\n', '\r', '\t'])
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            }),
        )
    } else {
        (None, None)
    };
    let result = state
        .hosts
        .update(
            host,
            HostChange {
                name: form.name,
                interface: form.interface,
                vars,
                pool,
                system,
                unattended,
                macs,
            },
            &actor,
            chrono::Utc::now(),
        )
        .await;
    match result {
        Ok(host) => to(
            &back,
            &[(
                "notice",
                format!("Saved the boot options of {}.", host.name),
            )],
        ),
        Err(err) => fail(general_message(err)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Clone, Copy)]
enum Action {
    Mark,
    Unmark,
}

pub async fn mark(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, id, form, Action::Mark).await
}

pub async fn unmark(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, id, form, Action::Unmark).await
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
    action: Action,
) -> Redirect {
    let Ok(host) = id.parse::<i64>() else {
        return to("/hosts", &[("err", "There is no such host.")]);
    };
    let back = format!("/hosts/{host}");
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    let now = chrono::Utc::now();
    let result = match action {
        Action::Mark => state.hosts.mark(host, &actor, now).await.map(|h| {
            format!(
                "{} is marked: it installs on its next network boot.",
                h.name
            )
        }),
        Action::Unmark => state
            .hosts
            .unmark(host, &actor, now)
            .await
            .map(|h| format!("{} is no longer marked; it boots from its disk.", h.name)),
    };
    match result {
        Ok(notice) => to(&back, &[("notice", notice)]),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_pool(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PoolForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/hosts",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/hosts").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state
        .hosts
        .create_pool(
            &actor(&session.user),
            &form.name,
            &form.description,
            chrono::Utc::now(),
        )
        .await
    {
        Ok(pool) => to(
            "/hosts#pools-title",
            &[("notice", format!("Created the pool {}.", pool.name))],
        ),
        Err(err) => to("/hosts#pools-title", &[("err", general_message(err))]),
    }
}
