//! Instances (VMs) as Bootler keeps them: the three answers checked, the
//! limits and quotas applied in one transaction (two people asking for the
//! last vCPUs of the budget at once: one gets them), a job per change, and
//! the list people see.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::config::{Flavor, Image, VmConfig};
use crate::db::{Db, Tx};
use crate::jobs::{Job, Jobs, JobsError, NewJob};

/// The job kind that carries out instance changes.
pub const VM_JOB: &str = "vm";

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<JobsError> for VmsError {
    fn from(err: JobsError) -> VmsError {
        match err {
            JobsError::Database(e) => VmsError::Database(e),
            other => VmsError::Conflict(other.to_string()),
        }
    }
}

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// The create job runs.
    Creating,
    Running,
    Stopped,
    Starting,
    Stopping,
    /// The destroy job runs; the row goes when it is done.
    Destroying,
    /// Creation failed (nothing is left on the backend): `error` says why.
    Failed,
    /// Gone from the backend behind Bootler's back.
    Missing,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Creating => "creating",
            InstanceState::Running => "running",
            InstanceState::Stopped => "stopped",
            InstanceState::Starting => "starting",
            InstanceState::Stopping => "stopping",
            InstanceState::Destroying => "destroying",
            InstanceState::Failed => "failed",
            InstanceState::Missing => "missing",
        }
    }

    pub fn parse(text: &str) -> Option<InstanceState> {
        Some(match text {
            "creating" => InstanceState::Creating,
            "running" => InstanceState::Running,
            "stopped" => InstanceState::Stopped,
            "starting" => InstanceState::Starting,
            "stopping" => InstanceState::Stopping,
            "destroying" => InstanceState::Destroying,
            "failed" => InstanceState::Failed,
            "missing" => InstanceState::Missing,
            _ => return None,
        })
    }

    /// Whether it holds resources on the backend (counts against quotas
    /// and the budget).
    pub fn holds_resources(self) -> bool {
        !matches!(self, InstanceState::Failed | InstanceState::Missing)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: i64,
    pub owner: String,
    #[serde(skip)]
    pub owner_id: i64,
    pub hostname: String,
    pub flavor: String,
    pub image: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// The public key put on it.
    pub ssh_key: String,
    pub backend: String,
    pub backend_id: Option<String>,
    pub state: InstanceState,
    pub addresses: Vec<String>,
    pub error: Option<String>,
    /// The user to log in as (the image's), if known.
    pub login: Option<String>,
    pub created_at: DateTime<Utc>,
    pub state_at: DateTime<Utc>,
}

impl Instance {
    /// `ssh debian@10.0.0.5`, once it has an address.
    pub fn ssh_command(&self) -> Option<String> {
        let address = self.addresses.first()?;
        Some(match &self.login {
            Some(login) => format!("ssh {login}@{address}"),
            None => format!("ssh {address}"),
        })
    }

    /// The name on the backend: unique, and telling whose it is.
    pub fn backend_name(&self) -> String {
        format!("bootler-{}-{}", self.id, self.hostname)
    }
}

#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: i64,
    owner: String,
    owner_id: i64,
    hostname: String,
    flavor: String,
    image: String,
    vcpus: i32,
    memory_mib: i64,
    disk_gib: i64,
    ssh_key: String,
    backend: String,
    backend_id: Option<String>,
    state: String,
    addresses: String,
    error: Option<String>,
    login: Option<String>,
    created_at: DateTime<Utc>,
    state_at: DateTime<Utc>,
}

impl From<InstanceRow> for Instance {
    fn from(row: InstanceRow) -> Instance {
        Instance {
            id: row.id,
            owner: row.owner,
            owner_id: row.owner_id,
            hostname: row.hostname,
            flavor: row.flavor,
            image: row.image,
            vcpus: u32::try_from(row.vcpus).unwrap_or(0),
            memory_mib: u64::try_from(row.memory_mib).unwrap_or(0),
            disk_gib: u64::try_from(row.disk_gib).unwrap_or(0),
            ssh_key: row.ssh_key,
            backend: row.backend,
            backend_id: row.backend_id,
            state: InstanceState::parse(&row.state).unwrap_or(InstanceState::Failed),
            addresses: serde_json::from_str(&row.addresses).unwrap_or_default(),
            error: row.error,
            login: row.login,
            created_at: row.created_at,
            state_at: row.state_at,
        }
    }
}

