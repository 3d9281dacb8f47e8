//! `vm`: carries out what was asked of an instance (create, start, stop,
//! destroy) on the backend, and tells its owner live. Creation waits for
//! the VM to run; a VM that breaks or does not run in time is removed from
//! the backend, so nothing is left half-made. Also the reconciler, which
//! compares Bootler's record with the backend now and then.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::Db;
use crate::jobs::{Events, JobContext, JobError, JobKind};
use crate::vms::backend::{VmBackend, VmError, VmSpec, VmState, VmStatus};
use crate::vms::instances::{Instance, InstanceState, Instances, VM_JOB, VmAction};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmPayload {
    pub instance_id: i64,
    pub action: VmAction,
}

/// What VM jobs need besides their payload.
#[derive(Clone)]
pub struct VmJob {
    pub db: Db,
    pub events: Events,
    pub instances: Instances,
    pub backend: Arc<dyn VmBackend>,
    /// How long a new VM may take to run.
    pub create_timeout: Duration,
    /// How often a new VM's state is read while it is built.
    pub poll: Duration,
}

/// A change to write to an instance's row.
struct Change<'a> {
    state: InstanceState,
    addresses: Option<&'a [String]>,
    /// `Some(None)` clears the error.
    error: Option<Option<&'a str>>,
    backend_id: Option<&'a str>,
}

impl<'a> Change<'a> {
    fn to(state: InstanceState) -> Change<'a> {
        Change {
            state,
            addresses: None,
            error: Some(None),
            backend_id: None,
        }
    }
}

impl VmJob {
    /// Writes `change`, and tells the owner (and whoever asked).
    async fn record(
        &self,
        instance: &Instance,
        requester: Option<i64>,
        change: Change<'_>,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let addresses = change
            .addresses
            .map(|a| serde_json::to_string(a).unwrap_or_else(|_| "[]".into()));
        let (set_error, error) = match change.error {
            Some(e) => (true, e.map(str::to_string)),
            None => (false, None),
        };
        let mut tx = self.db.begin().await?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE instances SET state = $1, state_at = $2, \
                 addresses = COALESCE($3, addresses), \
                 error = CASE WHEN $4 THEN $5 ELSE error END, \
                 backend_id = COALESCE($6, backend_id) WHERE id = $7",
            )
            .bind(change.state.as_str())
            .bind(now)
            .bind(&addresses)
            .bind(set_error)
            .bind(&error)
            .bind(change.backend_id)
            .bind(instance.id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        let events = self
            .tell(&mut tx, instance, requester, change.state, detail, now)
            .await?;
        tx.commit().await?;
        self.events.committed(events);
        Ok(())
    }

