//! Leasing bare metal (thesis §5.2): a person gets a free node from a pool
//! with one click, lends it on, and releases it; leases end, with
//! reminders before; quotas per person and per pool; every step in the
//! audit log.
//!
//! Consistency: allocation, lending and release are each one transaction
//! whose `UPDATE` is guarded by what it expects (no holder; this holder),
//! so two people asking for the last free node at once get it once. The
//! quota check and the allocation share the transaction, and it locks the
//! person's row first (PostgreSQL; SQLite takes its write lock at `BEGIN
//! IMMEDIATE`), so one person clicking twice cannot pass a quota either.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Actor, Host, HostState, Hosts, HostsError};
use crate::db::Tx;

/// The longest lease anyone can ask for, in hours (ten years).
const MAX_HOURS: u32 = 24 * 365 * 10;

/// `POST /api/v1/hosts/allocate`: what kind of node, for how long.
#[derive(Debug, Clone, Default)]
pub struct AllocateRequest {
    /// A pool's name; none: any pool the person may draw from.
    pub pool: Option<String>,
    /// Filters on the hosts' `vars`: a number asks for at least that much
    /// (`{"cores": 16}`), a string or boolean for exactly that value.
    pub tags: Map<String, Value>,
    /// The lease's length; none: the pool's default.
    pub hours: Option<u32>,
}

/// A pool's rules.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct PoolPolicy {
    pub id: i64,
    pub name: String,
    /// JSON array of usernames and `@group`s; empty: everyone.
    pub access: String,
    pub default_lease_hours: Option<i32>,
    pub max_lease_hours: Option<i32>,
    pub max_per_user: Option<i32>,
    pub clean_install: bool,
    pub system_template_id: Option<i64>,
    pub unattended_template_id: Option<i64>,
}

impl PoolPolicy {
    fn access(&self) -> Vec<String> {
        serde_json::from_str(&self.access).unwrap_or_default()
    }

    /// Whether `actor`, in `groups`, may draw from the pool.
    pub fn allows(&self, actor: &Actor, groups: &[String]) -> bool {
        super::pools::may_draw(&self.access(), actor, groups)
    }

    /// The end of a lease starting `now` for `hours` (the pool's default if
    /// none), within the pool's maximum.
    fn lease_end(
        &self,
        hours: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, HostsError> {
        let max = self.max_lease_hours.map(|h| h.max(1) as u32);
        let hours = match (hours, self.default_lease_hours, max) {
            (Some(h), _, Some(max)) if h > max => {
                return Err(HostsError::Invalid(format!(
                    "Pool “{}” lends nodes for at most {max} hours.",
                    self.name
                )));
            }
            (Some(h), _, _) => Some(h),
            (None, Some(default), _) => Some(default.max(1) as u32),
            (None, None, max) => max,
        };
        Ok(hours.map(|h| now + Duration::hours(i64::from(h))))
    }
}

/// Something to tell a person about their lease (by mail; the live event
/// is already sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseNotice {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub subject: String,
    pub body: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// A username, or `bootler` for what Bootler did itself (expiry).
    pub actor: String,
    pub action: String,
    pub host_id: Option<i64>,
    pub host_name: String,
    /// The person the action concerns (new holder, previous holder).
    pub subject: Option<String>,
    pub detail: String,
    pub source_ip: Option<String>,
}

/// How many hosts one person may hold, and holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub username: String,
    /// The account's own limit; none: the default.
    pub max_hosts: Option<i32>,
    /// `leases.max_hosts_per_user` (0: no limit).
    pub default: u32,
    pub held: i64,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub host: Option<i64>,
    pub action: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Who acts: a person, or Bootler itself.
pub(super) struct Acting<'a> {
    pub actor: Option<&'a Actor>,
    pub source_ip: Option<&'a str>,
}

