//! Power requests (thesis §5.1): the holder (or an admin) asks, Bootler
//! answers at once with a job per host, and a worker talks to the BMC or
//! sends the magic packet. Power-ons are paced per pool so a rack does not
//! boot at once; every request is in the audit log.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::leases::{Acting, audit};
use super::{Actor, Host, Hosts, HostsError};
use crate::jobs::{Job, Jobs, JobsError, NewJob};
use crate::power::PowerAction;
use crate::power::sealed::SecretBox;
use crate::power::settings::{DriverSetting, settle};

/// The job kind that carries out power requests.
pub const POWER_JOB: &str = "power";

/// Most hosts in one bulk request.
pub const MAX_BULK: usize = 200;

/// How power-ons are paced (from `[power]`).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub per_window: u32,
    pub window: Duration,
}

/// What a power request asks.
#[derive(Debug, Clone, Copy)]
pub struct PowerRequest {
    pub action: PowerAction,
    /// Boot from the network once first (where a driver can).
    pub pxe: bool,
}

impl From<JobsError> for HostsError {
    fn from(err: JobsError) -> HostsError {
        match err {
            JobsError::Database(e) => HostsError::Database(e),
            other => HostsError::Conflict(other.to_string()),
        }
    }
}

/// Whether one of `drivers` can do `action`.
pub fn can(drivers: &[DriverSetting], action: PowerAction) -> bool {
    drivers.iter().any(|d| match d {
        DriverSetting::Ipmi { .. } => action != PowerAction::Wake,
        DriverSetting::Wol { .. } => matches!(action, PowerAction::Wake | PowerAction::On),
    })
}

impl Hosts {
    /// Replaces a host's power drivers (admins). A BMC password left out
    /// keeps the stored one; new ones are sealed with `secrets`.
    pub async fn set_power(
        &self,
        actor: &Actor,
        id: i64,
        drivers: Vec<DriverSetting>,
        secrets: &SecretBox,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators set how a node's power is reached.".into(),
            ));
        }
        let host = self
            .get(id)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("There is no host {id}.")))?;
        let settled = settle(drivers, &host.power.drivers, secrets).map_err(HostsError::Invalid)?;
        let text = serde_json::to_string(&settled).unwrap_or_else(|_| "[]".into());
        let kinds: Vec<&str> = settled.iter().map(DriverSetting::kind).collect();
        let mut tx = self.db.begin_write().await?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE hosts SET power = $1, updated_at = $2 WHERE id = $3")
                .bind(&text)
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        let detail = if kinds.is_empty() {
            format!("{} removed the power drivers", actor.username)
        } else {
            format!(
                "{} set the power drivers: {}",
                actor.username,
                kinds.join(", ")
            )
        };
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO host_events (host_id, at, source_ip, kind, detail) VALUES ($1, $2, NULL, 'power', $3)",
            )
            .bind(id)
            .bind(now)
            .bind(&detail)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        tracing::info!(host = id, drivers = ?kinds, by = %actor.username, "power drivers set");
        self.get(id)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("There is no host {id}.")))
    }

    /// Asks for `request` on each of `ids` (the caller's hosts; any host
    /// for an admin): all or none. One job per host; power-ons wait their
    /// turn per pool. Returns the jobs in the order of `ids`.
    #[allow(clippy::too_many_arguments)]
    pub async fn request_power(
        &self,
        jobs: &Jobs,
        actor: &Actor,
        ids: &[i64],
        request: PowerRequest,
        pace: Pace,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, HostsError> {
        if ids.is_empty() {
            return Err(HostsError::Invalid("Name at least one host.".into()));
        }
        if ids.len() > MAX_BULK {
            return Err(HostsError::Invalid(format!(
                "Power at most {MAX_BULK} hosts at once."
            )));
        }
        let mut hosts = Vec::with_capacity(ids.len());
        for &id in ids {
            if hosts.iter().any(|h: &Host| h.id == id) {
                continue;
            }
            let host = self.controlled(id, actor).await?;
            let drivers = host.power.effective();
            if drivers.is_empty() {
                return Err(HostsError::Conflict(format!(
                    "{} has no power driver yet; an administrator sets its IPMI or Wake-on-LAN (or its pool's Wake-on-LAN) first.",
                    host.name
                )));
            }
            if !can(&drivers, request.action) {
                let have: Vec<&str> = drivers.iter().map(DriverSetting::kind).collect();
                return Err(HostsError::Conflict(format!(
                    "{} cannot be asked to “{}”: its power is reached by {} only.",
                    host.name,
                    request.action.as_str(),
                    have.join(", ")
                )));
            }
            hosts.push(host);
        }
        let mut tx = self.db.begin_write().await?;
        if let crate::db::Tx::Postgres(tx) = &mut tx {
            // Pacing reads then writes `power_starts`: one request at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7301)")
                .execute(&mut **tx)
                .await?;
        }
        let mut out = Vec::with_capacity(hosts.len());
        for host in &hosts {
            let run_at = match (request.action.starts(), host.pool_id) {
                (true, Some(pool)) => Some(next_start(&mut tx, pool, pace, now).await?),
                _ => None,
            };
            let mut new = NewJob {
                kind: POWER_JOB,
                payload: json!({
                    "host_id": host.id,
                    "action": request.action,
                    "pxe": request.pxe,
                }),
                requested_by: Some(actor.user_id),
                target: None,
                run_at,
            }
            .target("host", host.id);
            if run_at.is_some_and(|at| at <= now) {
                new.run_at = None;
            }
            let job = jobs.enqueue_in(&mut tx, new, now).await?;
            let waits = job.run_at > now + Duration::milliseconds(500);
            let detail = if waits {
                format!(
                    "power {} queued until {} (power-ons are paced per pool)",
                    request.action.as_str(),
                    job.run_at.format("%H:%M:%S UTC")
                )
            } else {
                format!("power {}", request.action.as_str())
            };
            crate::with_tx!(&mut tx, conn => {
                sqlx::query(
                    "UPDATE hosts SET power_action = $1, power_action_at = $2, power_result = 'queued' WHERE id = $3",
                )
                .bind(request.action.as_str())
                .bind(now)
                .bind(host.id)
                .execute(&mut *conn)
                .await
                .map(|_| ())
            })?;
            audit(
                &mut tx,
                now,
                &Acting {
                    actor: Some(actor),
                    source_ip,
                },
                "power",
                (host.id, &host.name),
                host.holder.as_deref(),
                &detail,
            )
            .await?;
            out.push(job);
        }
        jobs.events().job_due(&mut tx).await?;
        tx.commit().await?;
        jobs.events().job_committed();
        tracing::info!(hosts = out.len(), action = request.action.as_str(), by = %actor.username, "power requested");
        Ok(out)
    }
}