    async fn tell(
        &self,
        tx: &mut crate::db::Tx,
        instance: &Instance,
        requester: Option<i64>,
        state: InstanceState,
        detail: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crate::jobs::Event>, sqlx::Error> {
        let mut people: Vec<i64> = std::iter::once(instance.owner_id)
            .chain(requester)
            .collect();
        people.sort_unstable();
        people.dedup();
        self.events
            .record(
                tx,
                &people,
                "instance",
                &json!({
                    "instance": instance.id,
                    "hostname": instance.hostname,
                    "state": state.as_str(),
                    "detail": detail,
                }),
                now,
            )
            .await
    }

    fn spec(instance: &Instance, rules: &crate::vms::instances::VmRules) -> VmSpec {
        let flavor = rules.flavors.iter().find(|f| f.name == instance.flavor);
        let image = rules.images.iter().find(|i| i.name == instance.image);
        VmSpec {
            name: instance.backend_name(),
            hostname: instance.hostname.clone(),
            vcpus: instance.vcpus,
            memory_mib: instance.memory_mib,
            disk_gib: instance.disk_gib,
            flavor: flavor
                .map(|f| f.reference().to_string())
                .unwrap_or_else(|| instance.flavor.clone()),
            image: image
                .map(|i| i.reference.clone())
                .unwrap_or_else(|| instance.image.clone()),
            ssh_key: instance.ssh_key.clone(),
            owner: instance.owner.clone(),
        }
    }

    /// Reads the state until it is running (with an address, for a while),
    /// broken, or the time is up.
    async fn wait_running(
        &self,
        id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<VmStatus, String> {
        let mut running_since: Option<tokio::time::Instant> = None;
        let mut last_error = String::new();
        loop {
            match self.backend.status(id).await {
                Ok(status) => match status.state {
                    VmState::Running => {
                        let since = *running_since.get_or_insert_with(tokio::time::Instant::now);
                        // An address comes with DHCP a little later: wait
                        // for it a while, but a running VM is a success.
                        if !status.addresses.is_empty()
                            || since.elapsed() >= Duration::from_secs(30)
                            || tokio::time::Instant::now() >= deadline
                        {
                            return Ok(status);
                        }
                    }
                    VmState::Error => {
                        return Err(status.fault.unwrap_or_else(|| {
                            "The backend says the VM broke while it was built.".into()
                        }));
                    }
                    VmState::Missing => {
                        return Err(
                            "The VM disappeared from the backend while it was built.".into()
                        );
                    }
                    VmState::Building | VmState::Stopped => {}
                },
                Err(err) => last_error = err.to_string(),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "The VM did not run within {} s{}.",
                    self.create_timeout.as_secs(),
                    if last_error.is_empty() {
                        String::new()
                    } else {
                        format!(" (last: {last_error})")
                    }
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn create(&self, ctx: &JobContext, instance: Instance) -> Result<Value, JobError> {
        if instance.state != InstanceState::Creating {
            return Ok(json!({ "instance": instance.id, "skipped": instance.state }));
        }
        let db = |e: sqlx::Error| JobError::Transient(format!("database: {e}"));
        let last_attempt = ctx.attempt >= ctx.max_attempts;
        let backend_id = match &instance.backend_id {
            // An earlier attempt made it: wait for it.
            Some(id) => id.clone(),
            None => {
                let spec = Self::spec(&instance, &self.instances.rules());
                match self.backend.create(&spec).await {
                    Ok(id) => {
                        let mut change = Change::to(InstanceState::Creating);
                        change.backend_id = Some(&id);
                        self.record(&instance, ctx.requested_by, change, "built; starting")
                            .await
                            .map_err(db)?;
                        id
                    }
                    Err(VmError::Unavailable(message)) if !last_attempt => {
                        // Still creating; the owner sees why it takes long.
                        let stop = if message.ends_with('.') { "" } else { "." };
                        let note = format!("{message}{stop} Bootler tries again.");
                        let mut change = Change::to(InstanceState::Creating);
                        change.error = Some(Some(&note));
                        self.record(&instance, ctx.requested_by, change, &note)
                            .await
                            .map_err(db)?;
                        return Err(JobError::Transient(message));
                    }
                    Err(err) => {
                        let message = err.to_string();
                        let mut change = Change::to(InstanceState::Failed);
                        change.error = Some(Some(&message));
                        self.record(&instance, ctx.requested_by, change, &message)
                            .await
                            .map_err(db)?;
                        return Err(JobError::Permanent(message));
                    }
                }
            }
        };
        let deadline = tokio::time::Instant::now() + self.create_timeout;
        match self.wait_running(&backend_id, deadline).await {
            Ok(status) => {
                let mut change = Change::to(InstanceState::Running);
                change.addresses = Some(&status.addresses);
                let detail = match status.addresses.first() {
                    Some(address) => format!("running at {address}"),
                    None => "running (no address yet)".to_string(),
                };
                self.record(&instance, ctx.requested_by, change, &detail)
                    .await
                    .map_err(db)?;
                Ok(json!({
                    "instance": instance.id,
                    "backend_id": backend_id,
                    "addresses": status.addresses,
                }))
            }
            Err(reason) => {
                // Nothing is left half-made.
                let cleanup = match self.backend.destroy(&backend_id).await {
                    Ok(()) => String::new(),
                    Err(e) => format!(" Removing it failed too ({e}); an administrator cleans up."),
                };
                let message = format!("{reason}{cleanup}");
                let mut change = Change::to(InstanceState::Failed);
                change.error = Some(Some(&message));
                self.record(&instance, ctx.requested_by, change, &message)
                    .await
                    .map_err(db)?;
                Err(JobError::Permanent(message))
            }
        }
    }

    /// Start or stop: `want` on success, `back` (with the reason) if not.
    async fn switch(
        &self,
        ctx: &JobContext,
        instance: Instance,
        action: VmAction,
    ) -> Result<Value, JobError> {
        let db = |e: sqlx::Error| JobError::Transient(format!("database: {e}"));
        let (busy, want, back) = match action {
            VmAction::Start => (
                InstanceState::Starting,
                InstanceState::Running,
                InstanceState::Stopped,
            ),
            _ => (
                InstanceState::Stopping,
                InstanceState::Stopped,
                InstanceState::Running,
            ),
        };
        if instance.state != busy {
            return Ok(json!({ "instance": instance.id, "skipped": instance.state }));
        }
        let Some(id) = instance.backend_id.clone() else {
            let message = "The VM was never built.".to_string();
            let mut change = Change::to(InstanceState::Failed);
            change.error = Some(Some(&message));
            self.record(&instance, ctx.requested_by, change, &message)
                .await
                .map_err(db)?;
            return Err(JobError::Permanent(message));
        };
        let done = match action {
            VmAction::Start => self.backend.start(&id).await,
            _ => self.backend.stop(&id).await,
        };
        match done {
            Ok(()) => {
                let status = self.backend.status(&id).await.ok();
                let mut change = Change::to(want);
                let addresses = status.map(|s| s.addresses);
                change.addresses = addresses.as_deref();
                self.record(&instance, ctx.requested_by, change, want.as_str())
                    .await
                    .map_err(db)?;
                Ok(json!({ "instance": instance.id, "state": want }))
            }
            Err(VmError::Unavailable(message)) if ctx.attempt < ctx.max_attempts => {
                Err(JobError::Transient(message))
            }
            Err(err) => {
                let message = format!("Could not {} it: {err}", action.as_str());
                let mut change = Change::to(back);
                change.error = Some(Some(&message));
                self.record(&instance, ctx.requested_by, change, &message)
                    .await
                    .map_err(db)?;
                Err(JobError::Permanent(message))
            }
        }
    }

    async fn destroy(&self, ctx: &JobContext, instance: Instance) -> Result<Value, JobError> {
        let db = |e: sqlx::Error| JobError::Transient(format!("database: {e}"));
        if instance.state != InstanceState::Destroying {
            return Ok(json!({ "instance": instance.id, "skipped": instance.state }));
        }
        let done = match &instance.backend_id {
            Some(id) => self.backend.destroy(id).await,
            None => Ok(()),
        };
        // And whatever is left of it (storage of a VM removed outside).
        let done = match done {
            Ok(()) if instance.backend_id.is_some() => {
                self.backend.forget(&instance.backend_name()).await
            }
            other => other,
        };
        match done {
            Ok(()) => {
                let now = Utc::now();
                let mut tx = self.db.begin().await.map_err(db)?;
                crate::with_tx!(&mut tx, conn => {
                    sqlx::query("DELETE FROM instances WHERE id = $1")
                        .bind(instance.id)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                })
                .map_err(db)?;
                let events = self
                    .tell(
                        &mut tx,
                        &instance,
                        ctx.requested_by,
                        InstanceState::Destroying,
                        "destroyed",
                        now,
                    )
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                self.events.committed(events);
                Ok(json!({ "instance": instance.id, "destroyed": true }))
            }
            Err(VmError::Unavailable(message)) if ctx.attempt < ctx.max_attempts => {
                Err(JobError::Transient(message))
            }
            Err(err) => {
                // Still there: the reconciler reads its real state again.
                let message = format!("Could not destroy it: {err}");
                let mut change = Change::to(InstanceState::Running);
                change.error = Some(Some(&message));
                self.record(&instance, ctx.requested_by, change, &message)
                    .await
                    .map_err(db)?;
                Err(JobError::Permanent(message))
            }
        }
    }

    /// Compares every instance on the backend with what the backend says,
    /// and learns its capacity (and images, when none are configured).
    /// Returns how many instances changed.
    pub async fn reconcile(&self) -> Result<usize, sqlx::Error> {
        if let Ok(capacity) = self.backend.capacity().await
            && let Some(cores) = capacity.max_host_cores
        {
            self.instances.set_host_cores(cores);
        }
        if self.instances.configured_images().is_empty()
            && let Ok(images) = self.backend.images().await
        {
            self.instances.offer_images(images);
        }
        let mut changed = 0;
        for instance in self.instances.on_backend().await? {
            let Some(id) = instance.backend_id.clone() else {
                continue;
            };
            let Ok(status) = self.backend.status(&id).await else {
                continue;
            };
            let state = match status.state {
                VmState::Running => InstanceState::Running,
                VmState::Stopped => InstanceState::Stopped,
                VmState::Missing => InstanceState::Missing,
                VmState::Building | VmState::Error => continue,
            };
            let addresses_changed =
                !status.addresses.is_empty() && status.addresses != instance.addresses;
            if state == instance.state && !addresses_changed {
                continue;
            }
            let detail = match state {
                InstanceState::Missing => {
                    "gone from the backend: it was deleted outside Bootler".to_string()
                }
                _ if state != instance.state => {
                    format!("found {} on the backend", state.as_str())
                }
                _ => format!("address {}", status.addresses.join(", ")),
            };
            let mut change = Change::to(state);
            change.error = None;
            if !status.addresses.is_empty() {
                change.addresses = Some(&status.addresses);
            }
            self.record(&instance, None, change, &detail).await?;
            changed += 1;
        }
        Ok(changed)
    }
}

impl JobKind for VmJob {
    const KIND: &'static str = VM_JOB;
    const TITLE: &'static str = "Virtual machine";
    type Payload = VmPayload;

    fn dedup_key(&self, payload: &VmPayload) -> Option<String> {
        Some(format!(
            "vm:{}:{}",
            payload.instance_id,
            payload.action.as_str()
        ))
    }

    async fn run(&self, ctx: &JobContext, payload: VmPayload) -> Result<Value, JobError> {
        let instance = self
            .instances
            .load(payload.instance_id)
            .await
            .map_err(|e| JobError::Transient(format!("database: {e}")))?;
        let Some(instance) = instance else {
            return Ok(json!({ "instance": payload.instance_id, "gone": true }));
        };
        match payload.action {
            VmAction::Create => self.create(ctx, instance).await,
            VmAction::Start | VmAction::Stop => self.switch(ctx, instance, payload.action).await,
            VmAction::Destroy => self.destroy(ctx, instance).await,
        }
    }
}
