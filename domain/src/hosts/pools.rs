//! Pools group hosts for allocation (thesis §5.2). Administrators create
//! them, say who may draw from them and for how long, and enrol hosts.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Actor, Hosts, HostsError, TemplateChoice};
use crate::power::settings::WakeDefaults;
use crate::templates::Kind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Who may draw from it: usernames, and groups as `@name`; empty:
    /// everyone.
    pub access: Vec<String>,
    /// Lease length given at allocation, in hours; none: no end.
    pub default_lease_hours: Option<i32>,
    /// The longest lease (and extension) in hours; none: no cap.
    pub max_lease_hours: Option<i32>,
    /// Hosts one person may hold from it at once; none: no limit here.
    pub max_per_user: Option<i32>,
    /// Released hosts are installed afresh (with `system` and `unattended`)
    /// before the next holder gets them.
    pub clean_install: bool,
    pub system: Option<String>,
    pub unattended: Option<String>,
    /// Wake-on-LAN for its nodes (those without drivers of their own, and
    /// as the fallback of a BMC).
    pub wake: Option<WakeDefaults>,
    /// Hosts enrolled in it.
    pub hosts: i64,
    /// Of those, free for allocation now.
    pub free: i64,
    /// Of those, held by someone.
    pub held: i64,
    /// The soonest end of a lease of its hosts.
    pub next_lease_end: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PoolRow {
    id: i64,
    name: String,
    description: String,
    access: String,
    default_lease_hours: Option<i32>,
    max_lease_hours: Option<i32>,
    max_per_user: Option<i32>,
    clean_install: bool,
    system: Option<String>,
    unattended: Option<String>,
    wake: Option<String>,
    hosts: i64,
    free: i64,
    held: i64,
    next_lease_end: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<PoolRow> for Pool {
    fn from(row: PoolRow) -> Pool {
        Pool {
            id: row.id,
            name: row.name,
            description: row.description,
            access: serde_json::from_str(&row.access).unwrap_or_default(),
            default_lease_hours: row.default_lease_hours,
            max_lease_hours: row.max_lease_hours,
            max_per_user: row.max_per_user,
            clean_install: row.clean_install,
            system: row.system,
            unattended: row.unattended,
            wake: row
                .wake
                .as_deref()
                .and_then(|w| serde_json::from_str(w).ok()),
            hosts: row.hosts,
            free: row.free,
            held: row.held,
            next_lease_end: row.next_lease_end,
            created_at: row.created_at,
        }
    }
}

/// Pools with their rules and counts; `$tail` filters and orders.
macro_rules! select_pools {
    ($tail:literal) => {
        concat!(
            "SELECT p.id, p.name, p.description, p.access, p.default_lease_hours, \
     p.max_lease_hours, p.max_per_user, p.clean_install, st.name AS system, ut.name AS unattended, p.wake, \
     (SELECT COUNT(*) FROM hosts h WHERE h.pool_id = p.id) AS hosts, \
     (SELECT COUNT(*) FROM hosts h WHERE h.pool_id = p.id AND h.holder_id IS NULL \
        AND NOT h.maintenance AND h.state IN ('local', 'installed')) AS free, \
     (SELECT COUNT(*) FROM hosts h WHERE h.pool_id = p.id AND h.holder_id IS NOT NULL) AS held, \
     (SELECT MIN(h.lease_ends_at) FROM hosts h WHERE h.pool_id = p.id AND h.holder_id IS NOT NULL) AS next_lease_end, \
     p.created_at FROM pools p \
     LEFT JOIN templates st ON st.id = p.system_template_id \
     LEFT JOIN templates ut ON ut.id = p.unattended_template_id",
            " ",
            $tail
        )
    };
}

/// What `POST /api/v1/pools` and `PUT /api/v1/pools/{name}` set. `None`:
/// leave as it is (or the default, for a new pool); `Some(None)`: clear.
#[derive(Debug, Clone, Default)]
pub struct PoolChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub access: Option<Vec<String>>,
    pub default_lease_hours: Option<Option<i32>>,
    pub max_lease_hours: Option<Option<i32>>,
    pub max_per_user: Option<Option<i32>>,
    pub clean_install: Option<bool>,
    pub system: Option<Option<TemplateChoice>>,
    pub unattended: Option<Option<TemplateChoice>>,
    pub wake: Option<Option<WakeDefaults>>,
}

/// A pool's name: like a host name label (letters, digits, '-', '_').
fn check_pool_name(name: &str) -> Result<String, HostsError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(HostsError::Invalid(format!(
            "“{}” is not a pool name: 1 to 64 letters, digits, '-', '_' or '.'.",
            name.chars().take(70).collect::<String>()
        )))
    }
}

