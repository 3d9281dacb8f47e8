//! Physical nodes and what they are told when they boot (thesis §4.2, §5.1,
//! listings A.3–A.4). A node PXE-boots into iPXE, which chains to
//! `/boot/{mac}`; a MAC never seen before registers a host in state
//! `discovered`; a host that is not marked for an install boots from its
//! local disk. Every boot request is an event on the host's timeline.

mod bootlog;
mod cache;
mod installs;
mod leases;
mod mac;
mod network;
mod pools;
pub mod power;
mod provision;
pub mod scripts;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Db;
use crate::jobs::Events;
use crate::templates::{Kind, Sandbox};
pub use leases::{AllocateRequest, AuditEntry, AuditFilter, LeaseNotice, Quota};
pub use mac::Mac;
pub use network::Network;
pub use pools::{Availability, Pool, PoolChange, Slot, SlotStatus};
pub use provision::{Actor, Served, TemplateChoice};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Called the boot endpoint once; not enrolled into a pool yet.
    Discovered,
    /// Boots from its local disk.
    Local,
    /// Marked: the next boot gets the install.
    InstallPending,
    /// The system script was served; the installer runs.
    Installing,
    /// The installer said it is done.
    Installed,
    /// The install did not finish in time.
    Failed,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Discovered => "discovered",
            HostState::Local => "local",
            HostState::InstallPending => "install_pending",
            HostState::Installing => "installing",
            HostState::Installed => "installed",
            HostState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<HostState> {
        Some(match text {
            "discovered" => HostState::Discovered,
            "local" => HostState::Local,
            "install_pending" => HostState::InstallPending,
            "installing" => HostState::Installing,
            "installed" => HostState::Installed,
            "failed" => HostState::Failed,
            _ => return None,
        })
    }
}

/// A host as lists and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    pub id: i64,
    pub name: String,
    /// `52:54:00:12:34:56`, sorted.
    pub macs: Vec<String>,
    pub state: HostState,
    pub pool: Option<String>,
    pub holder: Option<String>,
    /// When the current lease began and ends (none: no end).
    pub lease_started_at: Option<DateTime<Utc>>,
    pub lease_ends_at: Option<DateTime<Utc>>,
    /// Out of allocation (an administrator's repair).
    pub maintenance: bool,
    pub interface: String,
    pub vars: serde_json::Value,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
    pub state_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The boot options: the system and unattended templates chosen.
    pub system: Option<TemplateRef>,
    pub unattended: Option<TemplateRef>,
    /// Who marked the host for its current or last install.
    pub marked_by: Option<String>,
    #[serde(skip)]
    pub holder_id: Option<i64>,
    #[serde(skip)]
    pub marked_by_id: Option<i64>,
    #[serde(skip)]
    pub pool_id: Option<i64>,
    /// Its power drivers, the state last read and the last action.
    pub power: HostPower,
}

/// A host's power, as the API shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostPower {
    /// As stored (passwords sealed); shown without them.
    pub drivers: Vec<crate::power::settings::DriverSetting>,
    /// `on` or `off` as last read; none: never read (Wake-on-LAN only).
    pub state: Option<String>,
    pub state_at: Option<DateTime<Utc>>,
    pub action: Option<String>,
    pub action_at: Option<DateTime<Utc>>,
    /// `queued`, `sent`, `confirmed`, or `failed: <reason>`.
    pub result: Option<String>,
    /// Its pool's Wake-on-LAN settings.
    pub pool_wake: Option<crate::power::settings::WakeDefaults>,
}

impl HostPower {
    /// The drivers the host is reached by: its own and its pool's.
    pub fn effective(&self) -> Vec<crate::power::settings::DriverSetting> {
        crate::power::settings::effective(&self.drivers, self.pool_wake.as_ref())
    }
}

