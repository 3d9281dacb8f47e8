//! The template pages' data: the list (global templates, the caller's own,
//! and for admins everyone else's), and one template with its versions,
//! the hosts it can be previewed for, and a preview rendered from the
//! saved body.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Typed values go back to a form in the query string up to this size; a
/// longer body is not kept (the error says so).
pub const KEEP_BODY: usize = 4096;

/// How many hosts the preview offers at most.
pub const PREVIEW_HOSTS: i64 = 200;

/// One template in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRow {
    pub id: i64,
    pub name: String,
    /// `system` or `unattended`.
    pub kind: String,
    /// `None`: global.
    pub owner: Option<String>,
    pub description: String,
    pub version: i32,
    pub updated: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatesView {
    pub global: Vec<TemplateRow>,
    /// The caller's private templates.
    pub mine: Vec<TemplateRow>,
    /// Admins: everyone else's private templates.
    pub others: Vec<TemplateRow>,
    pub admin: bool,
    pub csrf: String,
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "templates_overview")]
pub async fn templates_overview() -> Result<Option<TemplatesView>, ServerFnError> {
    use super::current_user::request_session;
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let user = session.user;
    let actor = ssr::actor(&user);
    let list = ssr::templates()?
        .list(actor)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let mut view = TemplatesView {
        global: Vec::new(),
        mine: Vec::new(),
        others: Vec::new(),
        admin: actor.admin,
        csrf: session.csrf_token,
    };
    for template in list {
        let row = ssr::row(&template);
        match &template.owner {
            None => view.global.push(row),
            Some(owner) if *owner == user.username => view.mine.push(row),
            Some(_) => view.others.push(row),
        }
    }
    // Others' templates by owner, then name.
    view.others
        .sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
    Ok(Some(view))
}

/// One template, as the editor shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub owner: Option<String>,
    pub description: String,
    pub version: i32,
    pub body: String,
    pub created: String,
    pub updated: String,
    /// `updated_at` exactly: the editor sends it back, so a save on top
    /// of someone else's change is refused instead of undoing it.
    pub stamp: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: i32,
    pub by: Option<String>,
    pub when: String,
    pub body: String,
}

/// A host the preview can render for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChoice {
    pub id: i64,
    pub name: String,
    pub mac: String,
    pub state: String,
}

/// What a preview came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreviewResult {
    Output(String),
    /// The template did not render: the whole sentence (template, line,
    /// reason), the line number and that line of the body.
    RenderError {
        message: String,
        line: Option<usize>,
        source: Option<String>,
    },
    /// No preview: the host is unknown, or has no MAC address…
    Problem(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub host_id: i64,
    /// The host's name, when it could be read.
    pub host_name: Option<String>,
    pub result: PreviewResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDetail {
    pub template: TemplateView,
    /// Whether the caller may change (and delete) it.
    pub editable: bool,
    pub admin: bool,
    pub csrf: String,
    pub versions: Vec<VersionView>,
    pub hosts: Vec<HostChoice>,
    /// How many hosts the caller may preview with (more than `hosts` when
    /// the list was cut).
    pub hosts_total: i64,
    pub preview: Option<Preview>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplatePageData {
    SignedOut,
    /// No such template, or not the caller's to see: the sentence to show.
    Missing(String),
    Found(Box<TemplateDetail>),
}

/// `/templates/{id}?host=N`: the template, its versions, the hosts to
/// preview with, and the preview for host `N` if asked.
#[server(prefix = "/sfn", endpoint = "template_page")]
pub async fn template_page(id: String, host: String) -> Result<TemplatePageData, ServerFnError> {
    use super::account::when;
    use super::current_user::request_session;
    use bootler_domain::hosts::{HostFilter, Hosts};
    use bootler_domain::templates::TemplatesError;
    let Some(session) = request_session().await? else {
        return Ok(TemplatePageData::SignedOut);
    };
    let missing =
        || TemplatePageData::Missing(format!("There is no template {} you can see.", id.trim()));
    let Ok(template_id) = id.trim().parse::<i64>() else {
        return Ok(missing());
    };
    let user = session.user;
    let actor = ssr::actor(&user);
    let templates = ssr::templates()?;
    let template = match templates.get(actor, template_id).await {
        Ok(template) => template,
        Err(TemplatesError::NotFound(message)) => return Ok(TemplatePageData::Missing(message)),
        Err(err) => return Err(ServerFnError::new(err.to_string())),
    };
    let versions = templates
        .versions(actor, template_id)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let hosts =
        use_context::<Hosts>().ok_or_else(|| ServerFnError::new("hosts service missing"))?;
    let (choices, hosts_total) = hosts
        .list(&HostFilter {
            holder: (!actor.admin).then(|| user.username.clone()),
            limit: PREVIEW_HOSTS,
            ..Default::default()
        })
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let editable = match &template.owner {
        None => actor.admin,
        Some(owner) => actor.admin || *owner == user.username,
    };
    let host = host.trim();
    let preview = if host.is_empty() {
        None
    } else {
        Some(ssr::preview(&hosts, &user, &template, host).await?)
    };
    Ok(TemplatePageData::Found(Box::new(TemplateDetail {
        editable,
        admin: actor.admin,
        csrf: session.csrf_token,
        versions: versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                by: v.created_by,
                when: when(v.created_at),
                body: v.body,
            })
            .collect(),
        hosts: choices
            .into_iter()
            .map(|h| HostChoice {
                id: h.id,
                mac: h.macs.first().cloned().unwrap_or_default(),
                state: h.state.as_str().to_string(),
                name: h.name,
            })
            .collect(),
        hosts_total,
        preview,
        template: TemplateView {
            id: template.id,
            kind: template.kind.as_str().to_string(),
            created: when(template.created_at),
            updated: when(template.updated_at),
            stamp: template.updated_at.to_rfc3339(),
            name: template.name,
            owner: template.owner,
            description: template.description,
            version: template.version,
            body: template.body,
        },
    })))
}

