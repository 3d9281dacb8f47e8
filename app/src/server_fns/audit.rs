//! The history page's data: the audit log (everything for admins; for
//! others their own actions and their hosts' history).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub host_id: Option<i64>,
    pub host_name: String,
    pub subject: Option<String>,
    pub detail: String,
    pub source_ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub entries: Vec<AuditRow>,
    pub total: i64,
    pub admin: bool,
}

/// Entries per page.
pub const AUDIT_PAGE: i64 = 50;

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "audit_overview")]
pub async fn audit_overview(
    actor: String,
    action: String,
    page: i64,
) -> Result<Option<AuditView>, ServerFnError> {
    use super::account::when;
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::hosts::{Actor, AuditFilter, Hosts};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let hosts =
        use_context::<Hosts>().ok_or_else(|| ServerFnError::new("hosts service missing"))?;
    let user = session.user;
    let admin = user.role == Role::Admin;
    let (entries, total) = hosts
        .audit_log(
            &Actor {
                user_id: user.id,
                username: user.username.clone(),
                admin,
            },
            &AuditFilter {
                actor: Some(actor.trim().to_string()).filter(|a| !a.is_empty()),
                host: None,
                action: Some(action.trim().to_string()).filter(|a| !a.is_empty()),
                limit: AUDIT_PAGE,
                offset: (page.max(1) - 1) * AUDIT_PAGE,
            },
        )
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(Some(AuditView {
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                id: e.id,
                at: when(e.at),
                actor: e.actor,
                action: e.action,
                host_id: e.host_id,
                host_name: e.host_name,
                subject: e.subject,
                detail: e.detail,
                source_ip: e.source_ip,
            })
            .collect(),
        total,
        admin,
    }))
}