impl Serialize for HostPower {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "drivers": self.drivers.iter().map(|d| d.public()).collect::<Vec<_>>(),
            "pool_wake": self.pool_wake,
            "effective": self.effective().iter().map(|d| d.public()).collect::<Vec<_>>(),
            "state": self.state,
            "state_at": self.state_at,
            "action": self.action,
            "action_at": self.action_at,
            "result": self.result,
        })
        .serialize(serializer)
    }
}

/// A template chosen as a boot option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateRef {
    pub id: i64,
    pub name: String,
}

/// One entry of a host's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HostEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub source_ip: Option<String>,
    /// `discovered`, `boot`, `unattended`, `done`, `state`, `render_error`…
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// A template did not render (the text names template, line, reason).
    #[error("{0}")]
    Render(String),
    /// Templates cannot be rendered at all right now (Bootler's problem).
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The rules of the boot endpoints (from `[boot]`).
#[derive(Debug, Clone)]
pub struct BootSettings {
    /// Where links in scripts point, without a trailing slash.
    pub base_url: String,
    pub allowed_networks: Vec<Network>,
    pub discovery_per_minute: u32,
    pub max_discovered: u32,
    /// How long an install may run before the watchdog calls it failed.
    pub install_timeout: std::time::Duration,
    /// Hosts one person may hold at once unless their account says
    /// otherwise; 0: no limit.
    pub max_hosts_per_user: u32,
    /// How long before a lease ends its holder is reminded, longest first.
    pub lease_reminders: Vec<chrono::Duration>,
}

/// What a node is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootAnswer {
    /// The host, unless it could not be registered (discovery limits).
    pub host_id: Option<i64>,
    pub script: String,
}

/// A token bucket: `per_minute` new hosts a minute, in bursts of as many.
struct Limiter {
    per_minute: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute: f64::from(per_minute),
            state: Mutex::new((f64::from(per_minute), Instant::now())),
        }
    }

    fn allow(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The largest `vars` object accepted, serialized.
pub const MAX_VARS: usize = 64 * 1024;

/// What `PUT /api/v1/hosts/{id}` may change. `None`: leave as it is;
/// `Some(None)` for `pool`, `system` and `unattended`: clear it.
#[derive(Debug, Clone, Default)]
pub struct HostChange {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub vars: Option<serde_json::Value>,
    /// A pool's name (admins). Enrolling a discovered host makes it `local`.
    pub pool: Option<Option<String>>,
    pub system: Option<Option<TemplateChoice>>,
    pub unattended: Option<Option<TemplateChoice>>,
    /// The host's MAC addresses, all of them (admins).
    pub macs: Option<Vec<String>>,
    /// Out of allocation for repairs (admins).
    pub maintenance: Option<bool>,
}

impl HostChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.interface.is_none()
            && self.vars.is_none()
            && self.pool.is_none()
            && self.system.is_none()
            && self.unattended.is_none()
            && self.macs.is_none()
            && self.maintenance.is_none()
    }
}

/// Which hosts to list.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    pub pool: Option<String>,
    pub state: Option<HostState>,
    /// A holder's username.
    pub holder: Option<String>,
    pub mac: Option<Mac>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone)]
pub struct Hosts {
    db: Db,
    settings: Arc<BootSettings>,
    discovery: Arc<Limiter>,
    events: Events,
    log: bootlog::BootLog,
    /// Served installs, committed in groups.
    installs: installs::Installs,
    cache: Arc<cache::BootCache>,
    sandbox: Sandbox,
    /// Where people's groups come from (pool access `@group`).
    directory: crate::directory::SharedDirectory,
}

#[derive(sqlx::FromRow)]
struct HostRow {
    id: i64,
    name: String,
    state: String,
    pool: Option<String>,
    holder: Option<String>,
    interface: String,
    vars: String,
    last_seen_at: Option<DateTime<Utc>>,
    last_ip: Option<String>,
    state_changed_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    holder_id: Option<i64>,
    system_id: Option<i64>,
    system_name: Option<String>,
    unattended_id: Option<i64>,
    unattended_name: Option<String>,
    marked_by: Option<String>,
    marked_by_id: Option<i64>,
    pool_id: Option<i64>,
    lease_started_at: Option<DateTime<Utc>>,
    lease_ends_at: Option<DateTime<Utc>>,
    maintenance: bool,
    power: String,
    power_state: Option<String>,
    power_state_at: Option<DateTime<Utc>>,
    power_action: Option<String>,
    power_action_at: Option<DateTime<Utc>>,
    power_result: Option<String>,
    pool_wake: Option<String>,
    mac: Option<String>,
}

