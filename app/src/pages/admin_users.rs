//! `/admin/users`: find accounts, disable and enable them, promote and
//! demote them, approve or delete pending registrations. The filters are
//! links and a GET form; the actions are form posts to
//! `/admin/users/{username}` that redirect back to the same view.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::alert::{Alert, Notice};
use crate::hooks::{encode, list_href, query_param};
use crate::server_fns::admin_users::{GroupView, UserView, UsersPage, admin_users};

const FILTERS: &[(&str, &str)] = &[
    ("", "All"),
    ("pending", "Pending"),
    ("active", "Active"),
    ("disabled", "Disabled"),
    ("admins", "Admins"),
];

/// `/admin/users?q=…&status=…&page=…` without empty values.
fn users_href(search: &str, status: &str, page: i64) -> String {
    list_href("/admin/users", &[("q", search), ("status", status)], page)
}

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let status = move || query.read().get("status").unwrap_or_default();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(1)
    };
    let data = Resource::new(
        move || (search(), status(), page()),
        |(search, status, page)| admin_users(search, status, page),
    );
    view! {
        <Title text="Users" />
        <Suspense fallback=|| view! { <p>"Loading accounts…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(list)) => EitherOf3::A(view! {
                        <Users list search=search() status=status() />
                    }),
                    Ok(None) => EitherOf3::B(view! {
                        <section class="card form-card">
                            <h1>"Users"</h1>
                            <p>
                                "This page is for the lab's administrators. "
                                <a href="/login?next=/admin/users">"Sign in"</a>
                                " with an administrator account."
                            </p>
                        </section>
                    }),
                    Err(_) => EitherOf3::C(view! {
                        <section class="card form-card">
                            <h1>"Users"</h1>
                            <p class="alert alert-error" role="alert">
                                "The accounts could not be loaded right now. Reload the page in a moment."
                            </p>
                        </section>
                    }),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Users(list: UsersPage, search: String, status: String) -> impl IntoView {
    let back = users_href(&search, &status, list.page);
    let filters = FILTERS
        .iter()
        .map(|(value, label)| {
            let current = status == *value;
            let count = (*value == "pending" && list.pending > 0)
                .then(|| view! { <span class="badge">{list.pending}</span> });
            view! {
                <a
                    href=users_href(&search, value, 1)
                    class="filter"
                    class:active=current
                    aria-current=current.then_some("page")
                >
                    {*label}
                    {count}
                </a>
            }
        })
        .collect_view();
    let rows = list
        .users
        .iter()
        .map(
            |user| view! { <UserRow user=user.clone() csrf=list.csrf.clone() back=back.clone() default_quota=list.default_quota /> },
        )
        .collect_view();
    let summary = match list.total {
        0 => "No account matches.".to_string(),
        1 => "1 account".to_string(),
        n => format!("{n} accounts"),
    };
    let prev = (list.page > 1).then(|| {
        view! { <a href=users_href(&search, &status, list.page - 1) rel="prev">"← Previous"</a> }
    });
    let next = (list.page < list.pages).then(|| {
        view! { <a href=users_href(&search, &status, list.page + 1) rel="next">"Next →"</a> }
    });
    let empty = list.users.is_empty();
    view! {
        <div class="page-head">
            <h1>"Users"</h1>
            <p class="lead-small">
                "Everyone with an account. Disabled accounts cannot sign in, use the API or the VPN; "
                "pending ones have not confirmed their address yet."
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <section class="card">
            <div class="toolbar">
                <nav class="filters" aria-label="Filter accounts">{filters}</nav>
                <form method="get" action="/admin/users" class="search" role="search">
                    <label for="user-search" class="sr-only">"Search accounts"</label>
                    <input
                        id="user-search"
                        type="search"
                        name="q"
                        value=search.clone()
                        placeholder="Username, name or e-mail"
                    />
                    {(!status.is_empty()).then(|| view! { <input type="hidden" name="status" value=status.clone() /> })}
                    <button type="submit" class="button button-small">"Search"</button>
                </form>
            </div>
            <p class="hint" role="status">{summary}</p>
            {(!empty).then(|| view! {
                <table class="table users">
                    <thead>
                        <tr>
                            <th scope="col">"Username"</th>
                            <th scope="col">"Name"</th>
                            <th scope="col">"E-mail"</th>
                            <th scope="col">"Role"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"Registered"</th>
                            <th scope="col">"Nodes"</th>
                            <th scope="col"><span class="sr-only">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            })}
            <nav class="pager" aria-label="Pages">{prev}{next}</nav>
        </section>
        <Groups
            groups=list.groups.clone()
            editable=list.groups_editable
            error=list.groups_error.clone()
            csrf=list.csrf.clone()
        />
    }
}

