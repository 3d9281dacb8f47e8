//! `power`: carries out a power request on one host. The drivers are
//! tried in order; "sent" (the controller took it) and "confirmed" (a state
//! read agrees) are told apart. The outcome goes to the host's row, its
//! timeline, and the holder's browser.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::Db;
use crate::jobs::{Events, JobContext, JobError, JobKind};
use crate::power::sealed::SecretBox;
use crate::power::settings::{DriverContext, DriverSetting, WakeDefaults, effective};
use crate::power::{PowerAction, PowerDriver, PowerError, PowerState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerPayload {
    pub host_id: i64,
    pub action: PowerAction,
    /// Boot from the network once first.
    #[serde(default)]
    pub pxe: bool,
}

/// What power jobs need besides their payload.
#[derive(Clone)]
pub struct PowerJob {
    pub db: Db,
    pub events: Events,
    pub secrets: SecretBox,
    pub ipmi_timeout: Duration,
    pub ipmi_retries: u32,
    /// How long to wait for the state asked for.
    pub confirm: Duration,
}

#[derive(sqlx::FromRow)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) holder_id: Option<i64>,
    pub(crate) power: String,
    pub(crate) pool_wake: Option<String>,
    pub(crate) power_state: Option<String>,
}

/// The state an action leads to, if one can be checked.
fn expected(action: PowerAction) -> PowerState {
    match action {
        PowerAction::Off | PowerAction::Soft => PowerState::Off,
        PowerAction::On | PowerAction::Cycle | PowerAction::Wake => PowerState::On,
    }
}

impl PowerJob {
    async fn target(&self, id: i64) -> Result<(Target, Vec<String>), JobError> {
        self.load(id)
            .await
            .map_err(|e| JobError::Transient(format!("database: {e}")))?
            .ok_or_else(|| JobError::Permanent(format!("Host {id} no longer exists.")))
    }

