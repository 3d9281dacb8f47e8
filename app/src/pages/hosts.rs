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
use crate::hooks::{encode, list_href, query_param};
use crate::live::use_live;
use crate::server_fns::hosts::{
    HostInfo, HostPageData, HostSummary, HostsView, PAGE, PoolPageData, PoolSettingsView,
    TemplateOption, TimelineEntry, host_detail, hosts_overview, pool_settings,
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
    list_href(
        "/hosts",
        &[("state", state), ("pool", pool), ("mac", mac)],
        page,
    )
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
    let bulk = (!view.hosts.is_empty()).then(|| {
        view! {
            <div class="bulk" role="group" aria-label="Power the selected nodes">
                <label for="bulk-action">"With the selected nodes:"</label>
                <select id="bulk-action" name="action" form="bulk-power">
                    <option value="on">"Power on"</option>
                    <option value="cycle">"Restart"</option>
                    <option value="soft">"Shut down"</option>
                    <option value="off">"Power off"</option>
                    <option value="wake">"Wake (Wake-on-LAN)"</option>
                </select>
                <button type="submit" class="button button-small button-quiet" form="bulk-power" data-testid="bulk-power">
                    "Power…"
                </button>
                <span class="hint">"You see what it touches and confirm next."</span>
            </div>
        }
    });
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
        "Get a node from a pool with one click; it is yours until its lease ends. Choose how each installs, mark it for a clean install on its next boot, lend it on, and release it when you are done."
    };
    let title = if view.admin { "Hosts" } else { "My nodes" };
    let empty_text = if view.total == 0 && state.is_empty() && pool.is_empty() && mac.is_empty() {
        if view.admin {
            "No hosts yet. A node appears here the first time it network-boots into Bootler (see the network boot guide in docs/network-boot.md)."
        } else {
            "You hold no nodes yet. Get one above."
        }
    } else {
        "No host matches these filters."
    };
    let pools_card = view.admin.then(|| view! { <Pools view=view.clone() /> });
    view! {
        <div class="page-head">
            <h1>{title}</h1>
            <p class="lead-small">{lead}</p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            <GetNode view=view.clone() />
            <section class="card" aria-labelledby="hosts-title">
                <div class="toolbar">
                    <h2 id="hosts-title">{format!("{title} ({})", view.total)}</h2>
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
                        <form method="post" action="/hosts/power" id="bulk-power">
                            <input type="hidden" name="csrf" value=view.csrf.clone() />
                        </form>
                        {bulk}
                        <table class="table hosts">
                            <thead>
                                <tr>
                                    <th scope="col"><span class="sr-only">"Select"</span></th>
                                    <th scope="col">"Host"</th>
                                    <th scope="col">"State"</th>
                                    <th scope="col">"Pool"</th>
                                    <th scope="col">"Holder"</th>
                                    <th scope="col">"Lease ends"</th>
                                    <th scope="col">"Power"</th>
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
                <input
                    type="checkbox"
                    name="host"
                    value=host.id
                    form="bulk-power"
                    aria-label=format!("Select {}", host.name)
                />
            </td>
            <td>
                <a href=format!("/hosts/{}", host.id)><strong>{host.name.clone()}</strong></a>
                <span class="hint mono">" " {host.macs.join(", ")}</span>
            </td>
            <td><span class=format!("status status-{}", host.state)>{state_label(&host.state)}</span></td>
            <td>{host.pool.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{host.holder.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{match (&host.holder, &host.lease_until) {
                (None, _) => "—".to_string(),
                (Some(_), Some(until)) => until.clone(),
                (Some(_), None) => "no end".to_string(),
            }}</td>
            <td>
                {host.power.clone().unwrap_or_else(|| "—".into())}
                {host.power_last.clone().map(|l| view! { <span class="hint">" (" {l} ")"</span> })}
            </td>
            <td>
                {host.last_seen.clone().unwrap_or_else(|| "never".into())}
                {host.last_ip.clone().map(|ip| view! { <span class="hint">" from " {ip}</span> })}
            </td>
        </tr>
    }
}

/// "Get a node": one click, from a chosen pool or any.
#[component]
fn GetNode(view: HostsView) -> impl IntoView {
    if view.pools.is_empty() {
        return Either::Left(view! {
            <section class="card" aria-labelledby="get-title">
                <h2 id="get-title">"Get a node"</h2>
                <p class="empty">
                    "There is no pool you may draw nodes from yet. Administrators create pools and say who may use them."
                </p>
            </section>
        });
    }
    let free: i64 = view.pools.iter().map(|p| p.free).sum();
    let options = view
        .pools
        .iter()
        .map(|p| {
            let mut label = format!("{} — {} of {} free", p.name, p.free, p.hosts);
            if p.free == 0
                && let Some(next) = &p.next_lease_end
            {
                label.push_str(&format!(", next lease ends {next}"));
            }
            view! { <option value=p.name.clone()>{label}</option> }
        })
        .collect_view();
    let lengths = view
        .pools
        .iter()
        .map(|p| match p.lease_hours {
            Some(h) if h % 24 == 0 => format!("{}: {} days", p.name, h / 24),
            Some(h) => format!("{}: {h} hours", p.name),
            None => format!("{}: until released", p.name),
        })
        .collect::<Vec<_>>()
        .join(" · ");
    Either::Right(view! {
        <section class="card" aria-labelledby="get-title">
            <h2 id="get-title">"Get a node"</h2>
            <p class="hint">
                {format!("{free} free now. A node is yours for its pool's lease length ({lengths}); you are reminded before it ends and can extend it. ")}
                <a href="/pools">"Which nodes are taken, and until when"</a>
            </p>
            <form method="post" action="/hosts/allocate" class="form form-row">
                <input type="hidden" name="csrf" value=view.csrf.clone() />
                <div class="field">
                    <label for="get-pool">"From"</label>
                    <select id="get-pool" name="pool">
                        <option value="">"Any pool"</option>
                        {options}
                    </select>
                </div>
                <button type="submit" class="button" data-testid="get-node">"Get a node"</button>
            </form>
        </section>
    })
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
                    <td>{p.free}</td>
                    <td>{p.held}</td>
                    <td><a href=format!("/pools/{}", encode(&p.name))>"Settings"</a></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="pools-title">
            <h2 id="pools-title">"Pools"</h2>
            <p class="hint">
                "Pools group the nodes people get with one click. Enrol a discovered node on its page; a pool's settings say who may get nodes from it, for how long and how many."
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
                                <th scope="col">"Free"</th>
                                <th scope="col">"Held"</th>
                                <th scope="col"><span class="sr-only">"Settings"</span></th>
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
            <Lease detail=detail.clone() />
            <Install detail=detail.clone() />
            <Power detail=detail.clone() />
            <BootOptions detail=detail.clone() />
            <Timeline id=host.id initial=detail.timeline.clone() />
        </div>
    }
}

