//! Reading nodes' power without being asked to change it: the periodic,
//! low-rate state poll (`power.poll_seconds`) that keeps the shown state
//! fresh, and the administrators' "test connection".

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::power::{PowerJob, Target};
use crate::hosts::{Actor, HostsError};
use crate::power::{PowerDriver, PowerError, PowerState};

/// How one driver answered a connection test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverCheck {
    /// "IPMI at 10.0.0.5:623", "Wake-on-LAN to 10.0.0.255:9 for …".
    pub driver: String,
    pub outcome: CheckOutcome,
    /// A sentence for people.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    /// It answered.
    Ok,
    /// It did not answer, or refused.
    Failed,
    /// Nothing answers this driver (Wake-on-LAN): it cannot be tested.
    Untestable,
}

/// Most hosts one poll round reads.
const POLL_BATCH: i64 = 500;

impl PowerJob {
    /// Tries each of a host's drivers (administrators): BMCs are asked for
    /// the power state (which is recorded); Wake-on-LAN cannot be tested
    /// and says where its packets would go.
    pub async fn check(&self, actor: &Actor, id: i64) -> Result<Vec<DriverCheck>, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators test how a node's power is reached.".into(),
            ));
        }
        let (target, macs) = self
            .load(id)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("There is no host {id}.")))?;
        let (drivers, problems) = self.drivers(&target, &macs);
        let mut out: Vec<DriverCheck> = problems
            .into_iter()
            .map(|detail| DriverCheck {
                driver: "settings".into(),
                outcome: CheckOutcome::Failed,
                detail,
            })
            .collect();
        let mut read = None;
        for driver in &drivers {
            let check = match driver.state().await {
                Ok(Some(state)) => {
                    read.get_or_insert(state);
                    DriverCheck {
                        driver: driver.describe(),
                        outcome: CheckOutcome::Ok,
                        detail: format!("Answers: the power is {}.", state.as_str()),
                    }
                }
                Ok(None) => DriverCheck {
                    driver: driver.describe(),
                    outcome: CheckOutcome::Untestable,
                    detail: "Nothing answers Wake-on-LAN, so it cannot be tested from here: power the node on with it and watch it boot.".into(),
                },
                Err(err) => DriverCheck {
                    driver: driver.describe(),
                    outcome: CheckOutcome::Failed,
                    detail: match err {
                        PowerError::Unreachable(e)
                        | PowerError::Refused(e)
                        | PowerError::Unsupported(e) => e,
                    },
                },
            };
            out.push(check);
        }
        if out.is_empty() {
            return Err(HostsError::Conflict(format!(
                "{} has no power driver to test.",
                target.name
            )));
        }
        if let Some(state) = read {
            self.store_state(id, &target, state, "the connection test", Utc::now())
                .await?;
        }
        Ok(out)
    }

    /// One round of the state poll: reads the power of every host with a
    /// driver that can read it and that no replica read within `every`.
    /// Returns how many hosts answered.
    pub async fn poll(&self, every: Duration, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
        let cutoff = now
            - chrono::Duration::from_std(every).unwrap_or(chrono::Duration::minutes(5))
            + chrono::Duration::milliseconds(500);
        // Only BMCs read state; Wake-on-LAN-only hosts are left alone.
        let due: Vec<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM hosts WHERE power LIKE '%\"driver\":\"ipmi\"%' \
                 AND (power_polled_at IS NULL OR power_polled_at < $1) ORDER BY id LIMIT $2",
            )
            .bind(cutoff)
            .bind(POLL_BATCH)
            .fetch_all(pool)
            .await
        })?;
        let mut answered = 0;
        for id in due {
            // Claim the host: of several replicas, one reads it.
            let claimed = crate::with_pool!(&self.db, pool => {
                sqlx::query(
                    "UPDATE hosts SET power_polled_at = $1 WHERE id = $2 \
                     AND (power_polled_at IS NULL OR power_polled_at < $3)",
                )
                .bind(Utc::now())
                .bind(id)
                .bind(cutoff)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            if claimed != 1 {
                continue;
            }
            let Some((target, macs)) = self.load(id).await? else {
                continue;
            };
            let (drivers, _) = self.drivers(&target, &macs);
            match read(&drivers).await {
                Some(Ok(state)) => {
                    answered += 1;
                    self.store_state(id, &target, state, "the state poll", Utc::now())
                        .await?;
                }
                Some(Err(err)) => {
                    tracing::warn!(host = %target.name, error = %err, "power state poll");
                }
                None => {}
            }
        }
        Ok(answered)
    }

    /// Records a state read; a change also goes to the timeline and the
    /// holder's browser.
    async fn store_state(
        &self,
        id: i64,
        target: &Target,
        state: PowerState,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let changed = target.power_state.as_deref() != Some(state.as_str());
        let mut tx = self.db.begin().await?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query("UPDATE hosts SET power_state = $1, power_state_at = $2 WHERE id = $3")
                .bind(state.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        let mut events = Vec::new();
        if changed {
            let detail = format!("power found {} by {by}", state.as_str());
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
            let people: Vec<i64> = target.holder_id.into_iter().collect();
            events = self
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
                        "power_state": state.as_str(),
                    }),
                    now,
                )
                .await?;
        }
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.events.committed(events);
        Ok(())
    }
}

/// The state as the first driver that can read it says; none if no driver
/// can.
async fn read(drivers: &[Box<dyn PowerDriver>]) -> Option<Result<PowerState, PowerError>> {
    let mut failed = None;
    for driver in drivers {
        match driver.state().await {
            Ok(Some(state)) => return Some(Ok(state)),
            Ok(None) => {}
            Err(err) => failed = Some(err),
        }
    }
    failed.map(Err)
}
