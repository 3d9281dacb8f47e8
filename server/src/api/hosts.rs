//! `/api/v1/hosts`: the host registry. Admins see every host; others the
//! hosts they hold.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use bootler_domain::accounts::{Role, User};
use bootler_domain::hosts::power::PowerRequest;
use bootler_domain::hosts::{
    Actor, AllocateRequest, AuditFilter, HostChange, HostFilter, HostState, HostsError, Mac,
    PoolChange, TemplateChoice,
};
use bootler_domain::power::PowerAction;
use bootler_domain::power::settings::{DriverSetting, settle};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::Caller;
use crate::state::AppState;

impl From<HostsError> for ApiError {
    fn from(err: HostsError) -> Self {
        match err {
            HostsError::NotFound(message) => ApiError::NotFound(message),
            HostsError::Invalid(message) | HostsError::Render(message) => {
                ApiError::Unprocessable(message)
            }
            HostsError::Forbidden(message) => ApiError::Forbidden(message),
            HostsError::Conflict(message) => ApiError::Conflict(message),
            HostsError::Database(err) => ApiError::Internal(err.into()),
            HostsError::Unavailable(message) => ApiError::Unavailable(message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pool: Option<String>,
    state: Option<String>,
    holder: Option<String>,
    mac: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/hosts?pool=&state=&holder=&mac=&limit=50&offset=0`.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let host_state = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(HostState::parse(text).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "“{text}” is not a host state: use discovered, local, install_pending, installing, installed or failed."
            ))
        })?),
    };
    let mac = match params.mac.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(text) => Some(Mac::parse(text).map_err(ApiError::Unprocessable)?),
    };
    // Until leasing lands, admins hold everything; others see what they hold.
    let holder = if user.role == Role::Admin {
        params.holder.filter(|h| !h.is_empty())
    } else {
        Some(user.username.clone())
    };
    let (hosts, total) = state
        .hosts
        .list(&HostFilter {
            pool: params.pool.filter(|p| !p.is_empty()),
            state: host_state,
            holder,
            mac,
            limit: params.limit.unwrap_or(50),
            offset: params.offset.unwrap_or(0),
        })
        .await?;
    Ok(Json(json!({ "hosts": hosts, "total": total })))
}

/// `GET /api/v1/hosts/{id}`: the host and the newest 50 events of its
/// timeline.
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::BadRequest("A host id is a number.".into()))?;
    let host = state.hosts.get(id).await?;
    let host = host
        .filter(|h| user.role == Role::Admin || h.holder.as_deref() == Some(user.username.as_str()))
        .ok_or_else(|| ApiError::NotFound(format!("There is no host {id} that you hold.")))?;
    let timeline = state.hosts.timeline(id, 50).await?;
    Ok(Json(json!({ "host": host, "timeline": timeline })))
}

/// The caller as the host registry sees them.
pub fn actor(user: &User) -> Actor {
    Actor {
        user_id: user.id,
        username: user.username.clone(),
        admin: user.role == Role::Admin,
    }
}

fn host_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("A host id is a number.".into()))
}

/// `null` (clear it) apart from absent (leave it).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A template by id (a number) or by name (a string).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Choice {
    Id(i64),
    Name(String),
}

impl From<Choice> for TemplateChoice {
    fn from(choice: Choice) -> Self {
        match choice {
            Choice::Id(id) => TemplateChoice::Id(id),
            Choice::Name(name) => TemplateChoice::Name(name),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    name: Option<String>,
    interface: Option<String>,
    vars: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pool: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    system: Option<Option<Choice>>,
    #[serde(default, deserialize_with = "present")]
    unattended: Option<Option<Choice>>,
    macs: Option<Vec<String>>,
    maintenance: Option<bool>,
    /// Administrators: the power drivers, tried in order.
    power: Option<Vec<DriverSetting>>,
}

/// `PUT /api/v1/hosts/{id}`: any of `name`, `interface`, `vars` (a JSON
/// object), `system` and `unattended` (a template's name or id, `null` for
/// none), and for administrators `pool` (a name, `null` for none; enrols a
/// discovered host) and `macs`.
pub async fn update(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Change>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = host_id(id)?;
    let Json(change) = body?;
    let actor = actor(&user);
    let now = chrono::Utc::now();
    // The power drivers are checked before anything else changes.
    if let Some(power) = &change.power {
        if !actor.admin {
            return Err(ApiError::Forbidden(
                "Only administrators set how a node's power is reached.".into(),
            ));
        }
        let host = state
            .hosts
            .get(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("There is no host {id}.")))?;
        settle(power.clone(), &host.power.drivers, &state.secrets)
            .map_err(ApiError::Unprocessable)?;
    }
    let others = HostChange {
        name: change.name,
        interface: change.interface,
        vars: change.vars,
        pool: change.pool,
        system: change.system.map(|c| c.map(Into::into)),
        unattended: change.unattended.map(|c| c.map(Into::into)),
        macs: change.macs,
        maintenance: change.maintenance,
    };
    let mut host = match (&change.power, others.is_empty()) {
        (Some(_), true) => None,
        _ => Some(state.hosts.update(id, others, &actor, now).await?),
    };
    if let Some(power) = change.power {
        host = Some(
            state
                .hosts
                .set_power(&actor, id, power, &state.secrets, now)
                .await?,
        );
    }
    Ok(Json(json!({ "host": host })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerBody {
    action: String,
    /// Boot from the network once first (where the driver can).
    #[serde(default)]
    pxe: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkPowerBody {
    hosts: Vec<i64>,
    action: String,
    #[serde(default)]
    pxe: bool,
}

fn power_action(text: &str) -> Result<PowerAction, ApiError> {
    PowerAction::parse(text).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "“{}” is not a power action: use on, off, cycle, soft or wake.",
            text.chars().take(20).collect::<String>()
        ))
    })
}

/// `POST /api/v1/hosts/{id}/power {"action": "on"|"off"|"cycle"|"soft"|"wake",
/// "pxe"?}` → `202 {"job"}`: the holder or an admin; the job carries it out.
pub async fn power(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<PowerBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = host_id(id)?;
    let Json(body) = body?;
    let request = PowerRequest {
        action: power_action(&body.action)?,
        pxe: body.pxe,
    };
    let mut jobs = state
        .hosts
        .request_power(
            &state.jobs,
            &actor(&user),
            &[id],
            request,
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": jobs.pop() }))))
}

/// `POST /api/v1/hosts/{id}/power/test` (administrators) → `200
/// {"checks": [{"driver", "outcome": "ok" | "failed" | "untestable",
/// "detail"}]}`: asks each BMC for the power state (Wake-on-LAN cannot be
/// tested). A BMC that does not answer is an outcome, not an error.
pub async fn test_power(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = host_id(id)?;
    let checks = state.power.check(&actor(&user), id).await?;
    Ok(Json(json!({ "checks": checks })))
}

/// `POST /api/v1/hosts/power {"hosts": [ids], "action", "pxe"?}` → `202
/// {"jobs"}`: many at once, all or none; power-ons are paced per pool.
pub async fn bulk_power(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<BulkPowerBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let request = PowerRequest {
        action: power_action(&body.action)?,
        pxe: body.pxe,
    };
    let jobs = state
        .hosts
        .request_power(
            &state.jobs,
            &actor(&user),
            &body.hosts,
            request,
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobs": jobs }))))
}

/// `POST /api/v1/hosts/{id}/reinstall` → `202 {"host", "job"}`: marks the
/// host for a clean install (unless it is marked), boots it from the
/// network once where the BMC can, and power-cycles it (powers it on if
/// off; Wake-on-LAN wakes it).
pub async fn reinstall(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (host, job) = state
        .hosts
        .reinstall(
            &state.jobs,
            &actor(&user),
            host_id(id)?,
            state.pace,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "host": host, "job": job })),
    ))
}

/// `POST /api/v1/hosts/{id}/mark`: a clean install on the next boot.
pub async fn mark(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let host = state
        .hosts
        .mark(host_id(id)?, &actor(&user), chrono::Utc::now())
        .await?;
    Ok(Json(json!({ "host": host })))
}

/// `POST /api/v1/hosts/{id}/unmark`: until the system script is served.
pub async fn unmark(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let host = state
        .hosts
        .unmark(host_id(id)?, &actor(&user), chrono::Utc::now())
        .await?;
    Ok(Json(json!({ "host": host })))
}

/// `GET /api/v1/pools`.
pub async fn pools(
    State(state): State<AppState>,
    Caller(_user): Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "pools": state.hosts.pools().await? })))
}