fn check_tags(tags: &Map<String, Value>) -> Result<(), HostsError> {
    if tags.len() > 20 {
        return Err(HostsError::Invalid(
            "Ask for at most 20 tags at once.".into(),
        ));
    }
    for (key, value) in tags {
        if !matches!(value, Value::Number(_) | Value::String(_) | Value::Bool(_)) {
            return Err(HostsError::Invalid(format!(
                "Tag “{}” needs a number (at least that much), a text or true/false.",
                key.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Whether a host's `vars` satisfy `tags`.
fn matches_tags(vars: &Value, tags: &Map<String, Value>) -> bool {
    tags.iter().all(|(key, wanted)| {
        let have = vars.get(key);
        match (wanted, have) {
            (Value::Number(want), Some(Value::Number(have))) => {
                match (want.as_f64(), have.as_f64()) {
                    (Some(w), Some(h)) => h >= w,
                    _ => false,
                }
            }
            (want, Some(have)) => want == have,
            (_, None) => false,
        }
    })
}

fn describe_tags(tags: &Map<String, Value>) -> String {
    tags.iter()
        .map(|(key, value)| match value {
            Value::Number(n) => format!("{key} ≥ {n}"),
            Value::String(s) => format!("{key} = {s}"),
            other => format!("{key} = {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Adds an audit entry in `tx`.
pub(super) async fn audit(
    tx: &mut Tx,
    at: DateTime<Utc>,
    acting: &Acting<'_>,
    action: &str,
    host: (i64, &str),
    subject: Option<&str>,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let (actor_id, actor) = match acting.actor {
        Some(actor) => (Some(actor.user_id), actor.username.as_str()),
        None => (None, "bootler"),
    };
    crate::with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor, action, host_id, host_name, subject, detail, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(at)
        .bind(actor_id)
        .bind(actor)
        .bind(action)
        .bind(host.0)
        .bind(host.1)
        .bind(subject)
        .bind(detail)
        .bind(acting.source_ip)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

async fn timeline(
    tx: &mut Tx,
    host: i64,
    at: DateTime<Utc>,
    source_ip: Option<&str>,
    kind: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    crate::with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO host_events (host_id, at, source_ip, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(host)
        .bind(at)
        .bind(source_ip)
        .bind(kind)
        .bind(detail)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

/// Locks a person's row for the rest of `tx` (PostgreSQL; SQLite's
/// immediate transaction already holds the only write lock).
async fn lock_person(tx: &mut Tx, user: i64) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn held_by(tx: &mut Tx, user: i64, pool: Option<i64>) -> Result<i64, sqlx::Error> {
    crate::with_tx!(tx, conn => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM hosts WHERE holder_id = $1 AND ($2 IS NULL OR pool_id = $2)",
        )
        .bind(user)
        .bind(pool)
        .fetch_one(conn)
        .await
    })
}

impl Hosts {
    /// Reminders whose time has already come for a lease ending at `end`:
    /// not sent for a lease that starts (or is extended) inside them.
    fn reminders_passed(&self, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> i32 {
        end.map(|end| {
            self.settings
                .lease_reminders
                .iter()
                .filter(|before| now >= end - **before)
                .count() as i32
        })
        .unwrap_or(0)
    }

    pub(super) async fn pool_policies(&self) -> Result<Vec<PoolPolicy>, HostsError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, access, default_lease_hours, max_lease_hours, max_per_user, \
                 clean_install, system_template_id, unattended_template_id FROM pools ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    async fn pool_policy_of(&self, pool_id: i64) -> Result<Option<PoolPolicy>, HostsError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, access, default_lease_hours, max_lease_hours, max_per_user, \
                 clean_install, system_template_id, unattended_template_id FROM pools WHERE id = $1",
            )
            .bind(pool_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// The host, or a 404-style error.
    async fn existing(&self, id: i64) -> Result<Host, HostsError> {
        self.get(id)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("There is no host {id}.")))
    }

    /// The most hosts `user` may hold at once (`users.max_hosts`, else the
    /// configured default; 0: no limit).
    async fn quota_of(&self, user: i64) -> Result<Option<i64>, HostsError> {
        let own: Option<Option<i32>> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT max_hosts FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(pool)
                .await
        })?;
        let quota = match own.flatten() {
            Some(q) => i64::from(q),
            None => i64::from(self.settings.max_hosts_per_user),
        };
        Ok((quota > 0).then_some(quota))
    }

    /// One click: a free host from `request.pool` (or any pool the person
    /// may draw from) that matches the tags, held by `actor` until the
    /// pool's lease length is over.
    pub async fn allocate(
        &self,
        actor: &Actor,
        request: &AllocateRequest,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        check_tags(&request.tags)?;
        if let Some(hours) = request.hours
            && !(1..=MAX_HOURS).contains(&hours)
        {
            return Err(HostsError::Invalid(format!(
                "A lease lasts between 1 and {MAX_HOURS} hours."
            )));
        }
        let all = self.pool_policies().await?;
        let groups = if !actor.admin && all.iter().any(|p| super::pools::names_groups(&p.access()))
        {
            self.groups_of(actor).await?
        } else {
            Vec::new()
        };
        let pools: Vec<PoolPolicy> = match &request.pool {
            Some(name) => {
                let Some(pool) = all.into_iter().find(|p| &p.name == name) else {
                    return Err(HostsError::NotFound(format!(
                        "There is no pool “{}”.",
                        name.chars().take(70).collect::<String>()
                    )));
                };
                if !pool.allows(actor, &groups) {
                    return Err(HostsError::Forbidden(format!(
                        "You may not draw nodes from pool “{}”; ask an administrator for access.",
                        pool.name
                    )));
                }
                vec![pool]
            }
            None => all
                .into_iter()
                .filter(|p| p.allows(actor, &groups))
                .collect(),
        };
        if pools.is_empty() {
            return Err(HostsError::Conflict(
                "There is no pool you may draw nodes from.".into(),
            ));
        }
        // The lease's end is checked before anything is taken.
        for pool in &pools {
            if request.pool.is_some() {
                pool.lease_end(request.hours, now)?;
            }
        }
        let quota = self.quota_of(actor.user_id).await?;
        self.log.flush().await;
        let mut tx = self.db.begin_write().await?;
        lock_person(&mut tx, actor.user_id).await?;
        let held = held_by(&mut tx, actor.user_id, None).await?;
        if let Some(quota) = quota
            && held >= quota
        {
            return Err(HostsError::Conflict(format!(
                "Your quota is {quota} node{} and you hold {held}; release one first.",
                if quota == 1 { "" } else { "s" }
            )));
        }
        let mut pool_quota: Option<String> = None;
        for pool in &pools {
            if let Some(max) = pool.max_per_user {
                let held_here = held_by(&mut tx, actor.user_id, Some(pool.id)).await?;
                if held_here >= i64::from(max) {
                    pool_quota = Some(format!(
                        "Pool “{}” lends at most {max} node{} to one person and you hold {held_here} from it.",
                        pool.name,
                        if max == 1 { "" } else { "s" }
                    ));
                    continue;
                }
            }
            let Ok(ends) = pool.lease_end(request.hours, now) else {
                continue;
            };
            let candidates: Vec<(i64, String)> = crate::with_tx!(&mut tx, conn => {
                sqlx::query_as(
                    "SELECT id, vars FROM hosts WHERE pool_id = $1 AND holder_id IS NULL \
                     AND NOT maintenance AND state IN ('local', 'installed') ORDER BY id",
                )
                .bind(pool.id)
                .fetch_all(conn)
                .await
            })?;
            for (id, vars) in candidates {
                let vars: Value = serde_json::from_str(&vars).unwrap_or(Value::Null);
                if !matches_tags(&vars, &request.tags) {
                    continue;
                }
                let reminded = self.reminders_passed(ends, now);
                let taken: Option<String> = crate::with_tx!(&mut tx, conn => {
                    sqlx::query_scalar(
                        "UPDATE hosts SET holder_id = $1, lease_started_at = $2, lease_ends_at = $3, \
                         lease_reminders = $5, updated_at = $2 \
                         WHERE id = $4 AND holder_id IS NULL AND NOT maintenance \
                         AND state IN ('local', 'installed') RETURNING name",
                    )
                    .bind(actor.user_id)
                    .bind(now)
                    .bind(ends)
                    .bind(id)
                    .bind(reminded)
                    .fetch_optional(conn)
                    .await
                })?;
                let Some(name) = taken else {
                    // Someone else got it a moment ago: the next one.
                    continue;
                };
                let until = ends
                    .map(|e| format!(" until {}", when(e)))
                    .unwrap_or_default();
                let detail = format!("{} got it from pool “{}”{until}", actor.username, pool.name);
                let acting = Acting {
                    actor: Some(actor),
                    source_ip,
                };
                timeline(&mut tx, id, now, source_ip, "allocate", &detail).await?;
                audit(
                    &mut tx,
                    now,
                    &acting,
                    "allocate",
                    (id, &name),
                    Some(&actor.username),
                    &detail,
                )
                .await?;
                let events = self
                    .events
                    .record(
                        &mut tx,
                        &[actor.user_id],
                        "lease",
                        &json!({"host": id, "name": name, "action": "allocate", "detail": detail, "ends_at": ends}),
                        now,
                    )
                    .await?;
                crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
                tx.commit().await?;
                self.cache.forget_host(id);
                self.events.committed(events);
                tracing::info!(host = id, %name, holder = %actor.username, pool = %pool.name, "node allocated");
                return self.existing(id).await;
            }
        }
        drop(tx);
        if let Some(refusal) = pool_quota
            && pools.len() == 1
        {
            return Err(HostsError::Conflict(refusal));
        }
        Err(HostsError::Conflict(
            self.none_free(&pools, &request.tags).await?,
        ))
    }

    /// "No free node in pool X (N held, next expiry at …)".
    async fn none_free(
        &self,
        pools: &[PoolPolicy],
        tags: &Map<String, Value>,
    ) -> Result<String, HostsError> {
        let ids: Vec<i64> = pools.iter().map(|p| p.id).collect();
        let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let (held, next): (i64, Option<DateTime<Utc>>) = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(lease_ends_at) FROM hosts WHERE holder_id IS NOT NULL \
                 AND (',' || $1 || ',') LIKE ('%,' || CAST(pool_id AS TEXT) || ',%')",
            )
            .bind(list.trim_start_matches('[').trim_end_matches(']'))
            .fetch_one(pool)
            .await
        })?;
        let place = match pools {
            [one] => format!("pool “{}”", one.name),
            _ => "the pools you may draw from".to_string(),
        };
        let matching = if tags.is_empty() {
            String::new()
        } else {
            format!(" with {}", describe_tags(tags))
        };
        let next = next
            .map(|at| format!(", next lease ends at {}", when(at)))
            .unwrap_or_default();
        Ok(format!(
            "No free node{matching} in {place} ({held} held{next})."
        ))
    }

    /// Gives a host to `to` (a username): administrators any host, others
    /// only one they hold (lending: the lease's end stays).
    pub async fn give(
        &self,
        actor: &Actor,
        id: i64,
        to: &str,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.existing(id).await?;
        if !actor.admin && host.holder_id != Some(actor.user_id) {
            return Err(HostsError::Forbidden(format!(
                "You can only lend nodes you hold, and you do not hold {}.",
                host.name
            )));
        }
        let target: Option<(i64, String, String)> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, username, status FROM users WHERE username = $1")
                .bind(to.trim())
                .fetch_optional(pool)
                .await
        })?;
        let Some((target_id, target_name, status)) = target else {
            return Err(HostsError::Invalid(format!(
                "There is no user “{}”.",
                to.chars().take(70).collect::<String>()
            )));
        };
        if status != "active" {
            return Err(HostsError::Invalid(format!(
                "{target_name}'s account is not active."
            )));
        }
        if host.holder_id == Some(target_id) {
            return Err(HostsError::Conflict(format!(
                "{target_name} already holds {}.",
                host.name
            )));
        }
        let policy = match host.pool_id {
            Some(pool) => self.pool_policy_of(pool).await?,
            None => None,
        };
        let quota = self.quota_of(target_id).await?;
        self.log.flush().await;
        let mut tx = self.db.begin_write().await?;
        lock_person(&mut tx, target_id).await?;
        if !actor.admin {
            let held = held_by(&mut tx, target_id, None).await?;
            if let Some(quota) = quota
                && held >= quota
            {
                return Err(HostsError::Conflict(format!(
                    "{target_name}'s quota is {quota} node{} and they hold {held}.",
                    if quota == 1 { "" } else { "s" }
                )));
            }
            if let Some(policy) = &policy
                && let Some(max) = policy.max_per_user
            {
                let held_here = held_by(&mut tx, target_id, Some(policy.id)).await?;
                if held_here >= i64::from(max) {
                    return Err(HostsError::Conflict(format!(
                        "Pool “{}” lends at most {max} node{} to one person and {target_name} holds {held_here} from it.",
                        policy.name,
                        if max == 1 { "" } else { "s" }
                    )));
                }
            }
        }
        // Lending keeps the lease's end; an administrator's gift starts a
        // new lease (the pool's default length).
        let (started, ends) = if actor.admin && host.holder_id != Some(actor.user_id) {
            let ends = match &policy {
                Some(policy) => policy.lease_end(None, now)?,
                None => None,
            };
            (now, ends)
        } else {
            (host.lease_started_at.unwrap_or(now), host.lease_ends_at)
        };
        // The new holder hears of reminders still to come only.
        let reminded = self.reminders_passed(ends, now);
        let changed: Option<String> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "UPDATE hosts SET holder_id = $1, lease_started_at = $2, lease_ends_at = $3, \
                 lease_reminders = $7, updated_at = $4 \
                 WHERE id = $5 AND holder_id IS NOT DISTINCT FROM $6 RETURNING name",
            )
            .bind(target_id)
            .bind(started)
            .bind(ends)
            .bind(now)
            .bind(id)
            .bind(host.holder_id)
            .bind(reminded)
            .fetch_optional(conn)
            .await
        })?;
        let Some(name) = changed else {
            return Err(HostsError::Conflict(format!(
                "{} changed hands a moment ago; reload and try again.",
                host.name
            )));
        };
        let action = if actor.admin && host.holder_id != Some(actor.user_id) {
            "give"
        } else {
            "lend"
        };
        let from = host
            .holder
            .as_deref()
            .map(|h| format!(" (from {h})"))
            .unwrap_or_default();
        let detail = format!("{} gave it to {target_name}{from}", actor.username);
        let acting = Acting {
            actor: Some(actor),
            source_ip,
        };
        timeline(&mut tx, id, now, source_ip, action, &detail).await?;
        audit(
            &mut tx,
            now,
            &acting,
            action,
            (id, &name),
            Some(&target_name),
            &detail,
        )
        .await?;
        let mut people = vec![target_id];
        people.extend(host.holder_id);
        let events = self
            .events
            .record(
                &mut tx,
                &people,
                "lease",
                &json!({"host": id, "name": name, "action": action, "detail": detail, "ends_at": ends}),
                now,
            )
            .await?;
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.cache.forget_host(id);
        self.events.committed(events);
        tracing::info!(host = id, %name, to = %target_name, by = %actor.username, "node given");
        self.existing(id).await
    }

    /// Ends a lease: by its holder, by an administrator (a forced release
    /// when it is someone else's), or by Bootler when it expired. The host
    /// goes back to its pool, marked for the pool's clean install first if
    /// the pool asks for one.
    pub async fn release(
        &self,
        actor: &Actor,
        id: i64,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.existing(id).await?;
        let Some(holder) = host.holder_id else {
            return Err(HostsError::Conflict(format!(
                "{} is not held by anyone.",
                host.name
            )));
        };
        if !actor.admin && holder != actor.user_id {
            return Err(HostsError::Forbidden(format!(
                "Only the holder of {} (or an administrator) can release it.",
                host.name
            )));
        }
        let forced = holder != actor.user_id;
        let (action, detail) = if forced {
            (
                "force_release",
                format!(
                    "{} took it back from {}",
                    actor.username,
                    host.holder.as_deref().unwrap_or("its holder")
                ),
            )
        } else {
            ("release", format!("{} released it", actor.username))
        };
        let acting = Acting {
            actor: Some(actor),
            source_ip,
        };
        self.end_lease(&host, holder, &acting, action, &detail, now)
            .await?;
        self.existing(id).await
    }

    /// The common end of a lease; `false` if it had changed meanwhile.
    async fn end_lease(
        &self,
        host: &Host,
        holder: i64,
        acting: &Acting<'_>,
        action: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HostsError> {
        let policy = match host.pool_id {
            Some(pool) => self.pool_policy_of(pool).await?,
            None => None,
        };
        let clean = policy
            .as_ref()
            .filter(|p| p.clean_install && p.system_template_id.is_some());
        self.log.flush().await;
        let mut tx = self.db.begin_write().await?;
        let changed: Option<String> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "UPDATE hosts SET holder_id = NULL, lease_started_at = NULL, lease_ends_at = NULL, \
                 lease_reminders = 0, updated_at = $1, \
                 state = CASE WHEN $2 THEN 'install_pending' ELSE state END, \
                 state_changed_at = CASE WHEN $2 THEN $1 ELSE state_changed_at END, \
                 marked_by = CASE WHEN $2 THEN NULL ELSE marked_by END, \
                 system_template_id = CASE WHEN $2 THEN $3 ELSE system_template_id END, \
                 unattended_template_id = CASE WHEN $2 THEN $4 ELSE unattended_template_id END \
                 WHERE id = $5 AND holder_id = $6 RETURNING name",
            )
            .bind(now)
            .bind(clean.is_some())
            .bind(clean.and_then(|p| p.system_template_id))
            .bind(clean.and_then(|p| p.unattended_template_id))
            .bind(host.id)
            .bind(holder)
            .fetch_optional(conn)
            .await
        })?;
        let Some(name) = changed else {
            return Ok(false);
        };
        let detail = match clean {
            Some(pool) => format!(
                "{detail}; pool “{}” installs it afresh before the next holder gets it",
                pool.name
            ),
            None => detail.to_string(),
        };
        timeline(&mut tx, host.id, now, acting.source_ip, action, &detail).await?;
        audit(
            &mut tx,
            now,
            acting,
            action,
            (host.id, &name),
            host.holder.as_deref(),
            &detail,
        )
        .await?;
        let events = self
            .events
            .record(
                &mut tx,
                &[holder],
                "lease",
                &json!({"host": host.id, "name": name, "action": action, "detail": detail}),
                now,
            )
            .await?;
        crate::changes::notify(&mut tx, crate::changes::Change::Host(host.id)).await?;
        tx.commit().await?;
        self.cache.forget_host(host.id);
        self.events.committed(events);
        tracing::info!(host = host.id, %name, action, "lease ended");
        Ok(true)
    }

    /// Moves the end of a lease: by the pool's default length (or `hours`)
    /// from now or from its current end, whichever is later, within the
    /// pool's maximum from now. Administrators may go beyond, or remove the
    /// end (`no_end`).
    pub async fn extend(
        &self,
        actor: &Actor,
        id: i64,
        hours: Option<u32>,
        no_end: bool,
        source_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.existing(id).await?;
        let Some(holder) = host.holder_id else {
            return Err(HostsError::Conflict(format!(
                "{} is not held by anyone.",
                host.name
            )));
        };
        if !actor.admin && holder != actor.user_id {
            return Err(HostsError::Forbidden(format!(
                "Only the holder of {} (or an administrator) can extend its lease.",
                host.name
            )));
        }
        if no_end && !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators give leases without an end.".into(),
            ));
        }
        if let Some(hours) = hours
            && !(1..=MAX_HOURS).contains(&hours)
        {
            return Err(HostsError::Invalid(format!(
                "A lease lasts between 1 and {MAX_HOURS} hours."
            )));
        }
        let policy = match host.pool_id {
            Some(pool) => self.pool_policy_of(pool).await?,
            None => None,
        };
        let new_end = if no_end {
            None
        } else {
            let Some(current) = host.lease_ends_at else {
                return Err(HostsError::Conflict(format!(
                    "The lease of {} has no end; there is nothing to extend.",
                    host.name
                )));
            };
            let step = hours
                .or(policy
                    .as_ref()
                    .and_then(|p| p.default_lease_hours)
                    .map(|h| h.max(1) as u32))
                .unwrap_or(24);
            let wanted = current.max(now) + Duration::hours(i64::from(step));
            let cap = policy
                .as_ref()
                .and_then(|p| p.max_lease_hours)
                .filter(|_| !actor.admin)
                .map(|max| now + Duration::hours(i64::from(max.max(1))));
            match cap {
                Some(cap) if cap <= current => {
                    return Err(HostsError::Conflict(format!(
                        "The lease of {} already runs as long as pool “{}” allows (until {}).",
                        host.name,
                        policy.as_ref().map(|p| p.name.as_str()).unwrap_or_default(),
                        when(current)
                    )));
                }
                Some(cap) => Some(wanted.min(cap)),
                None => Some(wanted),
            }
        };
        // Reminders already past the new end's thresholds are not sent again.
        let reminded = self.reminders_passed(new_end, now);
        self.log.flush().await;
        let mut tx = self.db.begin_write().await?;
        let changed: Option<String> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "UPDATE hosts SET lease_ends_at = $1, lease_reminders = $2, updated_at = $3 \
                 WHERE id = $4 AND holder_id = $5 RETURNING name",
            )
            .bind(new_end)
            .bind(reminded)
            .bind(now)
            .bind(id)
            .bind(holder)
            .fetch_optional(conn)
            .await
        })?;
        let Some(name) = changed else {
            return Err(HostsError::Conflict(format!(
                "{} changed hands a moment ago; reload and try again.",
                host.name
            )));
        };
        let detail = match new_end {
            Some(end) => format!("{} extended the lease until {}", actor.username, when(end)),
            None => format!("{} removed the lease's end", actor.username),
        };
        let acting = Acting {
            actor: Some(actor),
            source_ip,
        };
        timeline(&mut tx, id, now, source_ip, "extend", &detail).await?;
        audit(
            &mut tx,
            now,
            &acting,
            "extend",
            (id, &name),
            host.holder.as_deref(),
            &detail,
        )
        .await?;
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.cache.forget_host(id);
        self.existing(id).await
    }

    /// Ends the leases that ran out and sends the reminders that are due
    /// (live events here; the mails are returned for the caller to send).
    pub async fn sweep_leases(&self, now: DateTime<Utc>) -> Result<Vec<LeaseNotice>, HostsError> {
        let mut notices = Vec::new();
        let expired: Vec<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM hosts WHERE holder_id IS NOT NULL AND lease_ends_at IS NOT NULL \
                 AND lease_ends_at <= $1 ORDER BY lease_ends_at LIMIT 500",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        let bootler = Acting {
            actor: None,
            source_ip: None,
        };
        for id in expired {
            let Some(host) = self.get(id).await? else {
                continue;
            };
            let (Some(holder), Some(ends)) = (host.holder_id, host.lease_ends_at) else {
                continue;
            };
            let detail = format!(
                "the lease of {} ended at {}",
                host.holder.as_deref().unwrap_or("its holder"),
                when(ends)
            );
            if self
                .end_lease(&host, holder, &bootler, "expire", &detail, now)
                .await?
                && let Some(person) = self.person_row(holder).await?
            {
                notices.push(LeaseNotice {
                    user_id: holder,
                    username: person.0.clone(),
                    email: person.1,
                    subject: format!("Your lease of {} has ended", host.name),
                    body: format!(
                        "Hello {},\n\nyour lease of {} ended at {} and the node went back to {}.\nGet another one in Bootler whenever you need it.\n",
                        person.0,
                        host.name,
                        when(ends),
                        host.pool
                            .as_deref()
                            .map(|p| format!("pool “{p}”"))
                            .unwrap_or_else(|| "the administrators".into())
                    ),
                });
            }
        }
        let reminders = &self.settings.lease_reminders;
        if reminders.is_empty() {
            return Ok(notices);
        }
        let held: Vec<(i64, String, i64, DateTime<Utc>, i32)> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, holder_id, lease_ends_at, lease_reminders FROM hosts \
                 WHERE holder_id IS NOT NULL AND lease_ends_at IS NOT NULL AND lease_ends_at > $1 \
                 AND lease_reminders < $2 ORDER BY lease_ends_at LIMIT 1000",
            )
            .bind(now)
            .bind(reminders.len() as i32)
            .fetch_all(pool)
            .await
        })?;
        for (id, name, holder, ends, sent) in held {
            let due = reminders
                .iter()
                .filter(|before| now >= ends - **before)
                .count() as i32;
            if due <= sent {
                continue;
            }
            let detail = format!("reminded its holder that the lease ends at {}", when(ends));
            let mut tx = self.db.begin_write().await?;
            let updated = crate::with_tx!(&mut tx, conn => {
                sqlx::query(
                    "UPDATE hosts SET lease_reminders = $1 WHERE id = $2 AND lease_reminders = $3 \
                     AND holder_id = $4 AND lease_ends_at = $5",
                )
                .bind(due)
                .bind(id)
                .bind(sent)
                .bind(holder)
                .bind(ends)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
            })?;
            if updated != 1 {
                continue;
            }
            timeline(&mut tx, id, now, None, "reminder", &detail).await?;
            let events = self
                .events
                .record(
                    &mut tx,
                    &[holder],
                    "lease",
                    &json!({"host": id, "name": name, "action": "reminder", "detail": detail, "ends_at": ends}),
                    now,
                )
                .await?;
            tx.commit().await?;
            self.events.committed(events);
            if let Some(person) = self.person_row(holder).await? {
                let left = ends - now;
                let left = if left.num_hours() >= 48 {
                    format!("{} days", left.num_hours() / 24)
                } else if left.num_hours() >= 1 {
                    format!("{} hours", left.num_hours())
                } else {
                    format!("{} minutes", left.num_minutes().max(1))
                };
                notices.push(LeaseNotice {
                    user_id: holder,
                    username: person.0.clone(),
                    email: person.1,
                    subject: format!("Your lease of {name} ends in {left}"),
                    body: format!(
                        "Hello {},\n\nyour lease of {name} ends at {} (in {left}). Extend it in Bootler if you still need the node, or release it so others can use it.\n",
                        person.0,
                        when(ends)
                    ),
                });
            }
        }
        Ok(notices)
    }

    async fn person_row(&self, id: i64) -> Result<Option<(String, String)>, HostsError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT username, email FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Audit entries, newest first: all of them for administrators; for
    /// others, what they did, what concerned them, and the history of the
    /// hosts they hold.
    pub async fn audit_log(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, i64), HostsError> {
        let me = if actor.admin { 0 } else { actor.user_id };
        let who = filter.actor.clone().unwrap_or_default();
        let action = filter.action.clone().unwrap_or_default();
        let host = filter.host.unwrap_or(0);
        let limit = filter.limit.clamp(1, 500);
        let offset = filter.offset.max(0);
        macro_rules! scope {
            () => {
                "($1 = 0 OR actor_id = $1 OR subject = (SELECT username FROM users WHERE id = $1) \
                 OR host_id IN (SELECT id FROM hosts WHERE holder_id = $1)) \
                 AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) AND ($4 = 0 OR host_id = $4)"
            };
        }
        let (rows, total) = crate::with_pool!(&self.db, pool => {
            let rows: Vec<AuditEntry> = sqlx::query_as(concat!(
                "SELECT id, at, actor, action, host_id, host_name, subject, detail, source_ip \
                 FROM audit_log WHERE ",
                scope!(),
                " ORDER BY id DESC LIMIT $5 OFFSET $6"
            ))
            .bind(me)
            .bind(&who)
            .bind(&action)
            .bind(host)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*) FROM audit_log WHERE ", scope!()))
                .bind(me)
                .bind(&who)
                .bind(&action)
                .bind(host)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        Ok((rows, total))
    }

    /// A person's quota: administrators ask for anyone, others for
    /// themselves.
    pub async fn quota(&self, actor: &Actor, username: &str) -> Result<Quota, HostsError> {
        if !actor.admin && actor.username != username {
            return Err(HostsError::Forbidden(
                "Only administrators see other people's quotas.".into(),
            ));
        }
        let row: Option<(i64, Option<i32>)> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, max_hosts FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await
        })?;
        let Some((id, max_hosts)) = row else {
            return Err(HostsError::NotFound(format!(
                "There is no user “{}”.",
                username.chars().take(70).collect::<String>()
            )));
        };
        let held: i64 = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE holder_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        Ok(Quota {
            username: username.to_string(),
            max_hosts,
            default: self.settings.max_hosts_per_user,
            held,
        })
    }

    /// Sets a person's own limit (`None`: back to the default);
    /// administrators. Hosts already held stay.
    pub async fn set_quota(
        &self,
        actor: &Actor,
        username: &str,
        max_hosts: Option<i32>,
    ) -> Result<Quota, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators set quotas.".into(),
            ));
        }
        if let Some(max) = max_hosts
            && !(0..=10_000).contains(&max)
        {
            return Err(HostsError::Invalid(
                "`max_hosts` is between 0 (no limit) and 10000, or null for the default.".into(),
            ));
        }
        let updated = crate::with_pool!(&self.db, pool => {
            sqlx::query("UPDATE users SET max_hosts = $1 WHERE username = $2")
                .bind(max_hosts)
                .bind(username)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(HostsError::NotFound(format!(
                "There is no user “{}”.",
                username.chars().take(70).collect::<String>()
            )));
        }
        self.quota(actor, username).await
    }

    /// Whether a state is one a free host may be allocated in.
    pub fn allocatable(state: HostState) -> bool {
        matches!(state, HostState::Local | HostState::Installed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_ask_for_at_least_numbers_and_exactly_the_rest() {
        let vars = json!({"cores": 32, "memory_gb": 128, "gpu": "a100", "ib": true});
        let tags = |v: Value| v.as_object().cloned().unwrap();
        assert!(matches_tags(&vars, &tags(json!({"cores": 16}))));
        assert!(matches_tags(
            &vars,
            &tags(json!({"cores": 32, "gpu": "a100", "ib": true}))
        ));
        assert!(!matches_tags(&vars, &tags(json!({"cores": 64}))));
        assert!(!matches_tags(&vars, &tags(json!({"gpu": "v100"}))));
        assert!(!matches_tags(&vars, &tags(json!({"disk": "nvme"}))));
        assert!(check_tags(&tags(json!({"cores": [1]}))).is_err());
        assert_eq!(
            describe_tags(&tags(json!({"cores": 16, "gpu": "a100"}))),
            "cores ≥ 16, gpu = a100"
        );
    }
}
