//! The forms of `/hosts`: getting a node, lending, releasing and extending
//! it, boot options, mark, unmark, and (admins) pools.

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use bootler_domain::hosts::power::PowerRequest;
use bootler_domain::hosts::{HostChange, TemplateChoice};
use bootler_domain::power::PowerAction;
use bootler_domain::power::settings::DriverSetting;
use serde::Deserialize;

use super::{general_message, signed_in, to};
use crate::api::hosts::actor;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hosts/{id}/options", post(options))
        .route("/hosts/{id}/mark", post(mark))
        .route("/hosts/{id}/unmark", post(unmark))
        .route("/hosts/{id}/release", post(release))
        .route("/hosts/{id}/extend", post(extend))
        .route("/hosts/{id}/lend", post(lend))
        .route("/hosts/{id}/power", post(power))
        .route("/hosts/power", post(bulk_power))
        .route("/hosts/{id}/reinstall", post(reinstall))
        .route("/hosts/{id}/power-drivers", post(power_drivers))
        .route("/hosts/{id}/power-test", post(power_test))
        .route("/hosts/allocate", post(allocate))
        .route("/pools", post(create_pool))
        .route("/pools/{name}", post(update_pool))
}

/// Typed variables go back to the form when they fit in a URL.
const KEEP_VARS: usize = 4096;

#[derive(Deserialize)]
pub struct OptionsForm {
    #[serde(default)]
    csrf: String,
    name: Option<String>,
    interface: Option<String>,
    system: Option<String>,
    unattended: Option<String>,
    pool: Option<String>,
    vars: Option<String>,
    /// Comma- or space-separated (admins).
    macs: Option<String>,
    /// The maintenance checkbox (admins): `maintenance_field` says the
    /// form had it, `maintenance` whether it was ticked.
    maintenance: Option<String>,
    maintenance_field: Option<String>,
}

/// A template select's value: "" is none.
fn choice(value: Option<String>) -> Result<Option<Option<TemplateChoice>>, String> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(text) => text
            .parse::<i64>()
            .map(|id| Some(Some(TemplateChoice::Id(id))))
            .map_err(|_| "Choose a template from the list.".to_string()),
    }
}

pub async fn options(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<OptionsForm>, FormRejection>,
) -> Redirect {
    let Ok(host) = id.parse::<i64>() else {
        return to("/hosts", &[("err", "There is no such host.")]);
    };
    let back = format!("/hosts/{host}");
    let Ok(Form(form)) = form else {
        return to(
            &back,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let typed = form.vars.clone().unwrap_or_default();
    let fail = |message: String| {
        let mut params = vec![("err".to_string(), message)];
        if typed.len() <= KEEP_VARS {
            params.push(("vars".into(), typed.clone()));
        }
        to(&format!("{back}#options-title"), &params)
    };
    let vars = match form.vars.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(serde_json::json!({})),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => Some(value),
            Err(err) => {
                return fail(format!(
                    "The variables are not valid JSON (line {}, column {}); nothing was saved.",
                    err.line(),
                    err.column()
                ));
            }
        },
    };
    let (system, unattended) = match (choice(form.system), choice(form.unattended)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(message), _) | (_, Err(message)) => return fail(message),
    };
    let actor = actor(&session.user);
    let maintenance =
        (actor.admin && form.maintenance_field.is_some()).then_some(form.maintenance.is_some());
    let (pool, macs) = if actor.admin {
        (
            form.pool
                .map(|p| Some(p.trim().to_string()).filter(|p| !p.is_empty())),
            form.macs.map(|text| {
                text.split([',', ' ', '\n', '\r', '\t'])
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            }),
        )
    } else {
        (None, None)
    };
    let result = state
        .hosts
        .update(
            host,
            HostChange {
                name: form.name,
                interface: form.interface,
                vars,
                pool,
                system,
                unattended,
                macs,
                maintenance,
            },
            &actor,
            chrono::Utc::now(),
        )
        .await;
    match result {
        Ok(host) => to(
            &back,
            &[(
                "notice",
                format!("Saved the boot options of {}.", host.name),
            )],
        ),
        Err(err) => fail(general_message(err)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Clone, Copy)]
