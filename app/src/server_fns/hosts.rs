//! The host pages' data: the list (with filters and pools), one host with
//! its boot options, and its timeline (refetched while the page is open).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    pub id: i64,
    pub name: String,
    pub macs: Vec<String>,
    /// `discovered`, `local`, `install_pending`, `installing`, `installed`, `failed`.
    pub state: String,
    pub pool: Option<String>,
    pub holder: Option<String>,
    pub last_seen: Option<String>,
    pub last_ip: Option<String>,
    /// When the lease began and ends (`None`: no end), if held.
    pub lease_since: Option<String>,
    pub lease_until: Option<String>,
    /// `on`/`off` as last read; none: unknown.
    pub power: Option<String>,
    /// The last power action and its outcome, in words.
    pub power_last: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSummary {
    pub name: String,
    pub description: String,
    pub hosts: i64,
    /// Free for allocation now, and held by someone.
    pub free: i64,
    pub held: i64,
    /// The soonest end of a lease in it.
    pub next_lease_end: Option<String>,
    /// Lease length given at allocation, in hours (`None`: no end).
    pub lease_hours: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsView {
    pub hosts: Vec<HostSummary>,
    pub total: i64,
    /// Admins: every pool; others: the pools they may draw from.
    pub pools: Vec<PoolSummary>,
    pub admin: bool,
    pub csrf: String,
    /// A filter that could not be used, in words.
    pub filter_error: Option<String>,
}

/// Hosts per page.
pub const PAGE: i64 = 50;

#[cfg(feature = "ssr")]
fn summary(host: &bootler_domain::hosts::Host) -> HostSummary {
    use super::account::when;
    HostSummary {
        id: host.id,
        name: host.name.clone(),
        macs: host.macs.clone(),
        state: host.state.as_str().to_string(),
        pool: host.pool.clone(),
        holder: host.holder.clone(),
        last_seen: host.last_seen_at.map(when),
        last_ip: host.last_ip.clone(),
        lease_since: host.holder.as_ref().and(host.lease_started_at).map(when),
        lease_until: host.lease_ends_at.map(when),
        power: host.power.state.clone(),
        power_last: host
            .power
            .action
            .as_ref()
            .map(|a| format!("{a}: {}", host.power.result.clone().unwrap_or_default())),
    }
}

#[cfg(feature = "ssr")]
fn power_info(power: &bootler_domain::hosts::HostPower) -> PowerInfo {
    use super::account::when;
    use bootler_domain::power::PowerAction;
    use bootler_domain::power::settings::DriverSetting;
    let effective = power.effective();
    let mut info = PowerInfo {
        drivers: effective.iter().map(|d| d.kind().to_string()).collect(),
        pool_wake: power.pool_wake.as_ref().map(|w| w.describe()),
        own_drivers: !power.drivers.is_empty(),
        state: power.state.clone(),
        state_at: power.state_at.map(when),
        action: power.action.clone(),
        action_at: power.action_at.map(when),
        result: power.result.clone(),
        actions: [
            PowerAction::On,
            PowerAction::Off,
            PowerAction::Cycle,
            PowerAction::Soft,
            PowerAction::Wake,
        ]
        .into_iter()
        .filter(|a| bootler_domain::hosts::power::can(&effective, *a))
        .map(|a| a.as_str().to_string())
        .collect(),
        ..PowerInfo::default()
    };
    for driver in &power.drivers {
        match driver {
            DriverSetting::Ipmi {
                address,
                port,
                username,
                password,
                ..
            } => {
                info.ipmi_address = address.clone();
                info.ipmi_port = port.to_string();
                info.ipmi_username = username.clone();
                info.ipmi_password_set = password.is_some();
            }
            DriverSetting::Wol {
                broadcast,
                port,
                interface,
                ..
            } => {
                info.wol = true;
                info.wol_broadcast = broadcast.clone().unwrap_or_default();
                info.wol_port = port.map(|p| p.to_string()).unwrap_or_default();
                info.wol_interface = interface.clone().unwrap_or_default();
            }
        }
    }
    info
}

#[cfg(feature = "ssr")]
fn hosts_service() -> Result<bootler_domain::hosts::Hosts, ServerFnError> {
    use_context::<bootler_domain::hosts::Hosts>()
        .ok_or_else(|| ServerFnError::new("hosts service missing"))
}

#[cfg(feature = "ssr")]
fn host_actor(user: &bootler_domain::accounts::User) -> bootler_domain::hosts::Actor {
    bootler_domain::hosts::Actor {
        user_id: user.id,
        username: user.username.clone(),
        admin: user.role == bootler_domain::accounts::Role::Admin,
    }
}

/// `None` when nobody is signed in. Admins see every host; others the
/// hosts they hold.
#[server(prefix = "/sfn", endpoint = "hosts_overview")]
pub async fn hosts_overview(
    state: String,
    pool: String,
    mac: String,
    page: i64,
) -> Result<Option<HostsView>, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::hosts::{HostFilter, HostState, Mac};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let hosts = hosts_service()?;
    let user = session.user;
    let admin = user.role == Role::Admin;
    let mut filter_error = None;
    let state = match state.as_str() {
        "" => None,
        text => HostState::parse(text).or_else(|| {
            filter_error = Some(format!("“{text}” is not a host state."));
            None
        }),
    };
    let mac = match mac.trim() {
        "" => None,
        text => Mac::parse(text)
            .map_err(|reason| filter_error = Some(reason))
            .ok(),
    };
    let (list, total) = hosts
        .list(&HostFilter {
            pool: (!pool.is_empty()).then_some(pool),
            state,
            holder: (!admin).then(|| user.username.clone()),
            mac,
            limit: PAGE,
            offset: (page.max(1) - 1) * PAGE,
        })
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let pools = hosts
        .pools_for(&host_actor(&user))
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(Some(HostsView {
        hosts: list.iter().map(summary).collect(),
        total,
        pools: pools
            .into_iter()
            .map(|p| PoolSummary {
                name: p.name,
                description: p.description,
                hosts: p.hosts,
                free: p.free,
                held: p.held,
                next_lease_end: p.next_lease_end.map(super::account::when),
                lease_hours: p.default_lease_hours,
            })
            .collect(),
        admin,
        csrf: session.csrf_token,
        filter_error,
    }))
}