/// `GET /api/v1/availability`: the pools the caller may draw from, each
/// with its hosts: free, taken until when, or out of allocation. Who holds
/// a host is shown to administrators only.
pub async fn availability(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "pools": state.hosts.availability(&actor(&user)).await? }),
    ))
}

/// A pool's settings as `POST` and `PUT` take them (`null` clears).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    name: Option<String>,
    description: Option<String>,
    access: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    default_lease_hours: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    max_lease_hours: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    max_per_user: Option<Option<i32>>,
    clean_install: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    system: Option<Option<Choice>>,
    #[serde(default, deserialize_with = "present")]
    unattended: Option<Option<Choice>>,
    /// `{"broadcast"?, "port"?, "interface"?}`: its nodes wake on LAN.
    #[serde(default, deserialize_with = "present")]
    wake: Option<Option<bootler_domain::power::settings::WakeDefaults>>,
}

impl From<PoolBody> for PoolChange {
    fn from(body: PoolBody) -> Self {
        PoolChange {
            name: body.name,
            description: body.description,
            access: body.access,
            default_lease_hours: body.default_lease_hours,
            max_lease_hours: body.max_lease_hours,
            max_per_user: body.max_per_user,
            clean_install: body.clean_install,
            system: body.system.map(|c| c.map(Into::into)),
            unattended: body.unattended.map(|c| c.map(Into::into)),
            wake: body.wake,
        }
    }
}

