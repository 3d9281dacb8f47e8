//! The forms of `/templates`: create, change, copy, delete. Each answers
//! with a redirect: to the template on success, back to the form with the
//! message and the typed values (`name`, `description`, `body` when short
//! enough for a URL) on failure.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use bootler_app::server_fns::templates::KEEP_BODY;
use bootler_domain::accounts::{Role, User};
use bootler_domain::templates::{Actor, Draft, Kind, Template, TemplatesError};
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", post(create))
        .route("/templates/{id}", post(update))
        .route("/templates/{id}/copy", post(copy))
        .route("/templates/{id}/delete", post(delete))
}

fn actor(user: &User) -> Actor {
    Actor {
        user_id: user.id,
        admin: user.role == Role::Admin,
    }
}

/// A template id from the path; anything else is a template nobody sees.
fn template_id(text: &str) -> Result<i64, Redirect> {
    text.trim().parse::<i64>().map_err(|_| {
        to(
            "/templates",
            &[(
                "err",
                format!("There is no template {} you can see.", text.trim()),
            )],
        )
    })
}

/// Browsers send a textarea's lines with CRLF; templates keep the LF they
/// were written with (iPXE scripts, preseeds and kickstarts are Unix text).
fn unix_lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The sentence for a refusal (a bug is never described, only admitted).
fn refusal(err: TemplatesError) -> String {
    match err {
        TemplatesError::NotFound(m)
        | TemplatesError::Forbidden(m)
        | TemplatesError::Conflict(m)
        | TemplatesError::Invalid(m) => m,
        err @ TemplatesError::Database(_) => general_message(err),
    }
}

/// The typed values for the query string: the body only when it is short
/// enough for a URL; otherwise `message` says it was not kept.
fn typed(
    name: &str,
    description: &str,
    body: &str,
    message: String,
) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("typed", "1".to_string()),
        ("name", name.to_string()),
        ("description", description.to_string()),
    ];
    if body.len() <= KEEP_BODY {
        params.push(("body", body.to_string()));
        params.push(("err", message));
    } else {
        params.push(("body_lost", "1".to_string()));
        params.push((
            "err",
            format!(
                "{message} Your text is too long to send back to this form: it was not kept. Paste it again."
            ),
        ));
    }
    params
}

#[derive(Deserialize)]
pub struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    body: String,
    /// Admins: a template of their own instead of a global one.
    private: Option<String>,
}

/// `POST /templates`: a new template.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<NewForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/templates#new",
            &[
                ("in", "new"),
                ("err", "The form could not be read; please try again."),
            ],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/templates").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let body = unix_lines(&form.body);
    let private = form.private.is_some();
    let back = |message: String| {
        let mut params = vec![
            ("in", "new".to_string()),
            ("kind", form.kind.clone()),
            ("private", if private { "1" } else { "" }.to_string()),
        ];
        params.extend(typed(&form.name, &form.description, &body, message));
        to("/templates#new", &params)
    };
    let Some(kind) = Kind::parse(form.kind.trim()) else {
        return back("Choose the kind of template: system or unattended.".into());
    };
    let draft = Draft {
        name: Some(form.name.trim().to_string()),
        kind: Some(kind),
        description: Some(form.description.trim().to_string()),
        body: Some(body.clone()),
        expected_version: None,
    };
    match state
        .templates
        .create(actor(&session.user), draft, private, chrono::Utc::now())
        .await
    {
        Ok(template) => to(
            &format!("/templates/{}", template.id),
            &[("notice", created_notice(&template))],
        ),
        Err(err) => back(refusal(err)),
    }
}

fn created_notice(template: &Template) -> String {
    let whose = if template.owner.is_some() {
        "your own (private)"
    } else {
        "global: everyone can use it"
    };
    format!(
        "Created the {} template “{}”, {whose}. Preview it for a host below.",
        template.kind.as_str(),
        template.name
    )
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    body: String,
    /// The `updated_at` of the template the editor showed.
    #[serde(default)]
    stamp: String,
}

