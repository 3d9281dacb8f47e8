//! `/hosts`: the hosts you hold (admins: every host, and the pools), with
//! filters; `/hosts/{id}`: one host: its install (mark, unmark), its boot
//! options (templates, variables, pool) and its boot timeline, live.
//!
//! Filters are links and a GET form; actions are form posts that redirect
//! back (they work without JavaScript).

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::alert::{Alert, Notice, load_error, signed_out};
use crate::hooks::{encode, query_param};
use crate::live::use_live;
use crate::server_fns::hosts::{
    HostInfo, HostPageData, HostSummary, HostsView, PAGE, TemplateOption, host_detail,
    host_timeline, hosts_overview,
};

const STATES: &[(&str, &str)] = &[
    ("", "All"),
    ("discovered", "Discovered"),
    ("local", "Local disk"),
    ("install_pending", "Marked"),
    ("installing", "Installing"),
    ("installed", "Installed"),
    ("failed", "Failed"),
];

/// A state in words, for badges.
pub fn state_label(state: &str) -> &'static str {
    match state {
        "discovered" => "discovered",
        "local" => "local disk",
        "install_pending" => "marked",
        "installing" => "installing",
        "installed" => "installed",
        "failed" => "failed",
        _ => "unknown",
    }
}

fn hosts_href(state: &str, pool: &str, mac: &str, page: i64) -> String {
    let mut params = Vec::new();
    for (key, value) in [("state", state), ("pool", pool), ("mac", mac)] {
        if !value.is_empty() {
            params.push(format!("{key}={}", encode(value)));
        }
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        "/hosts".into()
    } else {
        format!("/hosts?{}", params.join("&"))
    }
}

#[component]
pub fn HostsPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |key: &'static str| query.read().get(key).unwrap_or_default();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(1)
    };
    let live = use_live();
    let data = Resource::new(
        move || {
            (
                param("state"),
                param("pool"),
                param("mac"),
                page(),
                live.last_host.get().map(|h| (h.host, h.state)),
            )
        },
        |(state, pool, mac, page, _)| hosts_overview(state, pool, mac, page),
    );
    view! {
        <Title text="Hosts" />
        <Transition fallback=|| view! { <p>"Loading hosts…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! {
                        <Hosts view state=param("state") pool=param("pool") mac=param("mac") page=page() />
                    }),
                    Ok(None) => EitherOf3::B(signed_out("Hosts", "see your hosts", "/hosts".into())),
                    Err(_) => EitherOf3::C(load_error("Hosts")),
                }
            })}
        </Transition>
    }
}

