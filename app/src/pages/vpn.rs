//! `/vpn`: reaching the lab's private network. One's access, the profile
//! to download, how to connect on each system, and one's recent sessions;
//! administrators also see who is connected (and disconnect them),
//! everyone's sessions, and turn people's access on and off.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::alert::{Alert, Notice, load_error, signed_out};
use crate::hooks::query_param;
use crate::server_fns::vpn::{SessionRow, VpnAdminView, VpnView, vpn_overview};

#[component]
pub fn VpnPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| vpn_overview());
    view! {
        <Title text="VPN access" />
        <Transition fallback=|| view! { <p>"Loading your VPN access…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(view)) => EitherOf3::A(view! { <Vpn view /> }),
                    Ok(None) => EitherOf3::B(signed_out("VPN access", "download your VPN profile", "/vpn".into())),
                    Err(_) => EitherOf3::C(load_error("VPN access")),
                }
            })}
        </Transition>
    }
}

#[component]
fn Vpn(view: VpnView) -> impl IntoView {
    if !view.enabled {
        return Either::Left(view! {
            <div class="page-head">
                <h1>"VPN access"</h1>
            </div>
            <section class="card">
                <p class="empty" data-testid="vpn-off">
                    "This lab has no VPN: its nodes are reachable without one. (Administrators turn it on with vpn.enabled.)"
                </p>
            </section>
        });
    }
    let networks = if view.networks.is_empty() {
        "the lab's network".to_string()
    } else {
        view.networks.join(", ")
    };
    let mine = match view.access.as_str() {
        "on" => Either::Left(view! {
            <p data-testid="vpn-access">
                <span class="badge badge-ok">"On"</span>
                " You may connect as " <strong>{view.username.clone()}</strong>
                ", with your Bootler password."
            </p>
            <p>
                <a
                    class="button"
                    href="/api/v1/vpn/profile"
                    download=view.profile_name.clone()
                    data-testid="vpn-profile"
                >
                    "Download your VPN profile"
                </a>
            </p>
            <p class="hint">
                {format!(
                    "Server {}. Once connected you reach {networks}. The profile holds no password: you type it when connecting.",
                    view.server
                )}
            </p>
        }),
        other => Either::Right(view! {
            <p data-testid="vpn-access">
                <span class="badge badge-off">{if other == "off" { "Off" } else { "Awaiting approval" }}</span>
                {if other == "off" {
                    " VPN access is off for your account. Ask the lab's administrator to turn it on."
                } else {
                    " An administrator turns your VPN access on; you get no mail, so look here again later."
                }}
            </p>
        }),
    };
    let admin = view
        .admin
        .clone()
        .map(|admin| view! { <VpnAdmin admin csrf=view.csrf.clone() /> });
    Either::Right(view! {
        <div class="page-head">
            <h1>"VPN access"</h1>
            <p class="lead-small">
                "The lab's nodes and VMs live on a private network. OpenVPN takes you there with your Bootler username and password."
            </p>
        </div>
        <Notice message=query_param("notice") />
        <Alert message=query_param("err") />
        <div class="sections">
            <section class="card" aria-labelledby="vpn-mine-title">
                <h2 id="vpn-mine-title">"Your access"</h2>
                {mine}
                <p class="hint">
                    "Forgot your password, or want a new one? Change it on "
                    <a href="/account">"your account page"</a>
                    ": the VPN takes the new one at your next connection."
                </p>
            </section>
            <section class="card" aria-labelledby="vpn-howto-title">
                <h2 id="vpn-howto-title">"How to connect"</h2>
                <dl class="howto">
                    <dt>"Linux"</dt>
                    <dd>
                        "Install OpenVPN (" <code>"sudo apt install openvpn"</code> ") and run "
                        <code class="copy">{format!("sudo openvpn --config {}", view.profile_name)}</code>
                        ", or import the file in NetworkManager: "
                        <code class="copy">{format!("nmcli connection import type openvpn file {}", view.profile_name)}</code>
                        "."
                    </dd>
                    <dt>"macOS"</dt>
                    <dd>"Install Tunnelblick or OpenVPN Connect and open the profile with it."</dd>
                    <dt>"Windows"</dt>
                    <dd>"Install OpenVPN Connect (or the OpenVPN GUI), then import the profile."</dd>
                    <dt>"Android and iOS"</dt>
                    <dd>"Install OpenVPN Connect from the app store, open the profile with it, and save your username."</dd>
                </dl>
                <p class="hint">"Each connection asks for your username and password; nothing else is needed."</p>
            </section>
            <section class="card" aria-labelledby="vpn-sessions-title">
                <h2 id="vpn-sessions-title">"Your recent sessions"</h2>
                <Sessions rows=view.sessions.clone() who=false empty="You have not connected yet." />
            </section>
            {admin}
        </div>
    })
}