fn check_hours(key: &str, value: Option<i32>) -> Result<Option<i32>, HostsError> {
    match value {
        Some(h) if !(1..=24 * 365 * 10).contains(&h) => Err(HostsError::Invalid(format!(
            "`{key}` is a number of hours between 1 and 87600, or null for none."
        ))),
        other => Ok(other),
    }
}

/// The settings a pool ends up with, checked together.
struct Settled {
    name: String,
    description: String,
    access: Vec<String>,
    default_lease_hours: Option<i32>,
    max_lease_hours: Option<i32>,
    max_per_user: Option<i32>,
    clean_install: bool,
    system: Option<i64>,
    unattended: Option<i64>,
    /// As stored (JSON).
    wake: Option<String>,
}

/// Whether an access list names any group.
pub(super) fn names_groups(access: &[String]) -> bool {
    access.iter().any(|entry| entry.starts_with('@'))
}

/// Whether `actor` (in `groups`) may draw from a pool with `access`.
pub(super) fn may_draw(access: &[String], actor: &Actor, groups: &[String]) -> bool {
    actor.admin
        || access.is_empty()
        || access.iter().any(|entry| match entry.strip_prefix('@') {
            Some(group) => groups.iter().any(|g| g == group),
            None => entry == &actor.username,
        })
}

impl Hosts {
    /// The groups `actor` belongs to, from the directory.
    pub(super) async fn groups_of(&self, actor: &Actor) -> Result<Vec<String>, HostsError> {
        self.directory.groups_of(&actor.username).await.map_err(|err| {
            tracing::warn!(error = %err, "could not look up groups");
            HostsError::Unavailable(
                "The directory does not answer, so your groups (which pools may lend to) are unknown right now. Try again in a minute.".into(),
            )
        })
    }