#[component]
fn Hosts(view: HostsView, state: String, pool: String, mac: String, page: i64) -> impl IntoView {
    let tabs = STATES
        .iter()
        .map(|(value, label)| {
            let active = state == *value;
            view! {
                <a
                    href=hosts_href(value, &pool, &mac, 1)
                    class="filter"
                    class:active=active
                    aria-current=active.then_some("page")
                >
                    {*label}
                </a>
            }
        })
        .collect_view();
    let pool_options = view
        .pools
        .iter()
        .map(|p| {
            let selected = p.name == pool;
            view! { <option value=p.name.clone() selected=selected>{p.name.clone()}</option> }
        })
        .collect_view();
    let rows = view
        .hosts
        .iter()
        .map(|host| view! { <HostRow host=host.clone() /> })
        .collect_view();
    let pages = (view.total + PAGE - 1) / PAGE;
    let pager = (pages > 1).then(|| {
        let prev = (page > 1).then(|| {
            view! { <a href=hosts_href(&state, &pool, &mac, page - 1) rel="prev">"← Previous"</a> }
        });
        let next = (page < pages).then(|| {
            view! { <a href=hosts_href(&state, &pool, &mac, page + 1) rel="next">"Next →"</a> }
        });
        view! { <nav class="pager" aria-label="Pages">{prev} <span>{format!("Page {page} of {pages}")}</span> {next}</nav> }
    });
    let lead = if view.admin {
        "Every node that PXE-boots against Bootler appears here. Enrol discovered nodes into a pool, choose how they install, and mark them for a clean install on their next boot."
    } else {
        "The nodes you hold. Choose how each installs and mark it for a clean install on its next boot."
    };
    let empty_text = if view.total == 0 && state.is_empty() && pool.is_empty() && mac.is_empty() {
        if view.admin {
            "No hosts yet. A node appears here the first time it network-boots into Bootler (see the network boot guide in docs/network-boot.md)."
        } else {
            "You hold no hosts yet."
        }
    } else {
        "No host matches these filters."
    };
    let pools_card = view.admin.then(|| view! { <Pools view=view.clone() /> });
    view! {
        <div class="page-head">
            <h1>"Hosts"</h1>
            <p class="lead-small">{lead}</p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            <section class="card" aria-labelledby="hosts-title">
                <div class="toolbar">
                    <h2 id="hosts-title">{format!("Hosts ({})", view.total)}</h2>
                    <nav class="filters" aria-label="States">{tabs}</nav>
                </div>
                <form method="get" action="/hosts" class="form form-row filter-form">
                    <input type="hidden" name="state" value=state.clone() />
                    <div class="field">
                        <label for="filter-pool">"Pool"</label>
                        <select id="filter-pool" name="pool">
                            <option value="" selected=pool.is_empty()>"Any pool"</option>
                            {pool_options}
                        </select>
                    </div>
                    <div class="field">
                        <label for="filter-mac">"MAC address"</label>
                        <input id="filter-mac" name="mac" value=mac.clone() placeholder="52:54:00:12:34:56" />
                    </div>
                    <button type="submit" class="button button-quiet">"Filter"</button>
                </form>
                {view.filter_error.clone().map(|e| view! { <p class="alert alert-error" role="alert">{e}</p> })}
                {if view.hosts.is_empty() {
                    Either::Left(view! { <p class="empty">{empty_text}</p> })
                } else {
                    Either::Right(view! {
                        <table class="table hosts">
                            <thead>
                                <tr>
                                    <th scope="col">"Host"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Pool"</th>
                                    <th scope="col">"Holder"</th>
                                    <th scope="col">"Last seen"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    })
                }}
                {pager}
            </section>
            {pools_card}
        </div>
    }
}

#[component]
fn HostRow(host: HostSummary) -> impl IntoView {
    view! {
        <tr data-host=host.id data-state=host.state.clone()>
            <td>
                <a href=format!("/hosts/{}", host.id)><strong>{host.name.clone()}</strong></a>
                <span class="hint mono">" " {host.macs.join(", ")}</span>
            </td>
            <td><span class=format!("status status-{}", host.state)>{state_label(&host.state)}</span></td>
            <td>{host.pool.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{host.holder.clone().unwrap_or_else(|| "—".into())}</td>
            <td>
                {host.last_seen.clone().unwrap_or_else(|| "never".into())}
                {host.last_ip.clone().map(|ip| view! { <span class="hint">" from " {ip}</span> })}
            </td>
        </tr>
    }
}

#[component]
fn Pools(view: HostsView) -> impl IntoView {
    let rows = view
        .pools
        .iter()
        .map(|p| {
            view! {
                <tr>
                    <td><a href=hosts_href("", &p.name, "", 1)>{p.name.clone()}</a></td>
                    <td>{p.description.clone()}</td>
                    <td>{p.hosts}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="pools-title">
            <h2 id="pools-title">"Pools"</h2>
            <p class="hint">
                "Pools group the nodes people get with one click. Enrol a discovered node on its page."
            </p>
            {if view.pools.is_empty() {
                Either::Left(view! { <p class="empty">"No pools yet."</p> })
            } else {
                Either::Right(view! {
                    <table class="table">
                        <thead>
                            <tr>
                                <th scope="col">"Pool"</th>
                                <th scope="col">"Description"</th>
                                <th scope="col">"Hosts"</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                })
            }}
            <form method="post" action="/pools" class="form form-row">
                <input type="hidden" name="csrf" value=view.csrf.clone() />
                <div class="field">
                    <label for="pool-name">"New pool"</label>
                    <input id="pool-name" name="name" required placeholder="rack1" />
                </div>
                <div class="field">
                    <label for="pool-description">"Description"</label>
                    <input id="pool-description" name="description" placeholder="Dell R640, 2× Xeon" />
                </div>
                <button type="submit" class="button">"Create pool"</button>
            </form>
        </section>
    }
}

#[component]
pub fn HostPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let live = use_live();
    // Refetched when this host's state changes.
    let data = Resource::new(
        move || {
            let id = id();
            let changed = live
                .last_host
                .get()
                .filter(|h| h.host.to_string() == id)
                .map(|h| h.state);
            (id, changed)
        },
        |(id, _)| host_detail(id),
    );
    view! {
        <Title text="Host" />
        <Transition fallback=|| view! { <p>"Loading the host…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(HostPageData::Found(detail)) => EitherOf3::A(view! { <Host detail=*detail /> }),
                    Ok(HostPageData::SignedOut) => EitherOf3::B(Either::Left(signed_out("Host", "see your hosts", format!("/hosts/{}", id())))),
                    Ok(HostPageData::Missing(message)) => EitherOf3::B(Either::Right(view! {
                        <section class="card form-card">
                            <h1>"Host"</h1>
                            <p class="alert alert-error" role="alert">{message}</p>
                            <p><a href="/hosts">"All hosts"</a></p>
                        </section>
                    })),
                    Err(_) => EitherOf3::C(load_error("Host")),
                }
            })}
        </Transition>
    }
}