#[component]
fn Sessions(rows: Vec<SessionRow>, who: bool, empty: &'static str) -> impl IntoView {
    if rows.is_empty() {
        return Either::Left(view! { <p class="empty">{empty}</p> });
    }
    let body = rows
        .into_iter()
        .map(|s| {
            view! {
                <tr data-testid="vpn-session">
                    {who.then(|| view! { <td>{s.username.clone()}</td> })}
                    <td>{s.connected.clone()}</td>
                    <td>{s.ended.clone()}</td>
                    <td><code>{s.virtual_address.clone()}</code></td>
                    <td>{s.real_address.clone()}</td>
                    <td>{s.traffic.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    Either::Right(view! {
        <table class="table">
            <thead>
                <tr>
                    {who.then(|| view! { <th scope="col">"Who"</th> })}
                    <th scope="col">"Connected"</th>
                    <th scope="col">"Ended"</th>
                    <th scope="col">"VPN address"</th>
                    <th scope="col">"From"</th>
                    <th scope="col">"Traffic"</th>
                </tr>
            </thead>
            <tbody>{body}</tbody>
        </table>
    })
}

#[component]
fn VpnAdmin(admin: VpnAdminView, csrf: String) -> impl IntoView {
    let connected = match admin.connected.clone() {
        None => EitherOf3::A(view! {
            <p class="hint">
                "Bootler cannot ask OpenVPN who is connected: its management interface is not configured (vpn.management). The sessions below come from the connect hooks."
            </p>
        }),
        Some(Err(why)) => {
            EitherOf3::B(view! { <p class="alert alert-error" role="alert">{why}</p> })
        }
        Some(Ok(rows)) if rows.is_empty() => EitherOf3::C(
            view! { <p class="empty" data-testid="vpn-connected">"Nobody is connected."</p> }
                .into_any(),
        ),
        Some(Ok(rows)) => {
            let body = rows
                .into_iter()
                .map(|c| {
                    let csrf = csrf.clone();
                    view! {
                        <tr data-testid="vpn-connected">
                            <td>{c.username.clone()}</td>
                            <td><code>{c.virtual_address.clone()}</code></td>
                            <td>{c.real_address.clone()}</td>
                            <td>{c.since.clone()}</td>
                            <td>{c.traffic.clone()}</td>
                            <td>
                                <form method="post" action=format!("/vpn/disconnect/{}", c.username) class="inline-form">
                                    <input type="hidden" name="csrf" value=csrf />
                                    <button type="submit" class="button button-small button-danger" data-testid=format!("vpn-disconnect-{}", c.username)>
                                        "Disconnect"
                                    </button>
                                </form>
                            </td>
                        </tr>
                    }
                })
                .collect_view();
            EitherOf3::C(
                view! {
                    <table class="table">
                        <thead>
                            <tr>
                                <th scope="col">"Who"</th>
                                <th scope="col">"VPN address"</th>
                                <th scope="col">"From"</th>
                                <th scope="col">"Since"</th>
                                <th scope="col">"Traffic"</th>
                                <th scope="col"><span class="sr-only">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>{body}</tbody>
                    </table>
                }
                .into_any(),
            )
        }
    };
    let people = admin
        .people
        .iter()
        .map(|p| {
            let (action, label) = if p.vpn { ("vpn-off", "Turn off") } else { ("vpn-on", "Turn on") };
            view! {
                <tr data-testid=format!("vpn-person-{}", p.username)>
                    <td>{p.username.clone()}</td>
                    <td>{p.display_name.clone()}</td>
                    <td>{p.status.clone()}</td>
                    <td data-testid=format!("vpn-state-{}", p.username)>{if p.vpn { "on" } else { "off" }}</td>
                    <td>
                        <form method="post" action=format!("/admin/users/{}", p.username) class="inline-form">
                            <input type="hidden" name="csrf" value=csrf.clone() />
                            <input type="hidden" name="action" value=action />
                            <input type="hidden" name="back" value="/vpn" />
                            <button type="submit" class="button button-small" data-testid=format!("vpn-toggle-{}", p.username)>
                                {label}
                            </button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-labelledby="vpn-connected-title">
            <h2 id="vpn-connected-title">"Connected now (administrators)"</h2>
            {connected}
        </section>
        <section class="card" aria-labelledby="vpn-people-title">
            <h2 id="vpn-people-title">"Who may connect"</h2>
            <p class="hint">{admin.policy.clone()} " Turning someone's access off also ends their open sessions."</p>
            <table class="table">
                <thead>
                    <tr>
                        <th scope="col">"Username"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Account"</th>
                        <th scope="col">"VPN"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{people}</tbody>
            </table>
        </section>
        <section class="card" aria-labelledby="vpn-all-sessions-title">
            <h2 id="vpn-all-sessions-title">"Everyone's recent sessions"</h2>
            <Sessions rows=admin.sessions.clone() who=true empty="Nobody has connected yet." />
        </section>
    }
}
