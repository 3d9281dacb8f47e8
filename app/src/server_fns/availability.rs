//! The availability page's data: the pools the person may draw from, each
//! host free or taken until when, and a calendar of the next two weeks.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Days the calendar shows, today first.
pub const DAYS: usize = 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Day {
    /// Free that day (as far as leases go).
    Open,
    /// Taken all day.
    Taken,
    /// The lease ends that day.
    Ends,
    /// Out of allocation (installing, failed, maintenance).
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRow {
    /// Set when the person may open the host's page.
    pub id: Option<i64>,
    pub name: String,
    /// `free`, `yours`, `taken`, `unavailable`.
    pub status: String,
    /// In words: "free", "taken until …", …
    pub label: String,
    /// Administrators only.
    pub holder: Option<String>,
    pub days: Vec<Day>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAvailability {
    pub name: String,
    pub description: String,
    pub free: i64,
    pub held: i64,
    pub hosts: i64,
    /// Lease length given at allocation, in hours (`None`: no end).
    pub lease_hours: Option<i32>,
    pub rows: Vec<SlotRow>,
    /// How many leases end on each calendar day.
    pub ending: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityView {
    pub pools: Vec<PoolAvailability>,
    /// Column heads: weekday and day of month.
    pub days: Vec<(String, String)>,
    pub admin: bool,
}

/// Where a lease ending at `until` (none: no end) stands on `day`.
#[cfg(feature = "ssr")]
fn taken_on(until: Option<chrono::DateTime<chrono::Utc>>, day: chrono::NaiveDate) -> Day {
    match until {
        None => Day::Taken,
        Some(end) if end.date_naive() == day => Day::Ends,
        Some(end) if end.date_naive() > day => Day::Taken,
        Some(_) => Day::Open,
    }
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "availability")]
pub async fn availability() -> Result<Option<AvailabilityView>, ServerFnError> {
    use super::account::when;
    use super::current_user::request_session;
    use bootler_domain::accounts::Role;
    use bootler_domain::hosts::{Actor, Hosts, SlotStatus};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let hosts =
        use_context::<Hosts>().ok_or_else(|| ServerFnError::new("hosts service missing"))?;
    let user = session.user;
    let admin = user.role == Role::Admin;
    let pools = hosts
        .availability(&Actor {
            user_id: user.id,
            username: user.username.clone(),
            admin,
        })
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let today = chrono::Utc::now().date_naive();
    let days: Vec<chrono::NaiveDate> = today.iter_days().take(DAYS).collect();
    let pools = pools
        .into_iter()
        .map(|a| {
            let rows: Vec<SlotRow> = a
                .hosts
                .into_iter()
                .map(|slot| {
                    let until = slot.until.map(when);
                    let (status, label) = match slot.status {
                        SlotStatus::Free => ("free", "free".to_string()),
                        SlotStatus::Unavailable => ("unavailable", "out of allocation".to_string()),
                        SlotStatus::Yours => (
                            "yours",
                            until.map_or("yours, no end".into(), |u| format!("yours until {u}")),
                        ),
                        SlotStatus::Taken => (
                            "taken",
                            until.map_or("taken, no end".into(), |u| format!("taken until {u}")),
                        ),
                    };
                    let cells = days
                        .iter()
                        .map(|day| match slot.status {
                            SlotStatus::Free => Day::Open,
                            SlotStatus::Unavailable => Day::Closed,
                            SlotStatus::Yours | SlotStatus::Taken => taken_on(slot.until, *day),
                        })
                        .collect();
                    SlotRow {
                        id: slot.id,
                        name: slot.name,
                        status: status.to_string(),
                        label,
                        holder: slot.holder,
                        days: cells,
                    }
                })
                .collect();
            let ending = (0..days.len())
                .map(|i| rows.iter().filter(|r| r.days[i] == Day::Ends).count())
                .collect();
            PoolAvailability {
                name: a.pool.name,
                description: a.pool.description,
                free: a.pool.free,
                held: a.pool.held,
                hosts: a.pool.hosts,
                lease_hours: a.pool.default_lease_hours,
                rows,
                ending,
            }
        })
        .collect();
    Ok(Some(AvailabilityView {
        pools,
        days: days
            .iter()
            .map(|d| (d.format("%a").to_string(), d.format("%-d %b").to_string()))
            .collect(),
        admin,
    }))
}