impl Hosts {
    /// "Reinstall now": marks the host for a clean install (unless it is
    /// marked), boots it from the network once where the BMC can, and
    /// power-cycles it (an off node is powered on; Wake-on-LAN wakes it).
    pub async fn reinstall(
        &self,
        jobs: &Jobs,
        actor: &Actor,
        id: i64,
        pace: Pace,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Host, Job), HostsError> {
        let host = self.controlled(id, actor).await?;
        let drivers = host.power.effective();
        if drivers.is_empty() {
            return Err(HostsError::Conflict(format!(
                "{} has no power driver yet; an administrator sets its IPMI or Wake-on-LAN first. Mark it and start it by hand meanwhile.",
                host.name
            )));
        }
        let action = if can(&drivers, PowerAction::Cycle) {
            PowerAction::Cycle
        } else {
            PowerAction::Wake
        };
        let host = if host.state == super::HostState::InstallPending {
            host
        } else {
            self.mark(id, actor, now).await?
        };
        let mut jobs = self
            .request_power(
                jobs,
                actor,
                &[id],
                PowerRequest { action, pxe: true },
                pace,
                source_ip,
                now,
            )
            .await?;
        let job = jobs
            .pop()
            .ok_or_else(|| HostsError::Conflict("No power job was queued.".into()))?;
        Ok((host, job))
    }
}

/// The time of the next power-on in `pool`: now, unless `per_window`
/// starts already fall within the window before it. Records it.
async fn next_start(
    tx: &mut crate::db::Tx,
    pool: i64,
    pace: Pace,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let per = i64::from(pace.per_window.max(1));
    // The newest `per` starts scheduled within the window (or later).
    let recent: Vec<DateTime<Utc>> = crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT at FROM power_starts WHERE pool_id = $1 AND at > $2 ORDER BY at DESC LIMIT $3",
        )
        .bind(pool)
        .bind(now - pace.window)
        .bind(per)
        .fetch_all(&mut *conn)
        .await
    })?;
    let at = if recent.len() as i64 >= per {
        // The oldest of the last `per` starts plus a window.
        recent
            .last()
            .map(|oldest| (*oldest + pace.window).max(now))
            .unwrap_or(now)
    } else {
        now
    };
    crate::with_tx!(tx, conn => {
        sqlx::query("DELETE FROM power_starts WHERE pool_id = $1 AND at < $2")
            .bind(pool)
            .bind(now - pace.window - pace.window)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    crate::with_tx!(tx, conn => {
        sqlx::query("INSERT INTO power_starts (pool_id, at) VALUES ($1, $2)")
            .bind(pool)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(at)
}