macro_rules! select_instances {
    ($tail:literal) => {
        concat!(
            "SELECT i.id, u.username AS owner, i.owner_id, i.hostname, i.flavor, i.image, i.vcpus, \
             i.memory_mib, i.disk_gib, i.ssh_key, i.backend, i.backend_id, i.state, i.addresses, \
             i.error, i.login, i.created_at, i.state_at \
             FROM instances i JOIN users u ON u.id = i.owner_id ",
            $tail
        )
    };
}

/// The three answers (and the key).
#[derive(Debug, Clone, Default)]
pub struct NewInstance {
    pub hostname: String,
    pub flavor: String,
    pub image: String,
    /// A pasted OpenSSH public key; none: the owner's first profile key.
    pub ssh_key: Option<String>,
}

/// What one person has, against what they may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Usage {
    pub instances: u32,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// A person's own VM limits; `None`: the configured default; 0: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
pub struct OwnLimits {
    pub instances: Option<u32>,
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
}

/// A person's VM quota: their own limits, the default, and what they use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmQuota {
    pub username: String,
    pub own: OwnLimits,
    pub default: Usage,
    pub used: Usage,
}

/// A flavor and whether it fits now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlavorChoice {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// Why it cannot be chosen now; none: it fits.
    pub unavailable: Option<String>,
}

/// What the creation form offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choices {
    pub flavors: Vec<FlavorChoice>,
    pub images: Vec<ImageChoice>,
    pub usage: Usage,
    /// The person's limits; 0: none.
    pub limits: Usage,
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChoice {
    pub name: String,
    pub login: Option<String>,
}

/// The limits of `[vm]`, and the largest VM the backend can hold.
#[derive(Debug, Clone)]
pub struct VmRules {
    pub backend: &'static str,
    pub flavors: Vec<Flavor>,
    pub images: Vec<Image>,
    /// Configured; 0: the backend's largest host (see `host_cores`).
    pub max_vcpus_per_vm: u32,
    pub vcpu_budget: u32,
    pub per_user: Usage,
}

impl VmRules {
    pub fn from_config(config: &VmConfig) -> VmRules {
        VmRules {
            backend: match config.backend {
                super::config::BackendKind::Libvirt => "libvirt",
                super::config::BackendKind::Openstack => "openstack",
            },
            flavors: config.flavors.clone(),
            images: config.images.clone(),
            max_vcpus_per_vm: config.max_vcpus_per_vm,
            vcpu_budget: config.vcpu_budget,
            per_user: Usage {
                instances: config.max_instances_per_user,
                vcpus: config.max_vcpus_per_user,
                memory_mib: config.max_memory_mib_per_user,
            },
        }
    }
}

/// What changes an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    Create,
    Start,
    Stop,
    Destroy,
}

impl VmAction {
    pub fn as_str(self) -> &'static str {
        match self {
            VmAction::Create => "create",
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Destroy => "destroy",
        }
    }
}

/// Checks a host name: one DNS label, lower case.
pub fn check_hostname(name: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "“{}” is not a host name: 1 to 63 letters, digits and dashes, not starting or ending with a dash.",
            name.chars().take(70).collect::<String>()
        ))
    }
}

/// Instances, their limits and their jobs.
#[derive(Clone)]
pub struct Instances {
    db: Db,
    rules: std::sync::Arc<std::sync::RwLock<VmRules>>,
    /// Cores of the backend's largest host, when known (from its capacity).
    host_cores: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// `[[vm.images]]` as configured (when empty, the backend's own are
    /// offered).
    configured_images: std::sync::Arc<Vec<Image>>,
}

fn over(limit: u32, value: u32) -> bool {
    limit != 0 && value > limit
}