/// Rows of hosts joined with their MACs (one row per MAC) into hosts.
fn group(rows: Vec<HostRow>) -> Vec<Host> {
    let mut hosts: Vec<Host> = Vec::new();
    for row in rows {
        if let Some(last) = hosts.last_mut()
            && last.id == row.id
        {
            last.macs.extend(row.mac);
            continue;
        }
        hosts.push(Host {
            id: row.id,
            name: row.name,
            macs: row.mac.into_iter().collect(),
            state: HostState::parse(&row.state).unwrap_or(HostState::Discovered),
            pool: row.pool,
            holder: row.holder,
            lease_started_at: row.lease_started_at,
            lease_ends_at: row.lease_ends_at,
            maintenance: row.maintenance,
            interface: row.interface,
            vars: serde_json::from_str(&row.vars).unwrap_or_default(),
            last_seen_at: row.last_seen_at,
            last_ip: row.last_ip,
            state_changed_at: row.state_changed_at,
            created_at: row.created_at,
            system: row
                .system_id
                .zip(row.system_name)
                .map(|(id, name)| TemplateRef { id, name }),
            unattended: row
                .unattended_id
                .zip(row.unattended_name)
                .map(|(id, name)| TemplateRef { id, name }),
            marked_by: row.marked_by,
            holder_id: row.holder_id,
            marked_by_id: row.marked_by_id,
            pool_id: row.pool_id,
            power: HostPower {
                drivers: serde_json::from_str(&row.power).unwrap_or_default(),
                state: row.power_state,
                state_at: row.power_state_at,
                action: row.power_action,
                action_at: row.power_action_at,
                result: row.power_result,
                pool_wake: row
                    .pool_wake
                    .as_deref()
                    .and_then(|w| serde_json::from_str(w).ok()),
            },
        });
    }
    for host in &mut hosts {
        host.macs.sort();
    }
    hosts
}

/// `SELECT` of hosts with pool, holder and one row per MAC.
macro_rules! select_hosts {
    ($inner:literal) => {
        concat!(
            "SELECT h.id, h.name, h.state, p.name AS pool, u.username AS holder, h.interface, h.vars, \
             h.last_seen_at, h.last_ip, h.state_changed_at, h.created_at, h.holder_id, \
             st.id AS system_id, st.name AS system_name, ut.id AS unattended_id, ut.name AS unattended_name, \
             mb.username AS marked_by, h.marked_by AS marked_by_id, h.pool_id, \
             h.lease_started_at, h.lease_ends_at, h.maintenance, h.power, h.power_state, h.power_state_at, \
             h.power_action, h.power_action_at, h.power_result, p.wake AS pool_wake, m.mac \
             FROM (",
            $inner,
            ") h LEFT JOIN pools p ON p.id = h.pool_id LEFT JOIN users u ON u.id = h.holder_id \
             LEFT JOIN templates st ON st.id = h.system_template_id \
             LEFT JOIN templates ut ON ut.id = h.unattended_template_id \
             LEFT JOIN users mb ON mb.id = h.marked_by \
             LEFT JOIN host_macs m ON m.host_id = h.id ORDER BY h.id, m.mac"
        )
    };
}