    /// Every pool, by name, with its rules and how many hosts are free.
    pub async fn pools(&self) -> Result<Vec<Pool>, HostsError> {
        self.log.flush().await;
        let rows: Vec<PoolRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_pools!("ORDER BY p.name"))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(Pool::from).collect())
    }

    /// The pools `actor` may draw from (every pool for an admin).
    pub async fn pools_for(&self, actor: &Actor) -> Result<Vec<Pool>, HostsError> {
        let pools = self.pools().await?;
        if actor.admin {
            return Ok(pools);
        }
        let groups = if pools.iter().any(|p| names_groups(&p.access)) {
            self.groups_of(actor).await?
        } else {
            Vec::new()
        };
        Ok(pools
            .into_iter()
            .filter(|p| may_draw(&p.access, actor, &groups))
            .collect())
    }

    /// One pool by name.
    pub async fn pool(&self, name: &str) -> Result<Option<Pool>, HostsError> {
        let row: Option<PoolRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_pools!("WHERE p.name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Pool::from))
    }

    async fn settle(
        &self,
        actor: &Actor,
        current: Option<&Pool>,
        change: &PoolChange,
    ) -> Result<Settled, HostsError> {
        let name = match (&change.name, current) {
            (Some(name), _) => check_pool_name(name)?,
            (None, Some(pool)) => pool.name.clone(),
            (None, None) => return Err(HostsError::Invalid("A pool needs a `name`.".into())),
        };
        let description = change
            .description
            .clone()
            .or_else(|| current.map(|p| p.description.clone()))
            .unwrap_or_default()
            .trim()
            .to_string();
        if description.chars().count() > 500 {
            return Err(HostsError::Invalid(
                "A pool's description has at most 500 characters.".into(),
            ));
        }
        let access = change
            .access
            .clone()
            .or_else(|| current.map(|p| p.access.clone()))
            .unwrap_or_default();
        if access.len() > 500 {
            return Err(HostsError::Invalid(
                "List at most 500 people in `access`.".into(),
            ));
        }
        let mut names = Vec::new();
        for entry in &access {
            let entry = entry.trim();
            if let Some(group) = entry.strip_prefix('@') {
                // A group may be created in the directory after the pool.
                if !crate::directory::valid_group_name(group) {
                    return Err(HostsError::Invalid(format!(
                        "“{}” (in `access`) is not a group's name: after the @ come 1–64 letters, digits, dots, dashes or underscores.",
                        entry.chars().take(70).collect::<String>()
                    )));
                }
            } else {
                let known: Option<i64> = crate::with_pool!(&self.db, pool => {
                    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
                        .bind(entry)
                        .fetch_optional(pool)
                        .await
                })?;
                if known.is_none() {
                    return Err(HostsError::Invalid(format!(
                        "There is no user “{}” (in `access`; write a group as @name).",
                        entry.chars().take(70).collect::<String>()
                    )));
                }
            }
            if !entry.is_empty() && !names.iter().any(|n| n == entry) {
                names.push(entry.to_string());
            }
        }
        let pick = |given: Option<Option<i32>>, old: Option<i32>| match given {
            Some(value) => value,
            None => old,
        };
        let default_lease_hours = check_hours(
            "default_lease_hours",
            pick(
                change.default_lease_hours,
                current.and_then(|p| p.default_lease_hours),
            ),
        )?;
        let max_lease_hours = check_hours(
            "max_lease_hours",
            pick(
                change.max_lease_hours,
                current.and_then(|p| p.max_lease_hours),
            ),
        )?;
        if let (Some(default), Some(max)) = (default_lease_hours, max_lease_hours)
            && default > max
        {
            return Err(HostsError::Invalid(format!(
                "The default lease ({default} hours) is longer than the longest one ({max} hours)."
            )));
        }
        let max_per_user = match pick(change.max_per_user, current.and_then(|p| p.max_per_user)) {
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(HostsError::Invalid(
                    "`max_per_user` is between 1 and 10000, or null for no limit.".into(),
                ));
            }
            other => other,
        };
        let template =
            |choice: &Option<Option<TemplateChoice>>, old: Option<&String>, kind: Kind| {
                let choice = choice.clone();
                let old = old.cloned();
                async move {
                    match choice {
                        Some(None) => Ok::<Option<i64>, HostsError>(None),
                        Some(Some(choice)) => Ok(Some(self.global_template(&choice, kind).await?)),
                        None => match old {
                            Some(name) => Ok(Some(
                                self.global_template(&TemplateChoice::Name(name), kind)
                                    .await?,
                            )),
                            None => Ok(None),
                        },
                    }
                }
            };
        let system = template(
            &change.system,
            current.and_then(|p| p.system.as_ref()),
            Kind::System,
        )
        .await?;
        let unattended = template(
            &change.unattended,
            current.and_then(|p| p.unattended.as_ref()),
            Kind::Unattended,
        )
        .await?;
        let clean_install = change
            .clean_install
            .or(current.map(|p| p.clean_install))
            .unwrap_or(false);
        if clean_install && system.is_none() {
            return Err(HostsError::Invalid(
                "A pool that installs released hosts afresh needs a `system` template (and usually an `unattended` one).".into(),
            ));
        }
        let wake = match &change.wake {
            Some(Some(given)) => Some(given.clone().settle().map_err(HostsError::Invalid)?),
            Some(None) => None,
            None => current.and_then(|p| p.wake.clone()),
        };
        let wake = wake.and_then(|w| serde_json::to_string(&w).ok());
        let _ = actor;
        Ok(Settled {
            name,
            description,
            access: names,
            default_lease_hours,
            max_lease_hours,
            max_per_user,
            clean_install,
            system,
            unattended,
            wake,
        })
    }

    /// A global template of `kind` for a pool's clean install.
    async fn global_template(
        &self,
        choice: &TemplateChoice,
        kind: Kind,
    ) -> Result<i64, HostsError> {
        let found: Option<i64> = match choice {
            TemplateChoice::Id(id) => crate::with_pool!(&self.db, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM templates WHERE id = $1 AND kind = $2 AND owner_id IS NULL",
                )
                .bind(id)
                .bind(kind.as_str())
                .fetch_optional(pool)
                .await
            })?,
            TemplateChoice::Name(name) => crate::with_pool!(&self.db, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM templates WHERE name = $1 AND kind = $2 AND owner_id IS NULL",
                )
                .bind(name)
                .bind(kind.as_str())
                .fetch_optional(pool)
                .await
            })?,
        };
        found.ok_or_else(|| {
            let which = match choice {
                TemplateChoice::Id(id) => id.to_string(),
                TemplateChoice::Name(name) => {
                    format!("“{}”", name.chars().take(70).collect::<String>())
                }
            };
            HostsError::Invalid(format!(
                "There is no global {} template {which}.",
                kind.as_str()
            ))
        })
    }

    /// A new pool (administrators).
    pub async fn create_pool(
        &self,
        actor: &Actor,
        change: &PoolChange,
        now: DateTime<Utc>,
    ) -> Result<Pool, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators create pools.".into(),
            ));
        }
        let s = self.settle(actor, None, change).await?;
        let inserted = crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO pools (name, description, access, default_lease_hours, max_lease_hours, \
                 max_per_user, clean_install, system_template_id, unattended_template_id, created_at, wake) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&s.name)
            .bind(&s.description)
            .bind(serde_json::to_string(&s.access).unwrap_or_else(|_| "[]".into()))
            .bind(s.default_lease_hours)
            .bind(s.max_lease_hours)
            .bind(s.max_per_user)
            .bind(s.clean_install)
            .bind(s.system)
            .bind(s.unattended)
            .bind(now)
            .bind(&s.wake)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match inserted {
            Ok(()) => {}
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                return Err(HostsError::Conflict(format!(
                    "There is already a pool named “{}”.",
                    s.name
                )));
            }
            Err(err) => return Err(err.into()),
        }
        self.pool(&s.name)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("Pool “{}” is gone.", s.name)))
    }

    /// Changes a pool's rules (administrators). Leases already given keep
    /// their end.
    pub async fn update_pool(
        &self,
        actor: &Actor,
        name: &str,
        change: &PoolChange,
    ) -> Result<Pool, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators change pools.".into(),
            ));
        }
        let current = self.pool(name).await?.ok_or_else(|| {
            HostsError::NotFound(format!(
                "There is no pool “{}”.",
                name.chars().take(70).collect::<String>()
            ))
        })?;
        let s = self.settle(actor, Some(&current), change).await?;
        let updated = crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE pools SET name = $1, description = $2, access = $3, default_lease_hours = $4, \
                 max_lease_hours = $5, max_per_user = $6, clean_install = $7, \
                 system_template_id = $8, unattended_template_id = $9, wake = $10 WHERE id = $11",
            )
            .bind(&s.name)
            .bind(&s.description)
            .bind(serde_json::to_string(&s.access).unwrap_or_else(|_| "[]".into()))
            .bind(s.default_lease_hours)
            .bind(s.max_lease_hours)
            .bind(s.max_per_user)
            .bind(s.clean_install)
            .bind(s.system)
            .bind(s.unattended)
            .bind(&s.wake)
            .bind(current.id)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match updated {
            Ok(()) => {}
            Err(err) if crate::db::unique_violation(&err).is_some() => {
                return Err(HostsError::Conflict(format!(
                    "There is already a pool named “{}”.",
                    s.name
                )));
            }
            Err(err) => return Err(err.into()),
        }
        self.pool(&s.name)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("Pool “{}” is gone.", s.name)))
    }
}

