//! `POST /admin/users/{username}`: one action on one account from the
//! admin users page, answered with a redirect back to the same view.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use bootler_domain::accounts::{AccountError, Role};
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    /// The admin page's view (`/admin/users?…`) to return to.
    #[serde(default)]
    back: String,
}

/// Only the users page, whatever `back` says.
fn safe_back(back: &str) -> &str {
    if (back.starts_with("/admin/users") || back == "/vpn")
        && !back.contains("//")
        && !back.contains('\\')
    {
        back
    } else {
        "/admin/users"
    }
}

pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/admin/users",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let back = safe_back(&form.back);
    let session = match signed_in(&state, &headers, &form.csrf, back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = &session.user;
    let accounts = &state.accounts;
    let outcome: Result<String, AccountError> = match form.action.as_str() {
        "disable" => accounts
            .set_enabled(actor, &username, false)
            .await
            .map(|u| format!("“{}” is disabled and signed out everywhere.", u.username)),
        "enable" => accounts
            .set_enabled(actor, &username, true)
            .await
            .map(|u| format!("“{}” is enabled again.", u.username)),
        "promote" => accounts
            .set_role(actor, &username, Role::Admin)
            .await
            .map(|u| format!("“{}” is now an administrator.", u.username)),
        "demote" => accounts
            .set_role(actor, &username, Role::User)
            .await
            .map(|u| format!("“{}” is no longer an administrator.", u.username)),
        "approve" => accounts
            .approve(actor, &username, chrono::Utc::now())
            .await
            .map(|u| format!("“{}” is approved and can sign in.", u.username)),
        "delete" => accounts
            .delete_pending(actor, &username)
            .await
            .map(|()| format!("The registration “{username}” was deleted.")),
        "vpn-on" => accounts
            .set_vpn(actor, &username, true)
            .await
            .map(|u| format!("“{}” may connect to the VPN.", u.username)),
        "vpn-off" => accounts
            .set_vpn(actor, &username, false)
            .await
            .map(|u| format!("“{}” may no longer connect to the VPN.", u.username)),
        other => Err(AccountError::Conflict(format!(
            "“{other}” is not an action on accounts."
        ))),
    };
    if outcome.is_ok() && matches!(form.action.as_str(), "disable" | "vpn-off") {
        crate::api::vpn::end_sessions_of(&state, &username).await;
    }
    match outcome {
        Ok(notice) => to(back, &[("notice", notice)]),
        Err(err) => to(back, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Usernames separated by spaces, commas or new lines; empty removes
    /// the group.
    #[serde(default)]
    members: String,
}

/// `POST /admin/groups`: sets a group's members from the users page.
pub async fn set_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Redirect {
    const BACK: &str = "/admin/users#groups";
    let Ok(Form(form)) = form else {
        return to(
            BACK,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, BACK).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let members: Vec<String> = form
        .members
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    match state
        .accounts
        .set_group(&session.user, &form.name, &members)
        .await
    {
        Ok(group) if group.members.is_empty() => to(
            BACK,
            &[("notice", format!("The group “{}” is gone.", group.name))],
        ),
        Ok(group) => to(
            BACK,
            &[(
                "notice",
                format!(
                    "The group “{}” has {} member{}; pools name it as @{}.",
                    group.name,
                    group.members.len(),
                    if group.members.len() == 1 { "" } else { "s" },
                    group.name
                ),
            )],
        ),
        Err(err) => to(BACK, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    csrf: String,
    /// Empty: the default.
    #[serde(default)]
    max_hosts: String,
    #[serde(default)]
    back: String,
}

/// `POST /admin/users/{username}/quota`: a person's node limit.
pub async fn set_quota(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    form: Result<Form<QuotaForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/admin/users",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let back = safe_back(&form.back);
    let session = match signed_in(&state, &headers, &form.csrf, back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let max_hosts = match form.max_hosts.trim() {
        "" => None,
        text => match text.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return to(
                    back,
                    &[(
                        "err",
                        format!(
                            "“{}” is not a number of nodes: give a whole number from 0 (no limit), or leave it empty for the default.",
                            text.chars().take(20).collect::<String>()
                        ),
                    )],
                );
            }
        },
    };
    let actor = crate::api::hosts::actor(&session.user);
    match state.hosts.set_quota(&actor, &username, max_hosts).await {
        Ok(quota) => {
            let limit = match quota.max_hosts {
                None => "the default".to_string(),
                Some(0) => "no limit".to_string(),
                Some(n) => format!("at most {n} node{}", if n == 1 { "" } else { "s" }),
            };
            to(
                back,
                &[(
                    "notice",
                    format!("“{}” may now hold {limit}.", quota.username),
                )],
            )
        }
        Err(err) => to(back, &[("err", general_message(err))]),
    }
}