/// A host's MAC addresses as given to `PUT`: at least one, no repeats,
/// at most 16.
fn parse_macs(list: &[String]) -> Result<Vec<Mac>, HostsError> {
    if list.is_empty() || list.len() > 16 {
        return Err(HostsError::Invalid(
            "A host has between 1 and 16 MAC addresses.".into(),
        ));
    }
    let mut macs = Vec::with_capacity(list.len());
    for text in list {
        let mac = Mac::parse(text).map_err(HostsError::Invalid)?;
        if macs.contains(&mac) {
            return Err(HostsError::Invalid(format!("{mac} is listed twice.")));
        }
        macs.push(mac);
    }
    macs.sort_by_key(|m| m.to_string());
    Ok(macs)
}

/// A host name from DHCP (`?hostname=`): an RFC 1123 name, lower-cased;
/// anything else is ignored (a default name is used instead).
pub fn valid_hostname(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    ok.then_some(name)
}

impl Hosts {
    pub fn new(db: Db, settings: BootSettings, events: Events) -> Hosts {
        let cache = Arc::new(cache::BootCache::default());
        let weak = Arc::downgrade(&cache);
        crate::changes::watch_hosts(weak);
        let log = bootlog::BootLog::start(db.clone());
        Hosts {
            discovery: Arc::new(Limiter::new(settings.discovery_per_minute)),
            installs: installs::Installs::start(
                db.clone(),
                log.clone(),
                events.clone(),
                Arc::clone(&cache),
            ),
            log,
            settings: Arc::new(settings),
            events,
            cache,
            sandbox: Sandbox::in_process(),
            directory: Arc::new(crate::directory::Builtin::new(db.clone())),
            db,
        }
    }

    /// Asks `directory` (the configured one) for people's groups; the
    /// built-in directory by default.
    pub fn with_directory(mut self, directory: crate::directory::SharedDirectory) -> Hosts {
        self.directory = directory;
        self
    }

    /// Renders templates in `sandbox` (the server's worker processes)
    /// instead of in this process.
    pub fn with_sandbox(mut self, sandbox: Sandbox) -> Hosts {
        self.sandbox = sandbox;
        self
    }

    pub fn settings(&self) -> &BootSettings {
        &self.settings
    }