/// What a bulk power request would do, for its confirmation page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerPlan {
    pub action: String,
    /// (id, name, pool) of each host, in the order asked.
    pub hosts: Vec<(i64, String, Option<String>)>,
    /// Hosts that cannot be asked (not yours, no such host, no driver
    /// that can), in words.
    pub problems: Vec<String>,
    /// Power-ons per pool and window, e.g. (5, 10).
    pub pace: (u32, u64),
    pub csrf: String,
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "power_scope")]
pub async fn power_scope(
    action: String,
    hosts: String,
) -> Result<Option<PowerPlan>, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::power::PowerAction;
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let service = hosts_service()?;
    let actor = host_actor(&session.user);
    let config = use_context::<std::sync::Arc<bootler_domain::Config>>();
    let pace = config
        .map(|c| (c.power.starts_per_window, c.power.starts_window_seconds))
        .unwrap_or((5, 10));
    let parsed = PowerAction::parse(&action);
    let mut scope = PowerPlan {
        action: action.clone(),
        hosts: Vec::new(),
        problems: Vec::new(),
        pace,
        csrf: session.csrf_token,
    };
    if parsed.is_none() {
        scope.problems.push(format!(
            "“{}” is not a power action.",
            action.chars().take(20).collect::<String>()
        ));
    }
    for id in hosts
        .split(',')
        .filter_map(|t| t.trim().parse::<i64>().ok())
        .take(200)
    {
        match service.controlled(id, &actor).await {
            Ok(host) => {
                if let Some(a) = parsed
                    && !bootler_domain::hosts::power::can(&host.power.drivers, a)
                {
                    scope.problems.push(format!(
                        "{} has no power driver that can “{action}” it.",
                        host.name
                    ));
                } else {
                    scope.hosts.push((host.id, host.name, host.pool));
                }
            }
            Err(_) => scope
                .problems
                .push(format!("There is no host {id} that you hold.")),
        }
    }
    Ok(Some(scope))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOption {
    pub id: i64,
    pub name: String,
    /// `None`: global.
    pub owner: Option<String>,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub host: HostSummary,
    pub interface: String,
    /// The variables, pretty-printed JSON.
    pub vars: String,
    pub system: Option<TemplateOption>,
    pub unattended: Option<TemplateOption>,
    pub marked_by: Option<String>,
    pub state_since: String,
    pub system_templates: Vec<TemplateOption>,
    pub unattended_templates: Vec<TemplateOption>,
    pub pools: Vec<String>,
    pub admin: bool,
    /// The caller holds it.
    pub holds: bool,
    /// Out of allocation.
    pub maintenance: bool,
    /// The newest 100 events of its timeline (refreshed in the browser).
    pub timeline: Vec<TimelineEntry>,
    pub csrf: String,
    /// `boot.install_timeout_minutes`.
    pub install_timeout_minutes: u32,
    pub power: PowerInfo,
}