/// Who holds the node and until when; extend, release, lend.
#[component]
fn Lease(detail: HostInfo) -> impl IntoView {
    let host = detail.host.clone();
    let post = |path: &'static str, label: &'static str, quiet: bool, testid: &'static str| {
        view! {
            <form method="post" action=format!("/hosts/{}/{path}", host.id) class="inline-form">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <button type="submit" class="button" class:button-quiet=quiet data-testid=testid>{label}</button>
            </form>
        }
    };
    let text = match (&host.holder, detail.holds) {
        (None, _) => match &host.pool {
            Some(pool) => format!("Nobody holds it: it is free in pool {pool}."),
            None => "Nobody holds it, and it is in no pool.".to_string(),
        },
        (Some(_), true) => match &host.lease_until {
            Some(until) => format!(
                "You hold it since {}, until {until}. You are reminded before the end; extend it if you need it longer, release it when you are done.",
                host.lease_since.clone().unwrap_or_default()
            ),
            None => format!(
                "You hold it since {}, with no end. Release it when you are done.",
                host.lease_since.clone().unwrap_or_default()
            ),
        },
        (Some(holder), false) => format!(
            "{holder} holds it since {}, {}.",
            host.lease_since.clone().unwrap_or_default(),
            host.lease_until
                .clone()
                .map(|u| format!("until {u}"))
                .unwrap_or_else(|| "with no end".into())
        ),
    };
    let text = if detail.maintenance {
        format!("In maintenance: out of allocation. {text}")
    } else {
        text
    };
    let held = host.holder.is_some();
    let may = detail.holds || detail.admin;
    let extend = (held && may && host.lease_until.is_some())
        .then(|| post("extend", "Extend", true, "extend"));
    let release = (held && may).then(|| {
        post(
            "release",
            if detail.holds { "Release" } else { "Take back" },
            true,
            "release",
        )
    });
    let lend = may.then(|| {
        let (label, hint) = if detail.holds {
            ("Lend to", "Lending gives the node and its lease to someone else; it is theirs until the lease ends.")
        } else {
            ("Give to", "Giving starts a new lease for that person (the pool's lease length).")
        };
        view! {
            <form method="post" action=format!("/hosts/{}/lend", host.id) class="form form-row">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <div class="field">
                    <label for="lend-user">{label}</label>
                    <input id="lend-user" name="user" required placeholder="username" autocomplete="off" />
                    <p class="hint">{hint}</p>
                </div>
                <button type="submit" class="button button-quiet" data-testid="lend">{label}</button>
            </form>
        }
    });
    view! {
        <section class="card" aria-labelledby="lease-title">
            <h2 id="lease-title">"Lease"</h2>
            <p data-testid="lease-text">{text}</p>
            {(extend.is_some() || release.is_some()).then(|| view! { <div class="card-actions">{extend}{release}</div> })}
            {lend}
        </section>
    }
}