/// `POST /api/v1/pools {"name", "description"?, "access"?, "default_lease_hours"?,
/// "max_lease_hours"?, "max_per_user"?, "clean_install"?, "system"?,
/// "unattended"?, "wake"?}` (administrators) → 201.
pub async fn create_pool(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Json<PoolBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let pool = state
        .hosts
        .create_pool(&actor(&user), &body.into(), chrono::Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "pool": pool }))))
}

/// `PUT /api/v1/pools/{name}`: any of the settings (administrators).
pub async fn update_pool(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Result<Json<PoolBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let pool = state
        .hosts
        .update_pool(&actor(&user), &name, &body.into())
        .await?;
    Ok(Json(json!({ "pool": pool })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Allocate {
    pool: Option<String>,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
    hours: Option<u32>,
}

/// A JSON body that may be left out (no content type, no body).
fn optional<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(err) => Err(err.into()),
    }
}

/// `POST /api/v1/hosts/allocate {"pool"?, "tags"?, "hours"?}`: one free
/// node, now held by the caller.
pub async fn allocate(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<Allocate>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = optional(body)?;
    let host = state
        .hosts
        .allocate(
            &actor(&user),
            &AllocateRequest {
                pool: body.pool.filter(|p| !p.is_empty()),
                tags: body.tags,
                hours: body.hours,
            },
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({ "host": host })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Give {
    user: String,
}

/// `POST /api/v1/hosts/{id}/allocate {"user"}`: administrators give any
/// host; others lend one they hold.
pub async fn give(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Give>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = host_id(id)?;
    let Json(body) = body?;
    let host = state
        .hosts
        .give(
            &actor(&user),
            id,
            &body.user,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({ "host": host })))
}

/// `POST /api/v1/hosts/{id}/release`: by its holder, or forced by an
/// administrator.
pub async fn release(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let host = state
        .hosts
        .release(
            &actor(&user),
            host_id(id)?,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({ "host": host })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    hours: Option<u32>,
    #[serde(default)]
    no_end: bool,
}

/// `POST /api/v1/hosts/{id}/extend {"hours"?, "no_end"?}`.
pub async fn extend(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Extend>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = host_id(id)?;
    let body = optional(body)?;
    let host = state
        .hosts
        .extend(
            &actor(&user),
            id,
            body.hours,
            body.no_end,
            Some(&peer.ip().to_string()),
            chrono::Utc::now(),
        )
        .await?;
    Ok(Json(json!({ "host": host })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    actor: Option<String>,
    host: Option<i64>,
    action: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/audit?actor=&host=&action=&limit=50&offset=0`: everything
/// for administrators; for others, their own actions and their hosts'.
pub async fn audit(
    State(state): State<AppState>,
    Caller(user): Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (entries, total) = state
        .hosts
        .audit_log(
            &actor(&user),
            &AuditFilter {
                actor: params.actor.filter(|a| !a.is_empty()),
                host: params.host,
                action: params.action.filter(|a| !a.is_empty()),
                limit: params.limit.unwrap_or(50),
                offset: params.offset.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(json!({ "entries": entries, "total": total })))
}

/// `GET /api/v1/quotas/{username}` → `{"quota":{"username","max_hosts","default","held"},
/// "vms":{"username","own":{"instances","vcpus","memory_mib"},"default":{…},"used":{…}}}`
/// (administrators, or the person themselves).
pub async fn quota(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let quota = state.hosts.quota(&actor(&user), &username).await?;
    let vms = state
        .instances
        .quota(&crate::api::instances::actor(&user), &username)
        .await?;
    Ok(Json(json!({ "quota": quota, "vms": vms })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    #[serde(default, deserialize_with = "present")]
    max_hosts: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    max_vms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    max_vm_vcpus: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    max_vm_memory_mib: Option<Option<u64>>,
}

/// `PUT /api/v1/quotas/{username} {"max_hosts"?, "max_vms"?, "max_vm_vcpus"?,
/// "max_vm_memory_mib"?}` (administrators; each a number, `0`: no limit,
/// `null`: the default; fields left out stay).
pub async fn set_quota(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(username): Path<String>,
    body: Result<Json<QuotaBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let vm_fields =
        body.max_vms.is_some() || body.max_vm_vcpus.is_some() || body.max_vm_memory_mib.is_some();
    if body.max_hosts.is_none() && !vm_fields {
        return Err(ApiError::Unprocessable(
            "Send `max_hosts`, `max_vms`, `max_vm_vcpus` or `max_vm_memory_mib`: a number, or null for the default.".into(),
        ));
    }
    let vm_actor = crate::api::instances::actor(&user);
    // Checked before anything is written: all or nothing.
    if vm_fields {
        let current = state.instances.quota(&vm_actor, &username).await?.own;
        let own = bootler_domain::vms::instances::OwnLimits {
            instances: body.max_vms.unwrap_or(current.instances),
            vcpus: body.max_vm_vcpus.unwrap_or(current.vcpus),
            memory_mib: body.max_vm_memory_mib.unwrap_or(current.memory_mib),
        };
        if let Some(max_hosts) = body.max_hosts
            && max_hosts.is_some_and(|n| !(0..=10_000).contains(&n))
        {
            return Err(ApiError::Unprocessable(
                "`max_hosts` is between 0 (no limit) and 10000, or null for the default.".into(),
            ));
        }
        state.instances.set_quota(&vm_actor, &username, own).await?;
    }
    if let Some(max_hosts) = body.max_hosts {
        state
            .hosts
            .set_quota(&actor(&user), &username, max_hosts)
            .await?;
    }
    let quota = state.hosts.quota(&actor(&user), &username).await?;
    let vms = state.instances.quota(&vm_actor, &username).await?;
    Ok(Json(json!({ "quota": quota, "vms": vms })))
}