/// A host's power as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PowerInfo {
    /// `ipmi`, `wol`, in order.
    pub drivers: Vec<String>,
    /// The IPMI settings (administrators fill the form with them).
    pub ipmi_address: String,
    pub ipmi_port: String,
    pub ipmi_username: String,
    pub ipmi_password_set: bool,
    pub wol: bool,
    pub wol_broadcast: String,
    pub wol_port: String,
    pub wol_interface: String,
    /// The host has drivers of its own (not only its pool's).
    pub own_drivers: bool,
    /// The pool's Wake-on-LAN, described ("to 10.0.0.255:9 via eno1").
    pub pool_wake: Option<String>,
    /// `on`/`off` as last read, and when.
    pub state: Option<String>,
    pub state_at: Option<String>,
    pub action: Option<String>,
    pub action_at: Option<String>,
    pub result: Option<String>,
    /// Actions one of the drivers can do.
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPageData {
    SignedOut,
    /// Unknown, or not the caller's: the sentence to show.
    Missing(String),
    Found(Box<HostInfo>),
}

#[server(prefix = "/sfn", endpoint = "host_detail")]
pub async fn host_detail(id: String) -> Result<HostPageData, ServerFnError> {
    use super::account::when;
    use super::current_user::request_session;
    use bootler_domain::config::Config;
    use bootler_domain::templates::{Actor, Kind, Templates};
    let Some(session) = request_session().await? else {
        return Ok(HostPageData::SignedOut);
    };
    let Ok(id) = id.parse::<i64>() else {
        return Ok(HostPageData::Missing(format!(
            "“{}” is not a host number.",
            id.chars().take(40).collect::<String>()
        )));
    };
    let hosts = hosts_service()?;
    let templates =
        use_context::<Templates>().ok_or_else(|| ServerFnError::new("templates missing"))?;
    let user = session.user;
    let actor = host_actor(&user);
    let host = match hosts.controlled(id, &actor).await {
        Ok(host) => host,
        Err(bootler_domain::hosts::HostsError::NotFound(message)) => {
            return Ok(HostPageData::Missing(message));
        }
        Err(err) => return Err(ServerFnError::new(err.to_string())),
    };
    let all = templates
        .list(Actor {
            user_id: user.id,
            admin: actor.admin,
        })
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    // Usable on this host: global, the caller's own, or the holder's.
    let usable = |owner: &Option<String>| match owner {
        None => true,
        Some(owner) => *owner == user.username || host.holder.as_deref() == Some(owner.as_str()),
    };
    let option = |t: &bootler_domain::templates::Template| TemplateOption {
        id: t.id,
        name: t.name.clone(),
        owner: t.owner.clone(),
        description: t.description.clone(),
    };
    let of_kind = |kind: Kind| {
        all.iter()
            .filter(|t| t.kind == kind && usable(&t.owner))
            .map(option)
            .collect::<Vec<_>>()
    };
    let find = |chosen: &Option<bootler_domain::hosts::TemplateRef>| {
        chosen.as_ref().map(|c| {
            all.iter()
                .find(|t| t.id == c.id)
                .map(option)
                .unwrap_or(TemplateOption {
                    id: c.id,
                    name: c.name.clone(),
                    owner: None,
                    description: String::new(),
                })
        })
    };
    let pools = hosts
        .pools_for(&host_actor(&user))
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let timeout = use_context::<std::sync::Arc<Config>>()
        .map(|c| c.boot.install_timeout_minutes)
        .unwrap_or(120);
    Ok(HostPageData::Found(Box::new(HostInfo {
        host: summary(&host),
        interface: host.interface.clone(),
        vars: serde_json::to_string_pretty(&host.vars).unwrap_or_else(|_| "{}".into()),
        system: find(&host.system),
        unattended: find(&host.unattended),
        marked_by: host.marked_by.clone(),
        state_since: when(host.state_changed_at),
        system_templates: of_kind(Kind::System),
        unattended_templates: of_kind(Kind::Unattended),
        pools: pools.into_iter().map(|p| p.name).collect(),
        admin: actor.admin,
        holds: host.holder_id == Some(user.id),
        maintenance: host.maintenance,
        timeline: hosts
            .timeline(id, 100)
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?
            .into_iter()
            .map(timeline_entry)
            .collect(),
        csrf: session.csrf_token,
        install_timeout_minutes: timeout,
        power: power_info(&host.power),
    })))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub id: i64,
    pub at: String,
    pub source_ip: Option<String>,
    pub kind: String,
    pub detail: String,
}