enum Action {
    Mark,
    Unmark,
    Release,
    Extend,
}

pub async fn release(
    state: State<AppState>,
    headers: HeaderMap,
    peer: ConnectInfo<std::net::SocketAddr>,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, peer, id, form, Action::Release).await
}

pub async fn extend(
    state: State<AppState>,
    headers: HeaderMap,
    peer: ConnectInfo<std::net::SocketAddr>,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, peer, id, form, Action::Extend).await
}

fn until(host: &bootler_domain::hosts::Host) -> String {
    host.lease_ends_at
        .map(|end| format!("until {}", end.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_else(|| "with no end".into())
}

#[derive(Deserialize)]
pub struct AllocateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pool: String,
}

/// "Get a node": the new holder lands on the node's page.
pub async fn allocate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    form: Result<Form<AllocateForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/hosts",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/hosts").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let request = bootler_domain::hosts::AllocateRequest {
        pool: Some(form.pool.trim().to_string()).filter(|p| !p.is_empty()),
        ..Default::default()
    };
    match state
        .hosts
        .allocate(
            &actor(&session.user),
            &request,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(host) => to(
            &format!("/hosts/{}", host.id),
            &[(
                "notice",
                format!("{} is yours {}.", host.name, until(&host)),
            )],
        ),
        Err(err) => to("/hosts#get-title", &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct LendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
}

/// Lends (or, for admins, gives) a node to someone.
pub async fn lend(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    form: Result<Form<LendForm>, FormRejection>,
) -> Redirect {
    let Ok(host) = id.parse::<i64>() else {
        return to("/hosts", &[("err", "There is no such host.")]);
    };
    let back = format!("/hosts/{host}");
    let Ok(Form(form)) = form else {
        return to(
            &back,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    match state
        .hosts
        .give(
            &actor,
            host,
            &form.user,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await
    {
        // The lender no longer holds it: back to their list.
        Ok(given) => to(
            if actor.admin { &back } else { "/hosts" },
            &[(
                "notice",
                format!(
                    "{} is now {}'s, {}.",
                    given.name,
                    given.holder.clone().unwrap_or_default(),
                    until(&given)
                ),
            )],
        ),
        Err(err) => to(
            &format!("{back}#lease-title"),
            &[("err", general_message(err))],
        ),
    }
}

pub async fn mark(
    state: State<AppState>,
    headers: HeaderMap,
    peer: ConnectInfo<std::net::SocketAddr>,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, peer, id, form, Action::Mark).await
}

pub async fn unmark(
    state: State<AppState>,
    headers: HeaderMap,
    peer: ConnectInfo<std::net::SocketAddr>,
    id: Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    act(state, headers, peer, id, form, Action::Unmark).await
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
    action: Action,
) -> Redirect {
    let Ok(host) = id.parse::<i64>() else {
        return to("/hosts", &[("err", "There is no such host.")]);
    };
    let back = format!("/hosts/{host}");
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let session = match signed_in(&state, &headers, &csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let actor = actor(&session.user);
    let now = chrono::Utc::now();
    let ip = peer.ip().to_string();
    // A released host is no longer theirs to see (admins stay).
    let mut target = back.clone();
    let result = match action {
        Action::Release => state
            .hosts
            .release(&actor, host, Some(&ip), now)
            .await
            .map(|h| {
                if !actor.admin {
                    target = "/hosts".into();
                }
                format!("{} is released; it went back to its pool.", h.name)
            }),
        Action::Extend => state
            .hosts
            .extend(&actor, host, None, false, Some(&ip), now)
            .await
            .map(|h| format!("The lease of {} now runs {}.", h.name, until(&h))),
        Action::Mark => state.hosts.mark(host, &actor, now).await.map(|h| {
            format!(
                "{} is marked: it installs on its next network boot.",
                h.name
            )
        }),
        Action::Unmark => state
            .hosts
            .unmark(host, &actor, now)
            .await
            .map(|h| format!("{} is no longer marked; it boots from its disk.", h.name)),
    };
    match result {
        Ok(notice) => to(&target, &[("notice", notice)]),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_pool(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PoolForm>, FormRejection>,
) -> Redirect {
    let Ok(Form(form)) = form else {
        return to(
            "/hosts",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, "/hosts").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match state
        .hosts
        .create_pool(
            &actor(&session.user),
            &bootler_domain::hosts::PoolChange {
                name: Some(form.name.clone()),
                description: Some(form.description.clone()),
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .await
    {
        Ok(pool) => to(
            "/hosts#pools-title",
            &[("notice", format!("Created the pool {}.", pool.name))],
        ),
        Err(err) => to("/hosts#pools-title", &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct PoolSettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    access: String,
    #[serde(default)]
    default_lease_hours: String,
    #[serde(default)]
    max_lease_hours: String,
    #[serde(default)]
    max_per_user: String,
    clean_install: Option<String>,
    #[serde(default)]
    system: String,
    #[serde(default)]
    unattended: String,
    /// Its nodes wake on LAN, with:
    wake: Option<String>,
    #[serde(default)]
    wake_broadcast: String,
    #[serde(default)]
    wake_port: String,
    #[serde(default)]
    wake_interface: String,
}

/// A number field: empty is none.
fn number(label: &str, text: &str) -> Result<Option<i32>, String> {
    match text.trim() {
        "" => Ok(None),
        text => text
            .parse::<i32>()
            .map(Some)
            .map_err(|_| format!("{label} is a whole number, or empty.")),
    }
}

/// A template select: empty is none.
fn named(text: &str) -> Option<TemplateChoice> {
    Some(text.trim())
        .filter(|t| !t.is_empty())
        .map(|t| TemplateChoice::Name(t.to_string()))
}

/// The settings of `/pools/{name}` (administrators).
pub async fn update_pool(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<PoolSettingsForm>, FormRejection>,
) -> Redirect {
    // Pool names are letters, digits, '-', '_' and '.': safe in a path.
    let back = if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        format!("/pools/{name}")
    } else {
        "/hosts".to_string()
    };
    let Ok(Form(form)) = form else {
        return to(
            &back,
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let session = match signed_in(&state, &headers, &form.csrf, &back).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let numbers = (
        number("The lease length", &form.default_lease_hours),
        number("The longest lease", &form.max_lease_hours),
        number("Nodes per person", &form.max_per_user),
    );
    let (default_lease_hours, max_lease_hours, max_per_user) = match numbers {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(message), _, _) | (_, Err(message), _) | (_, _, Err(message)) => {
            return to(&back, &[("err", message)]);
        }
    };
    let wake = match (&form.wake, port(&form.wake_port, "Wake-on-LAN")) {
        (None, _) => None,
        (Some(_), Ok(port)) => Some(bootler_domain::power::settings::WakeDefaults {
            broadcast: Some(form.wake_broadcast.trim().to_string()).filter(|b| !b.is_empty()),
            port,
            interface: Some(form.wake_interface.trim().to_string()).filter(|i| !i.is_empty()),
        }),
        (Some(_), Err(message)) => return to(&back, &[("err", message)]),
    };
    let change = bootler_domain::hosts::PoolChange {
        name: None,
        description: Some(form.description),
        access: Some(
            form.access
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        default_lease_hours: Some(default_lease_hours),
        max_lease_hours: Some(max_lease_hours),
        max_per_user: Some(max_per_user),
        clean_install: Some(form.clean_install.is_some()),
        system: Some(named(&form.system)),
        unattended: Some(named(&form.unattended)),
        wake: Some(wake),
    };
    match state
        .hosts
        .update_pool(&actor(&session.user), &name, &change)
        .await
    {
        Ok(pool) => to(
            &back,
            &[(
                "notice",
                format!("Saved the settings of pool {}.", pool.name),
            )],
        ),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct PowerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
}

/// The host page and its form, for a host id in the path.
async fn host_form<F>(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    form: Result<Form<F>, FormRejection>,
    csrf: impl Fn(&F) -> &str,
) -> Result<(i64, String, F, bootler_domain::accounts::Session), Redirect> {
    let Ok(host) = id.parse::<i64>() else {
        return Err(to("/hosts", &[("err", "There is no such host.")]));
    };
    let back = format!("/hosts/{host}");
    let Ok(Form(form)) = form else {
        return Err(to(
            &back,
            &[("err", "The form could not be read; please try again.")],
        ));
    };
    let session = signed_in(state, headers, csrf(&form), &back).await?;
    Ok((host, back, form, session))
}

/// The power buttons of the host page.
pub async fn power(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    form: Result<Form<PowerForm>, FormRejection>,
) -> Redirect {
    let (host, back, form, session) =
        match host_form(&state, &headers, &id, form, |f: &PowerForm| &f.csrf).await {
            Ok(parts) => parts,
            Err(redirect) => return redirect,
        };
    let back = format!("{back}#power-title");
    let Some(action) = PowerAction::parse(&form.action) else {
        return to(&back, &[("err", "That is not a power action.")]);
    };
    let result = state
        .hosts
        .request_power(
            &state.jobs,
            &actor(&session.user),
            &[host],
            PowerRequest { action, pxe: false },
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await;
    match result {
        Ok(jobs) => to(
            &back,
            &[(
                "notice",
                format!(
                    "Asked to power {} (job #{}); the page shows what the node answers.",
                    action.as_str(),
                    jobs.first().map(|j| j.id).unwrap_or_default()
                ),
            )],
        ),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

/// "Reinstall now": mark, network boot once, power cycle.
pub async fn reinstall(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    let (host, back, _form, session) =
        match host_form(&state, &headers, &id, form, |f: &CsrfForm| &f.csrf).await {
            Ok(parts) => parts,
            Err(redirect) => return redirect,
        };
    let back = format!("{back}#power-title");
    match state
        .hosts
        .reinstall(
            &state.jobs,
            &actor(&session.user),
            host,
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await
    {
        Ok((host, job)) => to(
            &back,
            &[(
                "notice",
                format!(
                    "{} is marked for a clean install and restarts now (job #{}); its timeline shows the install.",
                    host.name, job.id
                ),
            )],
        ),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

/// Administrators: "Test connection" asks each BMC for the power state.
pub async fn power_test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Redirect {
    use bootler_domain::jobs::kinds::power_state::CheckOutcome;
    let (host, back, _form, session) =
        match host_form(&state, &headers, &id, form, |f: &CsrfForm| &f.csrf).await {
            Ok(parts) => parts,
            Err(redirect) => return redirect,
        };
    let back = format!("{back}#power-title");
    match state.power.check(&actor(&session.user), host).await {
        Ok(checks) => {
            let text = checks
                .iter()
                .map(|c| format!("{}: {}", c.driver, c.detail))
                .collect::<Vec<_>>()
                .join(" ");
            let failed = checks.iter().any(|c| c.outcome == CheckOutcome::Failed);
            to(&back, &[(if failed { "err" } else { "notice" }, text)])
        }
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

#[derive(Deserialize)]
pub struct DriversForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ipmi_address: String,
    #[serde(default)]
    ipmi_port: String,
    #[serde(default)]
    ipmi_username: String,
    /// Empty: keep the stored password.
    #[serde(default)]
    ipmi_password: String,
    #[serde(default)]
    wol: Option<String>,
    #[serde(default)]
    wol_broadcast: String,
    #[serde(default)]
    wol_port: String,
    #[serde(default)]
    wol_interface: String,
}

fn port(text: &str, what: &str) -> Result<Option<u16>, String> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| format!("The {what} port is a number from 1 to 65535.")),
    }
}

/// Administrators: how the node's power is reached (IPMI first, then
/// Wake-on-LAN).
pub async fn power_drivers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<DriversForm>, FormRejection>,
) -> Redirect {
    let (host, back, form, session) =
        match host_form(&state, &headers, &id, form, |f: &DriversForm| &f.csrf).await {
            Ok(parts) => parts,
            Err(redirect) => return redirect,
        };
    let back = format!("{back}#power-title");
    let mut drivers = Vec::new();
    if !form.ipmi_address.trim().is_empty() {
        let port = match port(&form.ipmi_port, "IPMI") {
            Ok(p) => p.unwrap_or(623),
            Err(message) => return to(&back, &[("err", message)]),
        };
        drivers.push(DriverSetting::Ipmi {
            address: form.ipmi_address.trim().to_string(),
            port,
            username: form.ipmi_username.trim().to_string(),
            password: Some(form.ipmi_password.clone()).filter(|p| !p.is_empty()),
            cipher_suite: 3,
            interface: "lanplus".into(),
        });
    }
    if form.wol.is_some() {
        let port = match port(&form.wol_port, "Wake-on-LAN") {
            Ok(p) => p,
            Err(message) => return to(&back, &[("err", message)]),
        };
        drivers.push(DriverSetting::Wol {
            broadcast: Some(form.wol_broadcast.trim().to_string()).filter(|b| !b.is_empty()),
            port,
            mac: None,
            interface: Some(form.wol_interface.trim().to_string()).filter(|i| !i.is_empty()),
        });
    }
    let count = drivers.len();
    match state
        .hosts
        .set_power(
            &actor(&session.user),
            host,
            drivers,
            &state.secrets,
            chrono::Utc::now(),
        )
        .await
    {
        Ok(host) if count == 0 => to(
            &back,
            &[("notice", format!("{} has no power driver now.", host.name))],
        ),
        Ok(host) => to(
            &back,
            &[(
                "notice",
                format!("Saved how {}'s power is reached.", host.name),
            )],
        ),
        Err(err) => to(&back, &[("err", general_message(err))]),
    }
}

/// The hosts list's bulk power: without `confirm=yes`, to the page that
/// shows what it touches; with it, the request (all or none).
pub async fn bulk_power(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Redirect {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return to(
            "/hosts",
            &[("err", "The form could not be read; please try again.")],
        );
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ids: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "host")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let session = match signed_in(&state, &headers, &field("csrf"), "/hosts").await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    if ids.is_empty() {
        return to(
            "/hosts",
            &[(
                "err",
                "Select the nodes to power first (the boxes in the first column).",
            )],
        );
    }
    let action = field("action");
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    if field("confirm") != "yes" {
        return to("/power", &[("action", action), ("hosts", list)]);
    }
    let Some(parsed) = PowerAction::parse(&action) else {
        return to("/hosts", &[("err", "That is not a power action.")]);
    };
    match state
        .hosts
        .request_power(
            &state.jobs,
            &actor(&session.user),
            &ids,
            PowerRequest {
                action: parsed,
                pxe: false,
            },
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(jobs) => to(
            "/hosts",
            &[(
                "notice",
                format!(
                    "Asked to power {} {} node{}; each node's page shows its result.",
                    parsed.as_str(),
                    jobs.len(),
                    if jobs.len() == 1 { "" } else { "s" }
                ),
            )],
        ),
        Err(err) => to(
            "/power",
            &[
                ("action", action),
                ("hosts", list),
                ("err", general_message(err)),
            ],
        ),
    }
}
