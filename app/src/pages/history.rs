//! `/history`: the audit log. Admins see every allocation, lending,
//! release, expiry and mark, and filter by person and action; others see
//! their own steps and their hosts' history. Filters are a GET form.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::alert::{load_error, signed_out};
use crate::hooks::list_href;
use crate::server_fns::audit::{AUDIT_PAGE, AuditRow, AuditView, audit_overview};

const ACTIONS: &[(&str, &str)] = &[
    ("", "Any action"),
    ("allocate", "Got a node"),
    ("lend", "Lent"),
    ("give", "Gave (admin)"),
    ("release", "Released"),
    ("force_release", "Taken back (admin)"),
    ("expire", "Lease ended"),
    ("extend", "Extended"),
    ("mark", "Marked"),
    ("unmark", "Unmarked"),
    ("power", "Power"),
];

fn action_label(action: &str) -> &'static str {
    ACTIONS
        .iter()
        .find(|(value, _)| *value == action)
        .map(|(_, label)| *label)
        .unwrap_or("other")
}

fn history_href(actor: &str, action: &str, page: i64) -> String {
    list_href("/history", &[("actor", actor), ("action", action)], page)
}

#[component]
pub fn HistoryPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &'static str| query.read().get(key).unwrap_or_default();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(1)
    };
    let data = Resource::new(
        move || (param("actor"), param("action"), page()),
        |(actor, action, page)| audit_overview(actor, action, page),
    );
    view! {
        <Title text="History" />
        <Transition fallback=|| view! { <p>"Loading the history…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! {
                        <History view actor=param("actor") action=param("action") page=page() />
                    }),
                    Ok(None) => EitherOf3::B(signed_out("History", "see the history of your nodes", "/history".into())),
                    Err(_) => EitherOf3::C(load_error("History")),
                }
            })}
        </Transition>
    }
}

#[component]
fn History(view: AuditView, actor: String, action: String, page: i64) -> impl IntoView {
    let options = ACTIONS
        .iter()
        .map(|(value, label)| {
            view! { <option value=*value selected=action == *value>{*label}</option> }
        })
        .collect_view();
    let rows = view
        .entries
        .iter()
        .map(|entry| view! { <Row entry=entry.clone() /> })
        .collect_view();
    let pages = (view.total + AUDIT_PAGE - 1) / AUDIT_PAGE;
    let pager = (pages > 1).then(|| {
        let prev = (page > 1).then(|| {
            view! { <a href=history_href(&actor, &action, page - 1) rel="prev">"← Newer"</a> }
        });
        let next = (page < pages).then(|| {
            view! { <a href=history_href(&actor, &action, page + 1) rel="next">"Older →"</a> }
        });
        view! { <nav class="pager" aria-label="Pages">{prev} <span>{format!("Page {page} of {pages}")}</span> {next}</nav> }
    });
    let lead = if view.admin {
        "Who got, lent, released, extended and marked which node, when and from where; leases that ended by themselves show “bootler”."
    } else {
        "What you did with nodes, what others did that concerned you, and the history of the nodes you hold."
    };
    let person_filter = view.admin.then(|| {
        view! {
            <div class="field">
                <label for="history-actor">"Person"</label>
                <input id="history-actor" name="actor" value=actor.clone() placeholder="username" />
            </div>
        }
    });
    view! {
        <div class="page-head">
            <h1>"History"</h1>
            <p class="lead-small">{lead}</p>
        </div>
        <section class="card" aria-labelledby="history-title">
            <h2 id="history-title">{format!("Entries ({})", view.total)}</h2>
            <form method="get" action="/history" class="form form-row filter-form">
                {person_filter}
                <div class="field">
                    <label for="history-action">"Action"</label>
                    <select id="history-action" name="action">{options}</select>
                </div>
                <button type="submit" class="button button-quiet">"Filter"</button>
            </form>
            {if view.entries.is_empty() {
                Either::Left(view! { <p class="empty">"Nothing yet."</p> })
            } else {
                Either::Right(view! {
                    <table class="table history">
                        <thead>
                            <tr>
                                <th scope="col">"When"</th>
                                <th scope="col">"Who"</th>
                                <th scope="col">"What"</th>
                                <th scope="col">"Node"</th>
                                <th scope="col">"Detail"</th>
                                <th scope="col">"From"</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                })
            }}
            {pager}
        </section>
    }
}

#[component]
fn Row(entry: AuditRow) -> impl IntoView {
    view! {
        <tr data-action=entry.action.clone()>
            <td>{entry.at.clone()}</td>
            <td>{entry.actor.clone()}</td>
            <td><span class="status">{action_label(&entry.action)}</span></td>
            <td>{match entry.host_id {
                Some(id) => Either::Left(view! { <a href=format!("/hosts/{id}")>{entry.host_name.clone()}</a> }),
                None => Either::Right(entry.host_name.clone()),
            }}</td>
            <td>{entry.detail.clone()}</td>
            <td class="mono">{entry.source_ip.clone().unwrap_or_default()}</td>
        </tr>
    }
}