impl Instances {
    pub fn new(db: Db, rules: VmRules) -> Instances {
        Instances {
            db,
            configured_images: std::sync::Arc::new(rules.images.clone()),
            rules: std::sync::Arc::new(std::sync::RwLock::new(rules)),
            host_cores: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    pub fn rules(&self) -> VmRules {
        self.rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn configured_images(&self) -> &[Image] {
        &self.configured_images
    }

    /// Images the backend offers when none are configured (OpenStack's
    /// Glance), learnt by the reconciler.
    pub fn offer_images(&self, images: Vec<Image>) {
        let mut rules = self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rules.images = images;
    }

    /// Cores of the backend's largest host, learnt from its capacity.
    pub fn set_host_cores(&self, cores: u32) {
        self.host_cores
            .store(cores, std::sync::atomic::Ordering::Relaxed);
    }

    /// The most vCPUs one VM may have; 0: no limit known.
    pub fn max_vcpus_per_vm(&self) -> u32 {
        match self.rules().max_vcpus_per_vm {
            0 => self.host_cores.load(std::sync::atomic::Ordering::Relaxed),
            n => n,
        }
    }

    async fn usage_of(&self, tx: &mut Tx, owner: Option<i64>) -> Result<Usage, sqlx::Error> {
        let row: (i64, Option<i64>, Option<i64>) = crate::with_tx!(tx, conn => {
            sqlx::query_as(
                // PostgreSQL sums a BIGINT column as NUMERIC: cast it back.
                "SELECT COUNT(*), CAST(SUM(vcpus) AS BIGINT), CAST(SUM(memory_mib) AS BIGINT) FROM instances \
                 WHERE state NOT IN ('failed', 'missing') AND ($1 = 0 OR owner_id = $1)",
            )
            .bind(owner.unwrap_or(0))
            .fetch_one(&mut *conn)
            .await
        })?;
        Ok(Usage {
            instances: u32::try_from(row.0).unwrap_or(u32::MAX),
            vcpus: u32::try_from(row.1.unwrap_or(0)).unwrap_or(u32::MAX),
            memory_mib: u64::try_from(row.2.unwrap_or(0)).unwrap_or(0),
        })
    }

    /// A person's own limits (`users.max_vms`…; `None`: the default).
    async fn own_limits(&self, tx: &mut Tx, user_id: i64) -> Result<OwnLimits, sqlx::Error> {
        let row: Option<(Option<i32>, Option<i32>, Option<i64>)> = crate::with_tx!(tx, conn => {
            sqlx::query_as("SELECT max_vms, max_vm_vcpus, max_vm_memory_mib FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await
        })?;
        let (instances, vcpus, memory) = row.unwrap_or((None, None, None));
        Ok(OwnLimits {
            instances: instances.map(|n| u32::try_from(n).unwrap_or(0)),
            vcpus: vcpus.map(|n| u32::try_from(n).unwrap_or(0)),
            memory_mib: memory.map(|n| u64::try_from(n).unwrap_or(0)),
        })
    }

    /// The limits in force for a person: their own, else the default.
    async fn limits_of(&self, tx: &mut Tx, user_id: i64) -> Result<Usage, sqlx::Error> {
        let own = self.own_limits(tx, user_id).await?;
        let default = self.rules().per_user;
        Ok(Usage {
            instances: own.instances.unwrap_or(default.instances),
            vcpus: own.vcpus.unwrap_or(default.vcpus),
            memory_mib: own.memory_mib.unwrap_or(default.memory_mib),
        })
    }

    /// A person's VM quota: administrators ask for anyone, others for
    /// themselves.
    pub async fn quota(&self, actor: &Actor, username: &str) -> Result<VmQuota, VmsError> {
        if !actor.admin && actor.username != username {
            return Err(VmsError::Forbidden(
                "Only administrators see other people's quotas.".into(),
            ));
        }
        let id: Option<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await
        })?;
        let id = id.ok_or_else(|| {
            VmsError::NotFound(format!(
                "There is no user “{}”.",
                username.chars().take(70).collect::<String>()
            ))
        })?;
        let mut tx = self.db.begin().await?;
        let own = self.own_limits(&mut tx, id).await?;
        let used = self.usage_of(&mut tx, Some(id)).await?;
        drop(tx);
        Ok(VmQuota {
            username: username.to_string(),
            own,
            default: self.rules().per_user,
            used,
        })
    }

    /// People with VM limits of their own (administrators).
    pub async fn own_quotas(&self, actor: &Actor) -> Result<Vec<VmQuota>, VmsError> {
        if !actor.admin {
            return Err(VmsError::Forbidden(
                "Only administrators see quotas.".into(),
            ));
        }
        let names: Vec<String> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT username FROM users WHERE max_vms IS NOT NULL OR max_vm_vcpus IS NOT NULL \
                 OR max_vm_memory_mib IS NOT NULL ORDER BY username LIMIT 500",
            )
            .fetch_all(pool)
            .await
        })?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(self.quota(actor, &name).await?);
        }
        Ok(out)
    }

    /// Sets a person's own limits (`None`: the default; 0: no limit);
    /// administrators. VMs already made stay.
    pub async fn set_quota(
        &self,
        actor: &Actor,
        username: &str,
        own: OwnLimits,
    ) -> Result<VmQuota, VmsError> {
        if !actor.admin {
            return Err(VmsError::Forbidden(
                "Only administrators set quotas.".into(),
            ));
        }
        for (key, value, max) in [
            ("max_vms", own.instances.map(u64::from), 1_000),
            ("max_vm_vcpus", own.vcpus.map(u64::from), 100_000),
            ("max_vm_memory_mib", own.memory_mib, 1 << 30),
        ] {
            if value.is_some_and(|v| v > max) {
                return Err(VmsError::Invalid(format!(
                    "`{key}` is between 0 (no limit) and {max}, or null for the default."
                )));
            }
        }
        let updated = crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE users SET max_vms = $1, max_vm_vcpus = $2, max_vm_memory_mib = $3 WHERE username = $4",
            )
            .bind(own.instances.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .bind(own.vcpus.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .bind(own.memory_mib.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
            .bind(username)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(VmsError::NotFound(format!(
                "There is no user “{}”.",
                username.chars().take(70).collect::<String>()
            )));
        }
        self.quota(actor, username).await
    }

    /// Why `flavor` cannot be had by someone using `usage` (with `total`
    /// vCPUs used on the backend); none: it fits.
    fn refusal(&self, flavor: &Flavor, usage: Usage, limits: Usage, total: u32) -> Option<String> {
        let rules = self.rules();
        let max = self.max_vcpus_per_vm();
        if over(max, flavor.vcpus) {
            return Some(format!(
                "{} has {} vCPUs; a VM has at most {max} here (the largest node's cores).",
                flavor.name, flavor.vcpus
            ));
        }
        if over(limits.instances, usage.instances + 1) {
            return Some(format!(
                "You have {} of your {} VMs already: destroy one first.",
                usage.instances, limits.instances
            ));
        }
        if over(limits.vcpus, usage.vcpus + flavor.vcpus) {
            return Some(format!(
                "{} needs {} vCPUs; you use {} of your {}.",
                flavor.name, flavor.vcpus, usage.vcpus, limits.vcpus
            ));
        }
        if limits.memory_mib != 0 && usage.memory_mib + flavor.memory_mib > limits.memory_mib {
            return Some(format!(
                "{} needs {} MiB of memory; you use {} of your {} MiB.",
                flavor.name, flavor.memory_mib, usage.memory_mib, limits.memory_mib
            ));
        }
        if over(rules.vcpu_budget, total + flavor.vcpus) {
            return Some(format!(
                "The VM budget is spent: {total} of {} vCPUs are in use; {} needs {}. Try a smaller flavor or later.",
                rules.vcpu_budget, flavor.name, flavor.vcpus
            ));
        }
        None
    }

    /// What the creation form offers `actor`: every flavor, and whether
    /// it fits their remaining quota.
    pub async fn choices(&self, actor: &Actor) -> Result<Choices, VmsError> {
        let mut tx = self.db.begin().await?;
        let usage = self.usage_of(&mut tx, Some(actor.user_id)).await?;
        let total = self.usage_of(&mut tx, None).await?.vcpus;
        let limits = self.limits_of(&mut tx, actor.user_id).await?;
        drop(tx);
        let rules = self.rules();
        Ok(Choices {
            flavors: rules
                .flavors
                .iter()
                .map(|f| FlavorChoice {
                    name: f.name.clone(),
                    vcpus: f.vcpus,
                    memory_mib: f.memory_mib,
                    disk_gib: f.disk_gib,
                    unavailable: self.refusal(f, usage, limits, total),
                })
                .collect(),
            images: rules
                .images
                .iter()
                .map(|i| ImageChoice {
                    name: i.name.clone(),
                    login: i.login.clone(),
                })
                .collect(),
            usage,
            limits,
            backend: rules.backend.to_string(),
        })
    }

    /// The key to put on the VM: the pasted one (checked), else the
    /// owner's first profile key.
    async fn key_for(&self, actor: &Actor, given: Option<&str>) -> Result<String, VmsError> {
        if let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) {
            let key = crate::ssh_key::parse(text).map_err(VmsError::Invalid)?;
            return Ok(key.openssh());
        }
        let stored: Option<String> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT public_key FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, id LIMIT 1",
            )
            .bind(actor.user_id)
            .fetch_optional(pool)
            .await
        })?;
        stored.ok_or_else(|| {
            VmsError::Invalid(
                "Give an SSH public key (or add one to your profile): it is the only way into the VM.".into(),
            )
        })
    }

    /// Checks the three answers, applies the limits and quotas, records the
    /// VM as `creating` and queues the job that builds it: all or nothing.
    pub async fn create(
        &self,
        jobs: &Jobs,
        actor: &Actor,
        new: &NewInstance,
        now: DateTime<Utc>,
    ) -> Result<(Instance, Job), VmsError> {
        let hostname = check_hostname(&new.hostname).map_err(VmsError::Invalid)?;
        let rules = self.rules();
        let flavor = rules
            .flavors
            .iter()
            .find(|f| f.name == new.flavor.trim())
            .cloned()
            .ok_or_else(|| {
                VmsError::Invalid(format!(
                    "There is no flavor “{}”: choose one of {}.",
                    new.flavor.chars().take(40).collect::<String>(),
                    rules
                        .flavors
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let image = rules
            .images
            .iter()
            .find(|i| i.name == new.image.trim())
            .cloned()
            .ok_or_else(|| {
                VmsError::Invalid(if rules.images.is_empty() {
                    "No images are set up yet: an administrator adds them ([[vm.images]]).".into()
                } else {
                    format!(
                        "There is no image “{}”: choose one of {}.",
                        new.image.chars().take(60).collect::<String>(),
                        rules
                            .images
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })?;
        let ssh_key = self.key_for(actor, new.ssh_key.as_deref()).await?;

        let mut tx = self.db.begin_write().await?;
        if let Tx::Postgres(tx) = &mut tx {
            // Quotas and the budget are read, then written: one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7302)")
                .execute(&mut **tx)
                .await?;
        }
        let taken: Option<String> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar("SELECT state FROM instances WHERE owner_id = $1 AND hostname = $2")
                .bind(actor.user_id)
                .bind(&hostname)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if let Some(state) = taken {
            return Err(VmsError::Conflict(format!(
                "You already have a VM named {hostname} ({state}); choose another name{}.",
                if state == "failed" || state == "missing" {
                    " or remove that one first"
                } else {
                    ""
                }
            )));
        }
        let usage = self.usage_of(&mut tx, Some(actor.user_id)).await?;
        let total = self.usage_of(&mut tx, None).await?.vcpus;
        let limits = self.limits_of(&mut tx, actor.user_id).await?;
        if let Some(why) = self.refusal(&flavor, usage, limits, total) {
            return Err(VmsError::Conflict(why));
        }
        let id: i64 = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "INSERT INTO instances (owner_id, hostname, flavor, image, vcpus, memory_mib, disk_gib, \
                 ssh_key, backend, state, addresses, login, created_at, state_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'creating', '[]', $10, $11, $11) RETURNING id",
            )
            .bind(actor.user_id)
            .bind(&hostname)
            .bind(&flavor.name)
            .bind(&image.name)
            .bind(i32::try_from(flavor.vcpus).unwrap_or(i32::MAX))
            .bind(i64::try_from(flavor.memory_mib).unwrap_or(i64::MAX))
            .bind(i64::try_from(flavor.disk_gib).unwrap_or(i64::MAX))
            .bind(&ssh_key)
            .bind(rules.backend)
            .bind(&image.login)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
        })?;
        let job = self
            .enqueue(jobs, &mut tx, actor, id, VmAction::Create, now)
            .await?;
        audit(
            &mut tx,
            now,
            actor,
            "vm create",
            &format!(
                "VM {hostname}: {} ({} vCPU, {} MiB, {} GiB), {}",
                flavor.name, flavor.vcpus, flavor.memory_mib, flavor.disk_gib, image.name
            ),
        )
        .await?;
        jobs.events().job_due(&mut tx).await?;
        tx.commit().await?;
        jobs.events().job_committed();
        tracing::info!(instance = id, %hostname, flavor = %flavor.name, by = %actor.username, "VM requested");
        let instance = self.get(actor, id).await?;
        Ok((instance, job))
    }

    async fn enqueue(
        &self,
        jobs: &Jobs,
        tx: &mut Tx,
        actor: &Actor,
        id: i64,
        action: VmAction,
        now: DateTime<Utc>,
    ) -> Result<Job, VmsError> {
        let new = NewJob {
            kind: VM_JOB,
            payload: json!({ "instance_id": id, "action": action }),
            requested_by: Some(actor.user_id),
            target: None,
            run_at: None,
        }
        .target("instance", id);
        Ok(jobs.enqueue_in(tx, new, now).await?)
    }

    /// The instances `actor` may see: their own; every one for an admin
    /// asking for `all`.
    pub async fn list(&self, actor: &Actor, all: bool) -> Result<Vec<Instance>, VmsError> {
        let owner = if all && actor.admin { 0 } else { actor.user_id };
        let rows: Vec<InstanceRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_instances!(
                "WHERE ($1 = 0 OR i.owner_id = $1) ORDER BY i.created_at DESC, i.id DESC"
            ))
            .bind(owner)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(Instance::from).collect())
    }

    /// One instance, whoever's it is (for jobs and the reconciler).
    pub async fn load(&self, id: i64) -> Result<Option<Instance>, sqlx::Error> {
        let row: Option<InstanceRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_instances!("WHERE i.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Instance::from))
    }

    /// Every instance that is on the backend, for the reconciler.
    pub async fn on_backend(&self) -> Result<Vec<Instance>, sqlx::Error> {
        let rows: Vec<InstanceRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_instances!(
                "WHERE i.backend_id IS NOT NULL AND i.state IN ('running', 'stopped', 'missing') ORDER BY i.id"
            ))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(Instance::from).collect())
    }

    /// One instance: its owner's or any for an admin (others get "not
    /// found", as if it did not exist).
    pub async fn get(&self, actor: &Actor, id: i64) -> Result<Instance, VmsError> {
        let row: Option<InstanceRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_instances!("WHERE i.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Instance::from)
            .filter(|i| actor.admin || i.owner_id == actor.user_id)
            .ok_or_else(|| VmsError::NotFound(format!("You have no VM {id}.")))
    }

    /// Start, stop or destroy: checks the state allows it, marks the
    /// instance as on its way, queues the job.
    pub async fn request(
        &self,
        jobs: &Jobs,
        actor: &Actor,
        id: i64,
        action: VmAction,
        now: DateTime<Utc>,
    ) -> Result<(Instance, Job), VmsError> {
        let instance = self.get(actor, id).await?;
        use InstanceState as S;
        let (allowed, next) = match action {
            VmAction::Create => (false, S::Creating),
            VmAction::Start => (matches!(instance.state, S::Stopped), S::Starting),
            VmAction::Stop => (matches!(instance.state, S::Running), S::Stopping),
            VmAction::Destroy => (
                !matches!(instance.state, S::Destroying | S::Creating),
                S::Destroying,
            ),
        };
        if !allowed {
            return Err(VmsError::Conflict(format!(
                "{} is {}: it cannot be asked to {} now.",
                instance.hostname,
                instance.state.as_str(),
                action.as_str()
            )));
        }
        let mut tx = self.db.begin_write().await?;
        // Guarded by the state read above: a change in between loses.
        let changed = crate::with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE instances SET state = $1, state_at = $2 WHERE id = $3 AND state = $4")
                .bind(next.as_str())
                .bind(now)
                .bind(id)
                .bind(instance.state.as_str())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        if changed != 1 {
            return Err(VmsError::Conflict(format!(
                "{} changed meanwhile; look again.",
                instance.hostname
            )));
        }
        let job = self.enqueue(jobs, &mut tx, actor, id, action, now).await?;
        audit(
            &mut tx,
            now,
            actor,
            &format!("vm {}", action.as_str()),
            &format!("VM {} of {}", instance.hostname, instance.owner),
        )
        .await?;
        jobs.events().job_due(&mut tx).await?;
        tx.commit().await?;
        jobs.events().job_committed();
        let instance = self.get(actor, id).await?;
        Ok((instance, job))
    }
}

/// An entry of the audit log about a VM.
async fn audit(
    tx: &mut Tx,
    at: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    crate::with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor, action, host_id, host_name, subject, detail, source_ip) \
             VALUES ($1, $2, $3, $4, NULL, '', $5, $6, NULL)",
        )
        .bind(at)
        .bind(actor.user_id)
        .bind(&actor.username)
        .bind(action)
        .bind(&actor.username)
        .bind(detail)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })
}