/// The newest 100 events of a host's timeline (empty for others' hosts).
#[server(prefix = "/sfn", endpoint = "host_timeline")]
pub async fn host_timeline(id: String) -> Result<Vec<TimelineEntry>, ServerFnError> {
    use super::current_user::request_session;
    let Some(session) = request_session().await? else {
        return Ok(Vec::new());
    };
    let Ok(id) = id.parse::<i64>() else {
        return Ok(Vec::new());
    };
    let hosts = hosts_service()?;
    if hosts
        .controlled(id, &host_actor(&session.user))
        .await
        .is_err()
    {
        return Ok(Vec::new());
    }
    let events = hosts
        .timeline(id, 100)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(events.into_iter().map(timeline_entry).collect())
}

#[cfg(feature = "ssr")]
fn timeline_entry(e: bootler_domain::hosts::HostEvent) -> TimelineEntry {
    TimelineEntry {
        id: e.id,
        at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        source_ip: e.source_ip,
        kind: e.kind,
        detail: e.detail,
    }
}

/// A pool's settings, for its page (administrators).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSettingsView {
    pub name: String,
    pub description: String,
    /// Usernames, comma-separated; empty: everyone.
    pub access: String,
    pub default_lease_hours: Option<i32>,
    pub max_lease_hours: Option<i32>,
    pub max_per_user: Option<i32>,
    pub clean_install: bool,
    pub system: Option<String>,
    pub unattended: Option<String>,
    /// Its nodes wake on LAN, with these (empty: the default).
    pub wake: bool,
    pub wake_broadcast: String,
    pub wake_port: String,
    pub wake_interface: String,
    pub hosts: i64,
    pub free: i64,
    pub held: i64,
    /// Global templates of each kind, by name.
    pub system_templates: Vec<String>,
    pub unattended_templates: Vec<String>,
    pub csrf: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolPageData {
    SignedOut,
    /// Not an admin, or no such pool: the sentence to show.
    Missing(String),
    Found(Box<PoolSettingsView>),
}

#[server(prefix = "/sfn", endpoint = "pool_settings")]
pub async fn pool_settings(name: String) -> Result<PoolPageData, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::templates::{Actor, Kind, Templates};
    let Some(session) = request_session().await? else {
        return Ok(PoolPageData::SignedOut);
    };
    let user = session.user;
    let actor = host_actor(&user);
    if !actor.admin {
        return Ok(PoolPageData::Missing(
            "Only administrators change pools.".into(),
        ));
    }
    let hosts = hosts_service()?;
    let Some(pool) = hosts
        .pool(&name)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?
    else {
        return Ok(PoolPageData::Missing(format!(
            "There is no pool “{}”.",
            name.chars().take(70).collect::<String>()
        )));
    };
    let templates =
        use_context::<Templates>().ok_or_else(|| ServerFnError::new("templates missing"))?;
    let all = templates
        .list(Actor {
            user_id: user.id,
            admin: true,
        })
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let global = |kind: Kind| {
        all.iter()
            .filter(|t| t.kind == kind && t.owner.is_none())
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    Ok(PoolPageData::Found(Box::new(PoolSettingsView {
        name: pool.name,
        description: pool.description,
        access: pool.access.join(", "),
        default_lease_hours: pool.default_lease_hours,
        max_lease_hours: pool.max_lease_hours,
        max_per_user: pool.max_per_user,
        clean_install: pool.clean_install,
        system: pool.system,
        unattended: pool.unattended,
        wake: pool.wake.is_some(),
        wake_broadcast: pool
            .wake
            .as_ref()
            .and_then(|w| w.broadcast.clone())
            .unwrap_or_default(),
        wake_port: pool
            .wake
            .as_ref()
            .and_then(|w| w.port)
            .map(|p| p.to_string())
            .unwrap_or_default(),
        wake_interface: pool
            .wake
            .as_ref()
            .and_then(|w| w.interface.clone())
            .unwrap_or_default(),
        hosts: pool.hosts,
        free: pool.free,
        held: pool.held,
        system_templates: global(Kind::System),
        unattended_templates: global(Kind::Unattended),
        csrf: session.csrf_token,
    })))
}