#[component]
fn Host(detail: HostInfo) -> impl IntoView {
    let host = detail.host.clone();
    view! {
        <Title text=host.name.clone() />
        <div class="page-head">
            <p class="crumbs"><a href="/hosts">"Hosts"</a> " / "</p>
            <h1>
                {host.name.clone()} " "
                <span class=format!("status status-{}", host.state) data-testid="host-state">
                    {state_label(&host.state)}
                </span>
            </h1>
            <p class="lead-small">
                <span class="mono">{host.macs.join(", ")}</span>
                " · pool " {host.pool.clone().unwrap_or_else(|| "none".into())}
                " · held by " {host.holder.clone().unwrap_or_else(|| "nobody".into())}
                " · last seen " {host.last_seen.clone().unwrap_or_else(|| "never".into())}
                {host.last_ip.clone().map(|ip| format!(" from {ip}"))}
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            <Install detail=detail.clone() />
            <BootOptions detail=detail.clone() />
            <Timeline id=host.id />
        </div>
    }
}

/// What the next boot does, and the button that changes it.
#[component]
fn Install(detail: HostInfo) -> impl IntoView {
    let host = &detail.host;
    let action = |path: &'static str, label: &'static str, quiet: bool| {
        view! {
            <form method="post" action=format!("/hosts/{}/{path}", host.id) class="inline-form">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <button type="submit" class="button" class:button-quiet=quiet>{label}</button>
            </form>
        }
    };
    let system = detail.system.as_ref().map(|t| t.name.clone());
    let (text, button) = match host.state.as_str() {
        "discovered" => (
            if detail.admin {
                "This node has called Bootler but is in no pool yet. Enrol it into a pool below; then it can be marked for installs.".to_string()
            } else {
                "This node is not enrolled in a pool yet; an administrator enrols it.".to_string()
            },
            None,
        ),
        "install_pending" => (
            format!(
                "Marked by {} since {}: on its next network boot it gets “{}” and installs. Until then you can take the mark back.",
                detail.marked_by.clone().unwrap_or_else(|| "someone".into()),
                detail.state_since,
                system.clone().unwrap_or_default()
            ),
            Some(action("unmark", "Unmark", true)),
        ),
        "installing" => (
            format!(
                "Installing since {}. The install ends when the installer calls its done URL; if it has not after {} minutes, it is marked failed.",
                detail.state_since, detail.install_timeout_minutes
            ),
            None,
        ),
        state => {
            let before = match state {
                "installed" => format!(
                    "Installed at {}. It boots from its disk. ",
                    detail.state_since
                ),
                "failed" => format!(
                    "The last install failed at {} (see the timeline). It boots from its disk. ",
                    detail.state_since
                ),
                _ => "It boots from its local disk. ".to_string(),
            };
            match &system {
                Some(name) => (
                    format!(
                        "{before}Mark it to reinstall with “{name}” on its next boot; the templates are checked first."
                    ),
                    Some(action("mark", "Mark for a clean install", false)),
                ),
                None => (
                    format!(
                        "{before}Choose a system template below to be able to mark it for a clean install."
                    ),
                    None,
                ),
            }
        }
    };
    view! {
        <section class="card" aria-labelledby="install-title">
            <h2 id="install-title">"Install"</h2>
            <p data-testid="install-text">{text}</p>
            {button.map(|b| view! { <div class="card-actions">{b}</div> })}
        </section>
    }
}