/// `POST /templates/{id}`: name, description and body; a new body is a new
/// version. Refused if the template changed since the editor was opened.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Redirect {
    let id = match template_id(&id) {
        Ok(id) => id,
        Err(redirect) => return redirect,
    };
    let page = format!("/templates/{id}");
    let Ok(Form(form)) = form else {
        return to(
            &format!("{page}#edit"),
            &[
                ("in", "edit"),
                ("err", "The form could not be read; please try again."),
            ],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, &page).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    let body = unix_lines(&form.body);
    let back = |message: String| {
        let mut params = vec![("in", "edit".to_string())];
        params.extend(typed(&form.name, &form.description, &body, message));
        to(&format!("{page}#edit"), &params)
    };
    let current = match state.templates.get(actor, id).await {
        Ok(current) => current,
        Err(TemplatesError::NotFound(message)) => return to("/templates", &[("err", message)]),
        Err(err) => return back(refusal(err)),
    };
    if current.owner.is_none() && !actor.admin {
        // Said before any "changed meanwhile": saving again would not help.
        return back(format!(
            "“{}” is a global template; only administrators change it. Copy it into a template of your own instead.",
            current.name
        ));
    }
    if current.updated_at.to_rfc3339() != form.stamp {
        let by = state
            .templates
            .versions(actor, id)
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(|v| v.created_by)
            .map(|who| format!(" (the last version is by {who})"))
            .unwrap_or_default();
        return back(format!(
            "Someone changed this template meanwhile{by}; it is now version {}. Your text is in the editor and was not saved: compare it with the version history below, then save again.",
            current.version
        ));
    }
    let draft = Draft {
        name: Some(form.name.trim().to_string()),
        kind: None,
        description: Some(form.description.trim().to_string()),
        body: Some(body.clone()),
        expected_version: None,
    };
    match state
        .templates
        .update(actor, id, draft, chrono::Utc::now())
        .await
    {
        Ok(template) => {
            let notice = if template.version != current.version {
                format!(
                    "Saved “{}” as version {}; the earlier versions are kept below.",
                    template.name, template.version
                )
            } else {
                format!(
                    "Saved “{}”; the body did not change, so it is still version {}.",
                    template.name, template.version
                )
            };
            to(&page, &[("notice", notice)])
        }
        Err(err) => back(refusal(err)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The longest template name.
const MAX_NAME: usize = 64;

/// `<name>-copy`, `<name>-copy-2`, … cut so they stay within 64 characters.
fn copy_name(name: &str, attempt: usize) -> String {
    let suffix = if attempt <= 1 {
        "-copy".to_string()
    } else {
        format!("-copy-{attempt}")
    };
    // Names are ASCII (the store checks), so bytes are characters.
    let keep = MAX_NAME.saturating_sub(suffix.len()).min(name.len());
    let base = name.get(..keep).unwrap_or(name);
    format!("{base}{suffix}")
}

/// `POST /templates/{id}/copy`: a private copy for the caller.
pub async fn copy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let id = match template_id(&id) {
        Ok(id) => id,
        Err(redirect) => return redirect,
    };
    let page = format!("/templates/{id}");
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, &page).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    let original = match state.templates.get(actor, id).await {
        Ok(template) => template,
        Err(TemplatesError::NotFound(message)) => return to("/templates", &[("err", message)]),
        Err(err) => return to(&page, &[("err", refusal(err))]),
    };
    let now = chrono::Utc::now();
    for attempt in 1..=50 {
        let draft = Draft {
            name: Some(copy_name(&original.name, attempt)),
            kind: Some(original.kind),
            description: Some(original.description.clone()),
            body: Some(original.body.clone()),
            expected_version: None,
        };
        match state.templates.create(actor, draft, true, now).await {
            Ok(copy) => {
                return to(
                    &format!("/templates/{}", copy.id),
                    &[(
                        "notice",
                        format!(
                            "This is your own copy of “{}” (version {}): change it as you like.",
                            original.name, original.version
                        ),
                    )],
                );
            }
            // The name is taken: try the next one.
            Err(TemplatesError::Conflict(_)) => continue,
            Err(err) => return to(&page, &[("err", refusal(err))]),
        }
    }
    to(
        &page,
        &[(
            "err",
            format!(
                "You already have many copies of “{}”; rename or delete some first.",
                original.name
            ),
        )],
    )
}

/// `POST /templates/{id}/delete`: refused while a host uses the template
/// as a boot option.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let id = match template_id(&id) {
        Ok(id) => id,
        Err(redirect) => return redirect,
    };
    let page = format!("/templates/{id}");
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, &page).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    let name = match state.templates.get(actor, id).await {
        Ok(template) => template.name,
        Err(TemplatesError::NotFound(message)) => return to("/templates", &[("err", message)]),
        Err(err) => return to(&page, &[("err", refusal(err))]),
    };
    match state.templates.delete(actor, id).await {
        Ok(()) => to(
            "/templates",
            &[(
                "notice",
                format!("Deleted the template “{name}” and its versions."),
            )],
        ),
        Err(TemplatesError::NotFound(message)) => to("/templates", &[("err", message)]),
        Err(err) => to(
            &format!("{page}#delete"),
            &[("in", "delete".to_string()), ("err", refusal(err))],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_named_within_the_limit() {
        assert_eq!(copy_name("debian-preseed", 1), "debian-preseed-copy");
        assert_eq!(copy_name("debian-preseed", 2), "debian-preseed-copy-2");
        let long = "a".repeat(64);
        assert_eq!(copy_name(&long, 1).len(), 64);
        assert!(copy_name(&long, 12).ends_with("-copy-12"));
        assert_eq!(copy_name(&long, 12).len(), 64);
    }

    #[test]
    fn long_bodies_are_not_sent_back() {
        let short = typed("n", "d", "x", "Bad.".into());
        assert!(short.iter().any(|(k, v)| *k == "body" && v == "x"));
        let long = typed("n", "d", &"x".repeat(KEEP_BODY + 1), "Bad.".into());
        assert!(!long.iter().any(|(k, _)| *k == "body"));
        assert!(
            long.iter()
                .any(|(k, v)| *k == "err" && v.contains("not kept"))
        );
        assert_eq!(unix_lines("a\r\nb\r\n"), "a\nb\n");
    }
}