/// The node's power: its state, the last action, the buttons; and for
/// administrators, how the power is reached.
#[component]
fn Power(detail: HostInfo) -> impl IntoView {
    let host = detail.host.clone();
    let power = detail.power.clone();
    let may = detail.holds || detail.admin;
    let state = match (&power.state, &power.state_at) {
        (Some(state), Some(at)) => format!("Power {state} (read {at})."),
        _ if power.drivers.is_empty() => {
            "No power driver yet: the node is started by hand.".to_string()
        }
        _ => "Power state unknown (Wake-on-LAN cannot read it).".to_string(),
    };
    let state = match (&power.pool_wake, power.own_drivers) {
        (Some(wake), false) => format!("{state} Started by its pool's Wake-on-LAN ({wake})."),
        _ => state,
    };
    let last = power.action.clone().map(|action| {
        let result = match power.result.as_deref() {
            Some("queued") => "queued".to_string(),
            Some("sent") => "sent; not confirmed by a state read".to_string(),
            Some("confirmed") => "confirmed".to_string(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        format!(
            "Last: power {action}, {}, {result}.",
            power.action_at.clone().unwrap_or_default()
        )
    });
    let labels = [
        ("on", "Power on", false),
        ("cycle", "Restart", true),
        ("soft", "Shut down", true),
        ("off", "Power off", true),
        ("wake", "Wake (Wake-on-LAN)", false),
    ];
    let buttons = labels
        .into_iter()
        .filter(|(action, _, _)| power.actions.iter().any(|a| a == action))
        // Without a BMC, "power on" is Wake-on-LAN: one button for it.
        .filter(|(action, _, _)| *action != "on" || power.drivers.iter().any(|d| d == "ipmi"))
        .map(|(action, label, quiet)| {
            view! {
                <form method="post" action=format!("/hosts/{}/power", host.id) class="inline-form">
                    <input type="hidden" name="csrf" value=detail.csrf.clone() />
                    <input type="hidden" name="action" value=action />
                    <button type="submit" class="button" class:button-quiet=quiet data-testid=format!("power-{action}")>
                        {label}
                    </button>
                </form>
            }
        })
        .collect_view();
    let reinstall = (!power.drivers.is_empty() && host.pool.is_some() && detail.system.is_some()).then(|| {
        view! {
            <form method="post" action=format!("/hosts/{}/reinstall", host.id) class="inline-form">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <button type="submit" class="button button-quiet" data-testid="reinstall">"Reinstall now"</button>
            </form>
        }
    });
    let test = (detail.admin && !power.drivers.is_empty()).then(|| {
        view! {
            <form method="post" action=format!("/hosts/{}/power-test", host.id) class="inline-form">
                <input type="hidden" name="csrf" value=detail.csrf.clone() />
                <button type="submit" class="button button-quiet" data-testid="power-test" title="Asks each BMC for the power state; changes nothing.">
                    "Test connection"
                </button>
            </form>
        }
    });
    let settings = detail.admin.then(|| {
        let p = power.clone();
        view! {
            <details class="power-settings" open=!p.own_drivers>
                <summary>"How Bootler reaches its power (administrators)"</summary>
                <form method="post" action=format!("/hosts/{}/power-drivers", host.id) class="form">
                    <input type="hidden" name="csrf" value=detail.csrf.clone() />
                    <p class="hint">
                        "IPMI (a BMC, IPMI 2.0 lanplus) is tried first; Wake-on-LAN can only start the node. Leave the BMC address empty and untick Wake-on-LAN for none."
                    </p>
                    <div class="form-row">
                        <div class="field">
                            <label for="ipmi-address">"BMC address"</label>
                            <input id="ipmi-address" name="ipmi_address" value=p.ipmi_address.clone() placeholder="10.0.0.5" />
                        </div>
                        <div class="field">
                            <label for="ipmi-port">"BMC port"</label>
                            <input id="ipmi-port" name="ipmi_port" type="number" min="1" max="65535" value=p.ipmi_port.clone() placeholder="623" />
                        </div>
                    </div>
                    <div class="form-row">
                        <div class="field">
                            <label for="ipmi-username">"BMC user"</label>
                            <input id="ipmi-username" name="ipmi_username" value=p.ipmi_username.clone() autocomplete="off" />
                        </div>
                        <div class="field">
                            <label for="ipmi-password">"BMC password"</label>
                            <input
                                id="ipmi-password"
                                name="ipmi_password"
                                type="password"
                                autocomplete="new-password"
                                placeholder=if p.ipmi_password_set { "kept (type to change)" } else { "" }
                            />
                        </div>
                    </div>
                    <div class="field field-check">
                        <input id="wol" name="wol" type="checkbox" value="on" checked=p.wol />
                        <label for="wol">"Wake-on-LAN"</label>
                    </div>
                    <div class="form-row">
                        <div class="field">
                            <label for="wol-broadcast">"Broadcast address"</label>
                            <input id="wol-broadcast" name="wol_broadcast" value=p.wol_broadcast.clone() placeholder="255.255.255.255" />
                        </div>
                        <div class="field">
                            <label for="wol-port">"UDP port"</label>
                            <input id="wol-port" name="wol_port" type="number" min="1" max="65535" value=p.wol_port.clone() placeholder="9" />
                        </div>
                        <div class="field">
                            <label for="wol-interface">"Interface"</label>
                            <input id="wol-interface" name="wol_interface" value=p.wol_interface.clone() placeholder="as routed" />
                        </div>
                    </div>
                    {p.pool_wake.clone().map(|w| view! {
                        <p class="hint" data-testid="pool-wake">
                            {format!("Its pool wakes its nodes on LAN ({w}): empty fields take the pool's values, and without settings of its own the node is woken that way.")}
                        </p>
                    })}
                    <button type="submit" class="button" data-testid="save-power">"Save power settings"</button>
                </form>

            </details>
        }
    });
    view! {
        <section class="card" aria-labelledby="power-title">
            <h2 id="power-title">"Power"</h2>
            <p data-testid="power-state">{state}</p>
            {last.map(|l| view! { <p class="hint" data-testid="power-last">{l}</p> })}
            {may.then(|| view! { <div class="card-actions">{buttons}{reinstall}{test}</div> })}
            {settings}
        </section>
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
    let maintenance = detail.admin.then(|| {
        view! {
            <div class="field">
                <input type="hidden" name="maintenance_field" value="1" />
                <label>
                    <input type="checkbox" name="maintenance" checked=detail.maintenance />
                    " In maintenance"
                </label>
                <p class="field-hint hint">"Out of allocation while you repair it; whoever holds it keeps it."</p>
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
                    {maintenance}
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

/// The host's boot timeline: rendered with the page, then refreshed every
/// few seconds while it is open in a browser (and at once when the host
/// changes). The refreshes start after hydration and only replace a
/// signal, so the page never differs from what the server rendered while
/// it hydrates.
#[component]
fn Timeline(id: i64, initial: Vec<TimelineEntry>) -> impl IntoView {
    let entries = RwSignal::new(initial);
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
    #[cfg(feature = "hydrate")]
    {
        let live = use_live();
        let refresh = move || {
            leptos::task::spawn_local(async move {
                if let Ok(list) = crate::server_fns::hosts::host_timeline(id.to_string()).await {
                    entries.set(list);
                }
            });
        };
        Effect::new(move |_| {
            if let Ok(handle) = set_interval_with_handle(refresh, std::time::Duration::from_secs(5))
            {
                on_cleanup(move || handle.clear());
            }
        });
        // Skips its first run: only changes after hydration refresh.
        Effect::new(move |previous: Option<()>| {
            let _ = live.last_host.get().filter(|h| h.host == id);
            if previous.is_some() {
                refresh();
            }
        });
    }
    view! {
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Boot timeline"</h2>
            <p class="hint">"Every boot request of this node, what it was served, and every change. Newest first; it updates by itself."</p>
            {move || {
                let list = entries.get();
                if list.is_empty() {
                    return Either::Left(view! { <p class="empty">"Nothing yet."</p> });
                }
                let rows = list
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
            }}
        </section>
    }
}

/// `/pools/{name}`: who may draw from a pool, for how long, how many, and
/// whether released nodes are installed afresh (administrators).
#[component]
pub fn PoolPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let data = Resource::new(name, pool_settings);
    view! {
        <Title text="Pool" />
        <Transition fallback=|| view! { <p>"Loading the pool…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(PoolPageData::Found(pool)) => EitherOf3::A(view! { <PoolForm pool=*pool /> }),
                    Ok(PoolPageData::SignedOut) => EitherOf3::B(Either::Left(signed_out("Pool", "change pools", format!("/pools/{}", encode(&name()))))),
                    Ok(PoolPageData::Missing(message)) => EitherOf3::B(Either::Right(view! {
                        <section class="card form-card">
                            <h1>"Pool"</h1>
                            <p class="alert alert-error" role="alert">{message}</p>
                            <p><a href="/hosts">"Hosts"</a></p>
                        </section>
                    })),
                    Err(_) => EitherOf3::C(load_error("Pool")),
                }
            })}
        </Transition>
    }
}

fn hours_value(hours: Option<i32>) -> String {
    hours.map(|h| h.to_string()).unwrap_or_default()
}

fn name_select(
    id: &'static str,
    name: &'static str,
    options: &[String],
    chosen: Option<&String>,
) -> impl IntoView + use<> {
    let items = options
        .iter()
        .map(|t| view! { <option value=t.clone() selected=Some(t) == chosen>{t.clone()}</option> })
        .collect_view();
    view! {
        <select id=id name=name>
            <option value="" selected=chosen.is_none()>"None"</option>
            {items}
        </select>
    }
}

#[component]
fn PoolForm(pool: PoolSettingsView) -> impl IntoView {
    view! {
        <Title text=format!("Pool {}", pool.name) />
        <div class="page-head">
            <p class="crumbs"><a href="/hosts#pools-title">"Pools"</a> " / "</p>
            <h1>{pool.name.clone()}</h1>
            <p class="lead-small">
                {format!("{} nodes: {} free, {} held.", pool.hosts, pool.free, pool.held)}
                " "
                <a href=hosts_href("", &pool.name, "", 1)>"See them"</a>
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <section class="card" aria-labelledby="pool-title">
            <h2 id="pool-title">"Settings"</h2>
            <form method="post" action=format!("/pools/{}", encode(&pool.name)) class="form">
                <input type="hidden" name="csrf" value=pool.csrf.clone() />
                <div class="field">
                    <label for="pool-description">"Description"</label>
                    <input id="pool-description" name="description" value=pool.description.clone() />
                </div>
                <div class="field">
                    <label for="pool-access">"Who may get nodes from it"</label>
                    <input id="pool-access" name="access" value=pool.access.clone() placeholder="everyone" />
                    <p class="hint">
                        "Usernames and groups (as @name, see "
                        <a href="/admin/users#groups">"Groups"</a>
                        "), separated by commas. Empty: everyone. Administrators always may."
                    </p>
                </div>
                <div class="form-row">
                    <div class="field">
                        <label for="pool-default">"Lease length (hours)"</label>
                        <input id="pool-default" name="default_lease_hours" type="number" min="1" value=hours_value(pool.default_lease_hours) placeholder="no end" />
                        <p class="hint">"Given at “Get a node” and added by “Extend”. Empty: until released."</p>
                    </div>
                    <div class="field">
                        <label for="pool-max">"Longest lease (hours)"</label>
                        <input id="pool-max" name="max_lease_hours" type="number" min="1" value=hours_value(pool.max_lease_hours) placeholder="no limit" />
                        <p class="hint">"From now: extensions stop there. Empty: no limit."</p>
                    </div>
                    <div class="field">
                        <label for="pool-per-user">"Nodes per person"</label>
                        <input id="pool-per-user" name="max_per_user" type="number" min="1" value=hours_value(pool.max_per_user) placeholder="no limit" />
                    </div>
                </div>
                <div class="field">
                    <label>
                        <input type="checkbox" name="clean_install" checked=pool.clean_install />
                        " Install released nodes afresh before the next person gets them"
                    </label>
                    <p class="hint">"With these templates; a released node is out of allocation until its install is done."</p>
                </div>
                <div class="form-row">
                    <div class="field">
                        <label for="pool-system">"System template"</label>
                        {name_select("pool-system", "system", &pool.system_templates, pool.system.as_ref())}
                    </div>
                    <div class="field">
                        <label for="pool-unattended">"Unattended template"</label>
                        {name_select("pool-unattended", "unattended", &pool.unattended_templates, pool.unattended.as_ref())}
                    </div>
                </div>
                <fieldset class="fieldset">
                    <legend>"Power"</legend>
                    <div class="field field-check">
                        <input id="pool-wake" name="wake" type="checkbox" value="on" checked=pool.wake />
                        <label for="pool-wake">"Its nodes wake on LAN"</label>
                    </div>
                    <p class="hint">
                        "Nodes without power settings of their own are started with Wake-on-LAN, and nodes with only a BMC fall back to it. A node's own Wake-on-LAN takes what it leaves empty from here."
                    </p>
                    <div class="form-row">
                        <div class="field">
                            <label for="pool-wake-broadcast">"Broadcast address"</label>
                            <input id="pool-wake-broadcast" name="wake_broadcast" value=pool.wake_broadcast.clone() placeholder="255.255.255.255" />
                        </div>
                        <div class="field">
                            <label for="pool-wake-port">"UDP port"</label>
                            <input id="pool-wake-port" name="wake_port" type="number" min="1" max="65535" value=pool.wake_port.clone() placeholder="9" />
                        </div>
                        <div class="field">
                            <label for="pool-wake-interface">"Interface"</label>
                            <input id="pool-wake-interface" name="wake_interface" value=pool.wake_interface.clone() placeholder="as routed" />
                        </div>
                    </div>
                    <p class="hint">"Interface: the network card the packets leave by, where the route would pick another (Bootler then needs the CAP_NET_RAW capability)."</p>
                </fieldset>
                <button type="submit" class="button">"Save pool"</button>
            </form>
        </section>
    }
}