    /// Whether `ip` may call the boot endpoints.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.settings.allowed_networks.is_empty()
            || self
                .settings
                .allowed_networks
                .iter()
                .any(|n| n.contains(ip))
    }

    /// `GET /boot/{mac}`: registers or refreshes the host and answers its
    /// script: the rendered system script once if it is marked, else
    /// "boot from the local disk".
    pub async fn boot(
        &self,
        mac: Mac,
        hostname: Option<&str>,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<BootAnswer, HostsError> {
        let hostname = hostname.and_then(valid_hostname);
        let ip_text = ip.to_string();
        // A known host: from memory (or one read); its "last seen" is
        // written behind the answer, with the timeline row.
        let host = match self.cached(mac).await? {
            Some(host) => self.cache.seen_at(&host, &ip_text),
            None => {
                let found = match self
                    .discover(mac, hostname.as_deref(), &ip_text, now)
                    .await?
                {
                    Some(_) => self.cached(mac).await?,
                    None => None,
                };
                let Some(host) = found else {
                    return Ok(BootAnswer {
                        host_id: None,
                        script: scripts::local_boot(None, mac),
                    });
                };
                host
            }
        };
        if host.state == HostState::InstallPending {
            // "Last seen" goes with the install (or with what is served
            // instead), so the timeline writer has nothing to flush first.
            let script = self.serve_install(&host, mac, &ip_text, now).await?;
            return Ok(BootAnswer {
                host_id: Some(host.id),
                script,
            });
        }
        let detail = match host.state {
            HostState::Installing => {
                "served the local-boot script (an install is running; it is served once)"
            }
            _ => "served the local-boot script",
        };
        self.log.push(bootlog::Seen {
            host: host.id,
            at: now,
            source_ip: Some(ip_text),
            kind: "boot".into(),
            detail: detail.into(),
            refresh: true,
        });
        Ok(BootAnswer {
            host_id: Some(host.id),
            script: scripts::local_boot(Some(&host.name), mac),
        })
    }

    /// The host with `mac`: from memory if it is there, else read (and
    /// kept for the next boot request).
    async fn cached(&self, mac: Mac) -> Result<Option<Arc<Host>>, HostsError> {
        if let Some(host) = self.cache.host(mac) {
            return Ok(Some(host));
        }
        let ticket = self.cache.ticket();
        let rows: Vec<HostRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_hosts!(
                "SELECT * FROM hosts WHERE id = (SELECT host_id FROM host_macs WHERE mac = $1)"
            ))
            .bind(mac.to_string())
            .fetch_all(pool)
            .await
        })?;
        Ok(group(rows)
            .into_iter()
            .next()
            .map(|host| self.cache.put_host(host, ticket)))
    }

    async fn id_of(&self, mac: Mac) -> Result<Option<i64>, sqlx::Error> {
        crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT host_id FROM host_macs WHERE mac = $1")
                .bind(mac.to_string())
                .fetch_optional(pool)
                .await
        })
    }

    /// Registers a new host for `mac`, within the discovery limits; `None`
    /// when a limit says no. Two first requests of one MAC at once make one
    /// host.
    async fn discover(
        &self,
        mac: Mac,
        hostname: Option<&str>,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, HostsError> {
        let waiting: i64 = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE state = 'discovered'")
                .fetch_one(pool)
                .await
        })?;
        if waiting >= i64::from(self.settings.max_discovered) {
            tracing::warn!(%mac, waiting, "not registering a new node: too many hosts wait in state discovered (boot.max_discovered)");
            return Ok(None);
        }
        if !self.discovery.allow() {
            tracing::warn!(%mac, "not registering a new node: too many new MACs this minute (boot.discovery_per_minute)");
            return Ok(None);
        }
        let name = hostname
            .map(str::to_string)
            .unwrap_or_else(|| format!("node-{}", mac.compact()));
        let mut tx = self.db.begin().await?;
        let id: i64 = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "INSERT INTO hosts (name, state, last_seen_at, last_ip, state_changed_at, created_at, updated_at) \
                 VALUES ($1, 'discovered', $2, $3, $2, $2, $2) RETURNING id",
            )
            .bind(&name)
            .bind(now)
            .bind(ip)
            .fetch_one(conn)
            .await
        })?;
        let inserted = crate::with_tx!(&mut tx, conn => {
            sqlx::query("INSERT INTO host_macs (mac, host_id) VALUES ($1, $2)")
                .bind(mac.to_string())
                .bind(id)
                .execute(conn)
                .await
                .map(|_| ())
        });
        match inserted {
            Ok(_) => {}
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                // Another request registered it a moment ago.
                drop(tx);
                return Ok(self.id_of(mac).await?);
            }
            Err(err) => return Err(err.into()),
        }
        tx.commit().await?;
        tracing::info!(host = id, %mac, %name, "new node discovered");
        self.record(
            id,
            now,
            Some(ip),
            "discovered",
            &format!("first boot request from {mac}; registered as {name}"),
        )
        .await?;
        Ok(Some(id))
    }

    /// Sets a host's "last seen" behind the answer.
    fn seen(&self, host: i64, at: DateTime<Utc>, source_ip: &str) {
        self.log.push(bootlog::Seen {
            host,
            at,
            source_ip: Some(source_ip.to_string()),
            kind: "".into(),
            detail: "".into(),
            refresh: true,
        });
    }

    /// Adds an event to a host's timeline, behind the answer (see
    /// [`bootlog`]); reads of the timeline wait for it.
    pub async fn record(
        &self,
        host: i64,
        at: DateTime<Utc>,
        source_ip: Option<&str>,
        kind: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        self.log.push(bootlog::Seen {
            host,
            at,
            source_ip: source_ip.map(str::to_string),
            kind: kind.to_string().into(),
            detail: detail.to_string().into(),
            refresh: false,
        });
        Ok(())
    }

    /// Waits until the timeline rows and "last seen" times queued so far
    /// are written (at shutdown; reads do it themselves).
    pub async fn flush(&self) {
        self.log.flush().await;
    }

    /// The host a boot request names, for `/unattended` and `/done` (from
    /// memory if it is there).
    pub async fn by_mac(&self, mac: Mac) -> Result<Option<Arc<Host>>, HostsError> {
        self.cached(mac).await
    }

    /// The host, with every boot request made so far accounted for.
    pub async fn get(&self, id: i64) -> Result<Option<Host>, HostsError> {
        self.log.flush().await;
        self.fetch(id).await
    }

    /// The host as the database has it now (its "last seen" may lag).
    async fn fetch(&self, id: i64) -> Result<Option<Host>, HostsError> {
        let rows: Vec<HostRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_hosts!("SELECT * FROM hosts WHERE id = $1"))
                .bind(id)
                .fetch_all(pool)
                .await
        })?;
        Ok(group(rows).into_iter().next())
    }

    /// Hosts matching `filter`, by id.
    pub async fn list(&self, filter: &HostFilter) -> Result<(Vec<Host>, i64), HostsError> {
        self.log.flush().await;
        let pool_name = filter.pool.clone().unwrap_or_default();
        let state = filter.state.map(HostState::as_str).unwrap_or_default();
        let holder = filter.holder.clone().unwrap_or_default();
        let mac = filter.mac.map(|m| m.to_string()).unwrap_or_default();
        let limit = filter.limit.clamp(1, 500);
        let offset = filter.offset.max(0);
        let (rows, total): (Vec<HostRow>, i64) = crate::with_pool!(&self.db, pool => {
            let rows = sqlx::query_as(select_hosts!(
                "SELECT * FROM hosts WHERE \
                 ($1 = '' OR pool_id = (SELECT id FROM pools WHERE name = $1)) \
                 AND ($2 = '' OR state = $2) \
                 AND ($3 = '' OR holder_id = (SELECT id FROM users WHERE username = $3)) \
                 AND ($4 = '' OR id IN (SELECT host_id FROM host_macs WHERE mac = $4)) \
                 ORDER BY id LIMIT $5 OFFSET $6"
            ))
            .bind(&pool_name)
            .bind(state)
            .bind(&holder)
            .bind(&mac)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM hosts WHERE \
                 ($1 = '' OR pool_id = (SELECT id FROM pools WHERE name = $1)) \
                 AND ($2 = '' OR state = $2) \
                 AND ($3 = '' OR holder_id = (SELECT id FROM users WHERE username = $3)) \
                 AND ($4 = '' OR id IN (SELECT host_id FROM host_macs WHERE mac = $4))",
            )
            .bind(&pool_name)
            .bind(state)
            .bind(&holder)
            .bind(&mac)
            .fetch_one(pool)
            .await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        Ok((group(rows), total))
    }

    /// Changes a host's name, installer interface, variables, boot options,
    /// pool or MACs; each change is an event on its timeline, naming who
    /// made it. Pool and MACs are for administrators; the rest also for
    /// the holder.
    pub async fn update(
        &self,
        id: i64,
        change: HostChange,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.controlled(id, actor).await?;
        if !actor.admin
            && (change.pool.is_some() || change.macs.is_some() || change.maintenance.is_some())
        {
            return Err(HostsError::Forbidden(
                "Only administrators move hosts between pools, change their MAC addresses or put them in maintenance."
                    .into(),
            ));
        }
        let name = match &change.name {
            Some(name) => valid_hostname(name).ok_or_else(|| {
                HostsError::Invalid(format!(
                    "“{}” is not a host name: letters, digits and '-', in dot-separated parts of at most 63 characters.",
                    name.chars().take(70).collect::<String>()
                ))
            })?,
            None => host.name.clone(),
        };
        let interface = match &change.interface {
            Some(interface) => {
                let ok = !interface.is_empty()
                    && interface.len() <= 15
                    && interface
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(HostsError::Invalid(format!(
                        "“{}” is not a network interface name (1 to 15 letters, digits, '-', '_' or '.', like eth0 or enp3s0).",
                        interface.chars().take(20).collect::<String>()
                    )));
                }
                interface.clone()
            }
            None => host.interface.clone(),
        };
        let vars = match &change.vars {
            Some(vars) if !vars.is_object() => {
                return Err(HostsError::Invalid(
                    "`vars` is a JSON object, such as {\"disk\": \"sda\"}.".into(),
                ));
            }
            Some(vars) if vars.to_string().len() > MAX_VARS => {
                return Err(HostsError::Invalid(format!(
                    "`vars` is larger than {MAX_VARS} bytes."
                )));
            }
            Some(vars) => vars.clone(),
            None => host.vars.clone(),
        };
        let pool = match &change.pool {
            None => None,
            Some(None) => Some(None),
            Some(Some(name)) => Some(Some(self.pool_id(name).await?)),
        };
        let system = match &change.system {
            None => host.system.clone(),
            Some(None) => None,
            Some(Some(choice)) => Some(self.choose(choice, Kind::System, &host, actor).await?),
        };
        let unattended = match &change.unattended {
            None => host.unattended.clone(),
            Some(None) => None,
            Some(Some(choice)) => Some(self.choose(choice, Kind::Unattended, &host, actor).await?),
        };
        let macs = match &change.macs {
            None => None,
            Some(list) => Some(parse_macs(list)?),
        };
        let mut tx = self.db.begin().await?;
        let (pool_given, pool_id) = match pool {
            None => (false, None),
            Some(id) => (true, id),
        };
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE hosts SET name = $1, interface = $2, vars = $3, updated_at = $4, \
                 system_template_id = $5, unattended_template_id = $6, \
                 pool_id = CASE WHEN $7 THEN $8 ELSE pool_id END, \
                 state = CASE WHEN $7 AND $8 IS NOT NULL AND state = 'discovered' THEN 'local' ELSE state END, \
                 state_changed_at = CASE WHEN $7 AND $8 IS NOT NULL AND state = 'discovered' THEN $4 ELSE state_changed_at END, \
                 maintenance = COALESCE($10, maintenance) \
                 WHERE id = $9",
            )
            .bind(&name)
            .bind(&interface)
            .bind(vars.to_string())
            .bind(now)
            .bind(system.as_ref().map(|t| t.id))
            .bind(unattended.as_ref().map(|t| t.id))
            .bind(pool_given)
            .bind(pool_id)
            .bind(id)
            .bind(change.maintenance)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        if let Some(macs) = &macs {
            crate::with_tx!(&mut tx, conn => {
                sqlx::query("DELETE FROM host_macs WHERE host_id = $1")
                    .bind(id)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
            for mac in macs {
                let inserted = crate::with_tx!(&mut tx, conn => {
                    sqlx::query("INSERT INTO host_macs (mac, host_id) VALUES ($1, $2)")
                        .bind(mac.to_string())
                        .bind(id)
                        .execute(conn)
                        .await
                        .map(|_| ())
                });
                match inserted {
                    Ok(()) => {}
                    Err(err) if crate::db::unique_violation(&err).is_some() => {
                        drop(tx);
                        let other = self.id_of(*mac).await?.unwrap_or_default();
                        return Err(HostsError::Conflict(format!(
                            "{mac} belongs to host {other}; remove it there first."
                        )));
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.cache.forget_host(id);
        let mut changed = Vec::new();
        if name != host.name {
            changed.push(format!("name {} → {name}", host.name));
        }
        if interface != host.interface {
            changed.push(format!("interface {} → {interface}", host.interface));
        }
        if vars != host.vars {
            changed.push("vars".to_string());
        }
        let label = |t: &Option<TemplateRef>| {
            t.as_ref()
                .map(|t| format!("“{}”", t.name))
                .unwrap_or_else(|| "none".into())
        };
        if system != host.system {
            changed.push(format!(
                "system template {} → {}",
                label(&host.system),
                label(&system)
            ));
        }
        if unattended != host.unattended {
            changed.push(format!(
                "unattended template {} → {}",
                label(&host.unattended),
                label(&unattended)
            ));
        }
        if let Some(Some(pool)) = &change.pool
            && host.pool.as_deref() != Some(pool.as_str())
        {
            changed.push(format!(
                "pool {} → {pool}",
                host.pool.as_deref().unwrap_or("none")
            ));
        }
        if let Some(None) = &change.pool
            && let Some(old) = &host.pool
        {
            changed.push(format!("pool {old} → none"));
        }
        if let Some(on) = change.maintenance
            && on != host.maintenance
        {
            changed.push(if on {
                "maintenance on (out of allocation)".to_string()
            } else {
                "maintenance off".to_string()
            });
        }
        if let Some(macs) = &macs {
            let new: Vec<String> = macs.iter().map(Mac::to_string).collect();
            if new != host.macs {
                changed.push(format!("MACs → {}", new.join(", ")));
            }
        }
        if !changed.is_empty() {
            self.record(
                id,
                now,
                None,
                "changed",
                &format!("{} changed {}", actor.username, changed.join(", ")),
            )
            .await?;
        }
        self.controlled(id, actor).await
    }

    async fn pool_id(&self, name: &str) -> Result<i64, HostsError> {
        let id: Option<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT id FROM pools WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        id.ok_or_else(|| {
            HostsError::Invalid(format!(
                "There is no pool “{}”.",
                name.chars().take(70).collect::<String>()
            ))
        })
    }

    /// Resolves a template for a boot option: of the right kind, and global
    /// or private to the person choosing it or to the host's holder.
    async fn choose(
        &self,
        choice: &TemplateChoice,
        kind: Kind,
        host: &Host,
        actor: &Actor,
    ) -> Result<TemplateRef, HostsError> {
        let row: Option<(i64, String, String, Option<i64>)> = match choice {
            TemplateChoice::Id(tid) => crate::with_pool!(&self.db, pool => {
                sqlx::query_as("SELECT id, name, kind, owner_id FROM templates WHERE id = $1")
                    .bind(tid)
                    .fetch_optional(pool)
                    .await
            })?,
            TemplateChoice::Name(name) => crate::with_pool!(&self.db, pool => {
                sqlx::query_as(
                    "SELECT id, name, kind, owner_id FROM templates \
                     WHERE name = $1 AND kind = $2 AND (owner_id IS NULL OR owner_id = $3 OR owner_id = $4) \
                     ORDER BY owner_id IS NULL, owner_id = $3 DESC LIMIT 1",
                )
                .bind(name)
                .bind(kind.as_str())
                .bind(actor.user_id)
                .bind(host.holder_id)
                .fetch_optional(pool)
                .await
            })?,
        };
        let shown = match choice {
            TemplateChoice::Id(tid) => format!("{tid}"),
            TemplateChoice::Name(name) => {
                format!("“{}”", name.chars().take(70).collect::<String>())
            }
        };
        let Some((tid, name, found_kind, owner)) = row else {
            return Err(HostsError::Invalid(format!(
                "There is no {} template {shown} you can use.",
                kind.as_str()
            )));
        };
        let usable = owner.is_none() || owner == Some(actor.user_id) || owner == host.holder_id;
        if !usable {
            return Err(HostsError::Invalid(format!(
                "There is no {} template {shown} you can use.",
                kind.as_str()
            )));
        }
        if found_kind != kind.as_str() {
            return Err(HostsError::Invalid(format!(
                "“{name}” is a {found_kind} template; the {} option takes a {} template.",
                kind.as_str(),
                kind.as_str()
            )));
        }
        Ok(TemplateRef { id: tid, name })
    }

    /// The newest `limit` events of a host's timeline, newest first.
    pub async fn timeline(&self, host: i64, limit: i64) -> Result<Vec<HostEvent>, HostsError> {
        self.log.flush().await;
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, at, source_ip, kind, detail FROM host_events WHERE host_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(host)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await
        })?)
    }
}