/// Where a pool's host stands, as anyone who may draw from the pool sees
/// it: free or taken, and until when; who holds it only for the holder
/// and administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Only for its holder and administrators (the rest cannot open it).
    pub id: Option<i64>,
    pub name: String,
    pub status: SlotStatus,
    /// When the lease ends (none: taken without an end, or not taken).
    pub until: Option<DateTime<Utc>>,
    /// Only for administrators.
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Free for allocation now.
    Free,
    /// Held by the one asking.
    Yours,
    /// Held by someone else.
    Taken,
    /// Not held, but not free: being installed afresh, failed, or in
    /// maintenance.
    Unavailable,
}

/// A pool and where each of its hosts stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    pub pool: Pool,
    pub hosts: Vec<Slot>,
}

/// Most hosts listed per pool.
const MAX_SLOTS: i64 = 500;

impl Hosts {
    /// The pools `actor` may draw from, each with its hosts: free, taken
    /// until when, or out of allocation.
    pub async fn availability(&self, actor: &Actor) -> Result<Vec<Availability>, HostsError> {
        let mut out = Vec::new();
        for pool in self.pools_for(actor).await? {
            let (hosts, _) = self
                .list(&super::HostFilter {
                    pool: Some(pool.name.clone()),
                    limit: MAX_SLOTS,
                    ..Default::default()
                })
                .await?;
            let hosts = hosts
                .into_iter()
                .map(|host| {
                    let yours = host.holder_id == Some(actor.user_id);
                    let status = if yours {
                        SlotStatus::Yours
                    } else if host.holder_id.is_some() {
                        SlotStatus::Taken
                    } else if !host.maintenance && Hosts::allocatable(host.state) {
                        SlotStatus::Free
                    } else {
                        SlotStatus::Unavailable
                    };
                    Slot {
                        id: (yours || actor.admin).then_some(host.id),
                        name: host.name,
                        status,
                        until: host.holder_id.and(host.lease_ends_at),
                        holder: if actor.admin { host.holder } else { None },
                    }
                })
                .collect();
            out.push(Availability { pool, hosts });
        }
        Ok(out)
    }
}
