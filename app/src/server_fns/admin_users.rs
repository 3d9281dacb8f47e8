//! The admin users page: a page of accounts matching a search.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Accounts per page.
pub const PAGE_SIZE: i64 = 25;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub admin: bool,
    /// `pending`, `active` or `disabled`.
    pub status: String,
    pub registered: String,
    pub is_you: bool,
    /// Nodes held now.
    pub held: i64,
    /// The account's own node limit (`None`: the default; 0: no limit).
    pub max_hosts: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<UserView>,
    pub total: i64,
    /// From 1.
    pub page: i64,
    pub pages: i64,
    /// Pending registrations, whatever the filter (for the tab's badge).
    pub pending: i64,
    /// Goes back in the forms.
    pub csrf: String,
    /// `leases.max_hosts_per_user` (0: no limit).
    pub default_quota: u32,
    /// The directory's groups (pool access names them as `@name`).
    pub groups: Vec<GroupView>,
    /// Groups are kept here (built-in directory), not in LDAP.
    pub groups_editable: bool,
    /// Why the groups could not be read, if they could not.
    pub groups_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub members: Vec<String>,
}

/// `None` unless an admin is signed in.
#[server(prefix = "/sfn", endpoint = "admin_users")]
pub async fn admin_users(
    search: String,
    status: String,
    page: i64,
) -> Result<Option<UsersPage>, ServerFnError> {
    use super::account::when;
    use super::current_user::{accounts, request_session};
    use bootler_domain::accounts::{Role, Status, UserQuery};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let actor = session.user;
    let csrf = session.csrf_token;
    if actor.role != Role::Admin {
        return Ok(None);
    }
    let accounts = accounts()?;
    let err = |e: bootler_domain::accounts::AccountError| ServerFnError::new(e.to_string());
    let (status, role) = match status.as_str() {
        "admins" => (None, Some(Role::Admin)),
        other => (Status::parse(other), None),
    };
    let page = page.max(1);
    let list = accounts
        .list_users(
            &actor,
            &UserQuery {
                search,
                status,
                role,
                limit: PAGE_SIZE,
                offset: (page - 1) * PAGE_SIZE,
            },
        )
        .await
        .map_err(err)?;
    let pending = accounts
        .list_users(
            &actor,
            &UserQuery {
                status: Some(Status::Pending),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(err)?
        .total;
    let (groups, groups_error) = match accounts.groups().await {
        Ok(groups) => (groups, None),
        Err(e) => (
            Vec::new(),
            Some(format!("The groups could not be read: {e}")),
        ),
    };
    let hosts = use_context::<bootler_domain::hosts::Hosts>()
        .ok_or_else(|| ServerFnError::new("hosts service missing"))?;
    let host_actor = bootler_domain::hosts::Actor {
        user_id: actor.id,
        username: actor.username.clone(),
        admin: true,
    };
    let mut users = Vec::with_capacity(list.users.len());
    for u in list.users {
        let quota = hosts
            .quota(&host_actor, &u.username)
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?;
        users.push(UserView {
            is_you: u.id == actor.id,
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            admin: u.role == Role::Admin,
            status: u.status.as_str().to_string(),
            registered: when(u.created_at),
            held: quota.held,
            max_hosts: quota.max_hosts,
        });
    }
    Ok(Some(UsersPage {
        default_quota: hosts.settings().max_hosts_per_user,
        groups: groups
            .into_iter()
            .map(|g| GroupView {
                name: g.name,
                members: g.members,
            })
            .collect(),
        groups_editable: accounts.groups_editable(),
        groups_error,
        users,
        pages: (list.total + PAGE_SIZE - 1) / PAGE_SIZE,
        total: list.total,
        page,
        pending,
        csrf,
    }))
}