    /// A host's power settings and MACs; none if it is gone.
    pub(crate) async fn load(&self, id: i64) -> Result<Option<(Target, Vec<String>)>, sqlx::Error> {
        let target: Option<Target> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT h.name, h.state, h.holder_id, h.power, p.wake AS pool_wake, h.power_state \
                 FROM hosts h LEFT JOIN pools p ON p.id = h.pool_id WHERE h.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        let Some(target) = target else {
            return Ok(None);
        };
        let macs: Vec<String> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT mac FROM host_macs WHERE host_id = $1 ORDER BY mac")
                .bind(id)
                .fetch_all(pool)
                .await
        })?;
        Ok(Some((target, macs)))
    }

    /// The host's drivers (its own and its pool's), ready to use, and why
    /// any could not be built.
    pub(crate) fn drivers(
        &self,
        target: &Target,
        macs: &[String],
    ) -> (Vec<Box<dyn PowerDriver>>, Vec<String>) {
        let own: Vec<DriverSetting> = serde_json::from_str(&target.power).unwrap_or_default();
        let pool: Option<WakeDefaults> = target
            .pool_wake
            .as_deref()
            .and_then(|w| serde_json::from_str(w).ok());
        let context = DriverContext {
            macs,
            secrets: &self.secrets,
            ipmi_timeout: self.ipmi_timeout,
            ipmi_retries: self.ipmi_retries,
        };
        let mut drivers = Vec::new();
        let mut problems = Vec::new();
        for setting in effective(&own, pool.as_ref()) {
            match setting.driver(&context) {
                Ok(driver) => drivers.push(driver),
                Err(reason) => problems.push(reason),
            }
        }
        (drivers, problems)
    }

    /// Writes the outcome to the host, its timeline and the holder's (and
    /// requester's) browser.
    async fn record(
        &self,
        id: i64,
        target: &Target,
        requester: Option<i64>,
        state: Option<PowerState>,
        result: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE hosts SET power_result = $1, \
                 power_state = COALESCE($2, power_state), \
                 power_state_at = CASE WHEN $2 IS NULL THEN power_state_at ELSE $3 END \
                 WHERE id = $4",
            )
            .bind(result)
            .bind(state.map(PowerState::as_str))
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO host_events (host_id, at, source_ip, kind, detail) VALUES ($1, $2, NULL, 'power', $3)",
            )
            .bind(id)
            .bind(now)
            .bind(detail)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        let mut people: Vec<i64> = target.holder_id.into_iter().chain(requester).collect();
        people.sort_unstable();
        people.dedup();
        let events = self
            .events
            .record(
                &mut tx,
                &people,
                "host",
                &json!({
                    "host": id,
                    "name": target.name,
                    "state": target.state,
                    "detail": detail,
                    "power": result,
                }),
                now,
            )
            .await?;
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.events.committed(events);
        Ok(())
    }

    /// Polls the drivers that read state until it is `want` or the time is
    /// up; the last state read, if any.
    async fn confirm(
        &self,
        drivers: &[Box<dyn PowerDriver>],
        want: PowerState,
    ) -> Option<PowerState> {
        let deadline = tokio::time::Instant::now() + self.confirm;
        let mut last = None;
        loop {
            for driver in drivers {
                if let Ok(Some(state)) = driver.state().await {
                    last = Some(state);
                    break;
                }
            }
            if last.is_none() || last == Some(want) || tokio::time::Instant::now() >= deadline {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl JobKind for PowerJob {
    const KIND: &'static str = crate::hosts::power::POWER_JOB;
    const TITLE: &'static str = "Power";
    type Payload = PowerPayload;

    fn dedup_key(&self, payload: &PowerPayload) -> Option<String> {
        Some(format!(
            "power:{}:{}",
            payload.host_id,
            payload.action.as_str()
        ))
    }

    async fn run(&self, ctx: &JobContext, payload: PowerPayload) -> Result<Value, JobError> {
        let id = payload.host_id;
        let action = payload.action;
        let (target, macs) = self.target(id).await?;
        let (drivers, mut problems) = self.drivers(&target, &macs);
        let outcome = self
            .carry_out(&drivers, action, payload.pxe, &mut problems)
            .await;
        let last_attempt = ctx.attempt >= ctx.max_attempts;
        match outcome {
            Ok((driver, pxe)) => {
                let want = expected(action);
                let state = self.confirm(&drivers, want).await;
                let confirmed = state == Some(want);
                let result = if confirmed { "confirmed" } else { "sent" };
                let pxe_note = if pxe {
                    ", booting from the network once"
                } else {
                    ""
                };
                let detail = match (confirmed, state) {
                    (true, _) => {
                        format!("power {} confirmed by {driver}{pxe_note}", action.as_str())
                    }
                    (false, Some(s)) => format!(
                        "power {} sent by {driver}{pxe_note}; the node still reads {} after {} s",
                        action.as_str(),
                        s.as_str(),
                        self.confirm.as_secs()
                    ),
                    (false, None) => format!(
                        "power {} sent by {driver}{pxe_note} (its state cannot be read)",
                        action.as_str()
                    ),
                };
                self.record(id, &target, ctx.requested_by, state, result, &detail)
                    .await
                    .map_err(|e| JobError::Transient(format!("database: {e}")))?;
                Ok(json!({
                    "host": id,
                    "action": action,
                    "driver": driver,
                    "result": result,
                    "state": state,
                    "pxe": pxe,
                }))
            }
            Err(err) => {
                let permanent = !matches!(err, PowerError::Unreachable(_));
                if permanent || last_attempt {
                    let detail = format!("power {} failed: {err}", action.as_str());
                    let _ = self
                        .record(
                            id,
                            &target,
                            ctx.requested_by,
                            None,
                            &format!("failed: {err}"),
                            &detail,
                        )
                        .await;
                }
                Err(if permanent {
                    JobError::Permanent(err.to_string())
                } else {
                    JobError::Transient(err.to_string())
                })
            }
        }
    }
}

impl PowerJob {
    /// Sets the network boot (if asked) and sends the action through the
    /// first driver that takes it; the driver's description, and whether
    /// the network boot was set.
    async fn carry_out(
        &self,
        drivers: &[Box<dyn PowerDriver>],
        action: PowerAction,
        pxe: bool,
        problems: &mut Vec<String>,
    ) -> Result<(String, bool), PowerError> {
        let mut pxe_set = false;
        if pxe {
            for driver in drivers {
                match driver.pxe_once().await {
                    Ok(true) => {
                        pxe_set = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => problems.push(format!("{}: {e}", driver.describe())),
                }
            }
        }
        // An off node cannot be cycled by every BMC: power it on instead.
        let action = if action == PowerAction::Cycle {
            let mut off = false;
            for driver in drivers {
                if let Ok(Some(state)) = driver.state().await {
                    off = state == PowerState::Off;
                    break;
                }
            }
            if off { PowerAction::On } else { action }
        } else {
            action
        };
        let mut last: Option<PowerError> = None;
        for driver in drivers.iter().filter(|d| d.can(action)) {
            match driver.act(action).await {
                Ok(()) => return Ok((driver.describe(), pxe_set)),
                Err(e) => {
                    problems.push(format!("{}: {e}", driver.describe()));
                    // Refusals are final unless another driver may work.
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(PowerError::Unreachable(_)) => PowerError::Unreachable(problems.join("; ")),
            Some(PowerError::Refused(_)) => PowerError::Refused(problems.join("; ")),
            _ if !problems.is_empty() => PowerError::Refused(problems.join("; ")),
            _ => PowerError::Unsupported(format!(
                "No power driver of this host can “{}” it.",
                action.as_str()
            )),
        })
    }
}