fn template_select(
    id: &'static str,
    name: &'static str,
    options: &[TemplateOption],
    chosen: Option<&TemplateOption>,
) -> impl IntoView + use<> {
    let chosen_id = chosen.map(|t| t.id);
    let items = options
        .iter()
        .map(|t| {
            let label = match &t.owner {
                None => t.name.clone(),
                Some(owner) => format!("{} ({owner}'s)", t.name),
            };
            view! { <option value=t.id.to_string() selected=Some(t.id) == chosen_id title=t.description.clone()>{label}</option> }
        })
        .collect_view();
    view! {
        <select id=id name=name>
            <option value="" selected=chosen_id.is_none()>"None"</option>
            {items}
        </select>
    }
}

/// Why `text` is not a JSON object, or `None` if it is one.
fn vars_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.is_object() => None,
        Ok(_) => Some("The variables are a JSON object: {\"disk\": \"sda\"}.".into()),
        Err(err) => Some(format!(
            "Not valid JSON (line {}, column {}): {}.",
            err.line(),
            err.column(),
            err.to_string().split(" at line").next().unwrap_or_default()
        )),
    }
}

#[component]
fn BootOptions(detail: HostInfo) -> impl IntoView {
    let host = detail.host.clone();
    let typed_vars = query_param("vars");
    let vars_value = if typed_vars.get_untracked().is_empty() {
        detail.vars.clone()
    } else {
        typed_vars.get_untracked()
    };
    // Checked as it is typed (in the browser); the server checks it again.
    let vars_error = RwSignal::new(String::new());
    let on_vars = move |ev: leptos::ev::Event| {
        vars_error.set(vars_problem(&event_target_value(&ev)).unwrap_or_default());
    };
    let pool = detail.admin.then(|| {
        let options = detail
            .pools
            .iter()
            .map(|p| {
                view! { <option value=p.clone() selected=host.pool.as_deref() == Some(p.as_str())>{p.clone()}</option> }
            })
            .collect_view();
        view! {
            <div class="field">
                <label for="opt-pool">"Pool"</label>
                <select id="opt-pool" name="pool">
                    <option value="" selected=host.pool.is_none()>"No pool"</option>
                    {options}
                </select>
                <p class="field-hint hint">
                    {if detail.pools.is_empty() {
                        "Create a pool on the Hosts page first."
                    } else {
                        "Enrolling a discovered node makes it usable."
                    }}
                </p>
            </div>
        }
    });
    let macs = detail.admin.then(|| {
        view! {
            <div class="field">
                <label for="opt-macs">"MAC addresses"</label>
                <input id="opt-macs" name="macs" class="mono" value=host.macs.join(", ") required />
                <p class="field-hint hint">"All of the node's interfaces, separated by commas; each belongs to one host."</p>
            </div>
        }
    });
    let preview = |chosen: &Option<TemplateOption>| {
        chosen.as_ref().map(|t| {
            view! { <a href=format!("/templates/{}?host={}", t.id, host.id)>"Preview “" {t.name.clone()} "” for this host"</a> }
        })
    };
    view! {
        <section class="card" aria-labelledby="options-title">
            <h2 id="options-title">"Boot options"</h2>
            <p class="hint">
                "The system template is the iPXE script that starts the installer; the unattended template is the installer's answer file. "
                "Both can use the host's variables as "<code>"vars.name"</code>"."
            </p>
            <form method="post" action=format!("/hosts/{}/options", host.id) class="form options-form">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <div class="form-grid">
                    <div class="field">
                        <label for="opt-name">"Host name"</label>
                        <input id="opt-name" name="name" value=host.name.clone() required />
                    </div>
                    <div class="field">
                        <label for="opt-interface">"Installer interface"</label>
                        <input id="opt-interface" name="interface" value=detail.interface.clone() required />
                        <p class="field-hint hint">"e.g. eth0 or enp3s0 ("<code>"host.interface"</code>")"</p>
                    </div>
                    <div class="field">
                        <label for="opt-system">"System template"</label>
                        {template_select("opt-system", "system", &detail.system_templates, detail.system.as_ref())}
                        <p class="field-hint hint">{preview(&detail.system)}</p>
                    </div>
                    <div class="field">
                        <label for="opt-unattended">"Unattended template"</label>
                        {template_select("opt-unattended", "unattended", &detail.unattended_templates, detail.unattended.as_ref())}
                        <p class="field-hint hint">{preview(&detail.unattended)}</p>
                    </div>
                    {pool}
                    {macs}
                </div>
                <div class="field" class:has-error=move || !vars_error.get().is_empty()>
                    <label for="opt-vars">"Variables (JSON)"</label>
                    <textarea
                        id="opt-vars"
                        name="vars"
                        rows=8
                        class="mono"
                        spellcheck="false"
                        aria-describedby="opt-vars-hint opt-vars-error"
                        aria-invalid=move || (!vars_error.get().is_empty()).to_string()
                        on:input=on_vars
                    >
                        {vars_value}
                    </textarea>
                    <p id="opt-vars-hint" class="field-hint hint">
                        "A JSON object, e.g. "<code>"{\"disk\": \"sda\", \"release\": \"bookworm\"}"</code>
                    </p>
                    <p id="opt-vars-error" class="field-error" role="alert">{move || vars_error.get()}</p>
                </div>
                <button type="submit" class="button" disabled=move || !vars_error.get().is_empty()>
                    "Save boot options"
                </button>
            </form>
        </section>
    }
}