#[cfg(feature = "ssr")]
mod ssr {
    use bootler_domain::accounts::{Role, User};
    use bootler_domain::hosts::{self, Hosts};
    use bootler_domain::templates::{Actor, Template, Templates};
    use leptos::prelude::*;

    use super::{Preview, PreviewResult, TemplateRow};

    pub fn templates() -> Result<Templates, ServerFnError> {
        use_context::<Templates>().ok_or_else(|| ServerFnError::new("templates service missing"))
    }

    pub fn actor(user: &User) -> Actor {
        Actor {
            user_id: user.id,
            admin: user.role == Role::Admin,
        }
    }

    pub fn row(t: &Template) -> TemplateRow {
        TemplateRow {
            id: t.id,
            name: t.name.clone(),
            kind: t.kind.as_str().to_string(),
            owner: t.owner.clone(),
            description: t.description.clone(),
            version: t.version,
            updated: crate::server_fns::account::when(t.updated_at),
        }
    }

    /// Renders the saved body for host `host` (one the caller may control),
    /// with the context a real boot would get, in the sandbox's worker
    /// processes. Bootler's own failures (the database, the sandbox) are
    /// errors; the rest is told in the preview.
    pub async fn preview(
        hosts: &Hosts,
        user: &User,
        template: &Template,
        host: &str,
    ) -> Result<Preview, ServerFnError> {
        let problem = |host_id: i64, host_name: Option<String>, message: String| Preview {
            host_id,
            host_name,
            result: PreviewResult::Problem(message),
        };
        let Ok(host_id) = host.parse::<i64>() else {
            return Ok(problem(0, None, "Choose a host to preview with.".into()));
        };
        let actor = hosts::Actor {
            user_id: user.id,
            username: user.username.clone(),
            admin: user.role == Role::Admin,
        };
        let host = match hosts.controlled(host_id, &actor).await {
            Ok(host) => host,
            Err(err @ hosts::HostsError::Database(_)) => {
                return Err(ServerFnError::new(err.to_string()));
            }
            Err(err) => return Ok(problem(host_id, None, err.to_string())),
        };
        let rendered = match hosts
            .preview(&host, &template.name, &template.body, Some(user.id))
            .await
        {
            Ok(rendered) => rendered,
            Err(err @ (hosts::HostsError::Database(_) | hosts::HostsError::Unavailable(_))) => {
                return Err(ServerFnError::new(err.to_string()));
            }
            Err(err) => return Ok(problem(host_id, Some(host.name), err.to_string())),
        };
        let result = match rendered {
            Ok(output) => PreviewResult::Output(output),
            Err(err) => PreviewResult::RenderError {
                message: err.to_string(),
                line: err.line,
                source: err
                    .line
                    .and_then(|n| template.body.lines().nth(n.checked_sub(1)?))
                    .map(str::to_string),
            },
        };
        Ok(Preview {
            host_id,
            host_name: Some(host.name),
            result,
        })
    }
}