/// How many nodes a person holds, and their limit with a form to change it
/// (empty: the default).
#[component]
fn Quota(
    username: String,
    held: i64,
    max_hosts: Option<i32>,
    default_quota: u32,
    csrf: String,
    back: String,
) -> impl IntoView {
    // The limit in force, for the hint; the field shows the own limit.
    let in_force = match max_hosts {
        Some(n) => n.max(0) as u32,
        None => default_quota,
    };
    let title = match (max_hosts, in_force) {
        (None, 0) => "The default: no limit".to_string(),
        (None, n) => format!("The default: at most {n}"),
        (Some(_), 0) => "No limit".to_string(),
        (Some(_), n) => format!("At most {n}"),
    };
    let placeholder = if default_quota == 0 {
        "no limit".to_string()
    } else {
        format!("{default_quota}")
    };
    let id = format!("quota-{username}");
    view! {
        <form method="post" action=format!("/admin/users/{}/quota", encode(&username)) class="inline-form quota">
            <input type="hidden" name="csrf" value=csrf />
            <input type="hidden" name="back" value=back />
            <span class="hint" title=title>{format!("{held} held, limit")}</span>
            <label for=id.clone() class="sr-only">{format!("Node limit of {username}")}</label>
            <input
                id=id
                name="max_hosts"
                type="number"
                min="0"
                max="10000"
                value=max_hosts.map(|n| n.to_string()).unwrap_or_default()
                placeholder=placeholder
            />
            <button type="submit" class="button button-small button-quiet" aria-label=format!("Set the node limit of {username}")>
                "Set"
            </button>
        </form>
    }
}

/// The directory's groups, and (built-in directory) a form to change one.
#[component]
fn Groups(
    groups: Vec<GroupView>,
    editable: bool,
    error: Option<String>,
    csrf: String,
) -> impl IntoView {
    let empty = groups.is_empty();
    let rows = groups
        .into_iter()
        .map(|group| {
            view! {
                <tr>
                    <td><code>{format!("@{}", group.name)}</code></td>
                    <td>{group.members.join(", ")}</td>
                </tr>
            }
        })
        .collect_view();
    let intro = if editable {
        "A pool's access can name a group as @name instead of listing people one by one."
    } else {
        "A pool's access can name a group as @name. These groups are read from LDAP (ldap.groups_dn); change them with the lab's LDAP tools."
    };
    view! {
        <section class="card" id="groups" aria-labelledby="groups-title">
            <h2 id="groups-title">"Groups"</h2>
            <p class="hint">{intro}</p>
            {error.map(|e| view! { <p class="alert alert-error" role="alert">{e}</p> })}
            {if empty {
                Either::Left(view! { <p class="hint">"No groups yet."</p> })
            } else {
                Either::Right(view! {
                    <table class="table groups">
                        <thead>
                            <tr>
                                <th scope="col">"Group"</th>
                                <th scope="col">"Members"</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                })
            }}
            {editable.then(|| view! {
                <form method="post" action="/admin/groups" class="form">
                    <input type="hidden" name="csrf" value=csrf />
                    <div class="field">
                        <label for="group-name">"Group"</label>
                        <input id="group-name" name="name" type="text" required placeholder="hpc" />
                    </div>
                    <div class="field">
                        <label for="group-members">"Members"</label>
                        <input
                            id="group-members"
                            name="members"
                            type="text"
                            placeholder="ana, rui"
                            aria-describedby="group-members-hint"
                        />
                        <p class="hint" id="group-members-hint">
                            "Usernames, separated by commas or spaces. This replaces the group's members; leave it empty to remove the group."
                        </p>
                    </div>
                    <button type="submit" class="button">"Save group"</button>
                </form>
            })}
        </section>
    }
}

#[component]
fn UserRow(user: UserView, csrf: String, back: String, default_quota: u32) -> impl IntoView {
    let action = format!("/admin/users/{}", encode(&user.username));
    let name = user.username.clone();
    let (csrf_quota, back_quota) = (csrf.clone(), back.clone());
    let button = move |value: &'static str, label: &'static str, quiet: bool| {
        view! {
            <button
                type="submit"
                name="action"
                value=value
                class="button button-small"
                class:button-quiet=quiet
                aria-label=format!("{label} {name}")
            >
                {label}
            </button>
        }
    };
    let actions = if user.is_you {
        Either::Left(view! { <span class="hint">"That is you"</span> })
    } else {
        let mut buttons = Vec::new();
        match user.status.as_str() {
            "pending" => {
                buttons.push(button("approve", "Approve", false));
                buttons.push(button("delete", "Delete", true));
            }
            "active" => buttons.push(button("disable", "Disable", true)),
            _ => buttons.push(button("enable", "Enable", false)),
        }
        if user.status != "pending" {
            if user.admin {
                buttons.push(button("demote", "Remove admin", true));
            } else {
                buttons.push(button("promote", "Make admin", true));
            }
        }
        Either::Right(view! {
            <form method="post" action=action class="inline-form row-actions">
                <input type="hidden" name="csrf" value=csrf />
                <input type="hidden" name="back" value=back />
                {buttons}
            </form>
        })
    };
    let status_class = format!("status status-{}", user.status);
    view! {
        <tr>
            <td>
                <code>{user.username.clone()}</code>
                {user.is_you.then(|| view! { <span class="badge">"you"</span> })}
            </td>
            <td>{user.display_name.clone()}</td>
            <td>{user.email.clone()}</td>
            <td>{if user.admin { "admin" } else { "user" }}</td>
            <td><span class=status_class>{user.status.clone()}</span></td>
            <td>{user.registered.clone()}</td>
            <td>
                <Quota
                    username=user.username.clone()
                    held=user.held
                    max_hosts=user.max_hosts
                    default_quota
                    csrf=csrf_quota
                    back=back_quota
                />
            </td>
            <td class="actions">{actions}</td>
        </tr>
    }
}