/// The host's boot timeline, refreshed every few seconds while the page
/// is open in a browser (and at once when its state changes).
#[component]
fn Timeline(id: i64) -> impl IntoView {
    let live = use_live();
    let tick = RwSignal::new(0u64);
    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_secs(5),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    let events = Resource::new(
        move || {
            (
                tick.get(),
                live.last_host
                    .get()
                    .filter(|h| h.host == id)
                    .map(|h| h.state),
            )
        },
        move |_| host_timeline(id.to_string()),
    );
    view! {
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Boot timeline"</h2>
            <p class="hint">"Every boot request of this node, what it was served, and every change. Newest first; it updates by itself."</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let entries = events.await.unwrap_or_default();
                    if entries.is_empty() {
                        return Either::Left(view! { <p class="empty">"Nothing yet."</p> });
                    }
                    let rows = entries
                        .into_iter()
                        .map(|e| {
                            view! {
                                <tr data-kind=e.kind.clone()>
                                    <td class="nowrap">{e.at}</td>
                                    <td><span class=format!("event event-{}", e.kind)>{e.kind.replace('_', " ")}</span></td>
                                    <td>{e.detail}</td>
                                    <td class="mono">{e.source_ip.unwrap_or_default()}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    Either::Right(view! {
                        <table class="table timeline">
                            <thead>
                                <tr>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"What"</th>
                                    <th scope="col">"Detail"</th>
                                    <th scope="col">"From"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    })
                })}
            </Transition>
        </section>
    }
}
