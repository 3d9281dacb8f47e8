//! Events: what happened, addressed to one person. Each is a row of
//! `events` (kept a while, so a browser that reconnects gets what it
//! missed) and is delivered live to every open WebSocket of that person.
//!
//! Delivery: on SQLite, in this process (there is only one); on PostgreSQL
//! through `NOTIFY bootler_events`, sent in the same transaction as the
//! row, so every replica's listener hears it once it is committed (and
//! never if it is rolled back).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};

use crate::db::{Db, Tx};

/// PostgreSQL channel carrying events between replicas.
pub const EVENTS_CHANNEL: &str = "bootler_events";
/// PostgreSQL channel saying "a job is due" to idle workers everywhere.
pub const JOBS_CHANNEL: &str = "bootler_jobs";

/// Longest NOTIFY payload sent whole (PostgreSQL's limit is 8000 bytes);
/// larger events travel as their id and are read back from the table.
const NOTIFY_INLINE_MAX: usize = 7000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub user_id: i64,
    /// `job`, later `host`, `lease`, `instance`…
    pub kind: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    user_id: i64,
    kind: String,
    data: String,
    created_at: DateTime<Utc>,
}

impl EventRow {
    fn into_event(self) -> Event {
        Event {
            id: self.id,
            user_id: self.user_id,
            kind: self.kind,
            data: serde_json::from_str(&self.data).unwrap_or(Value::Null),
            created_at: self.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Notification {
    Whole(Event),
    ById { id: i64 },
}

/// The event bus of this process.
#[derive(Clone)]
pub struct Events {
    db: Db,
    local: broadcast::Sender<Event>,
    /// Wakes idle workers (jobs enqueued here or, on PostgreSQL, anywhere).
    pub(crate) job_due: std::sync::Arc<Notify>,
}

impl Events {
    pub fn new(db: Db) -> Events {
        let (local, _) = broadcast::channel(4096);
        Events {
            db,
            local,
            job_due: std::sync::Arc::new(Notify::new()),
        }
    }

    /// Every event delivered to this process from now on (all users: the
    /// receiver filters).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// Writes events for `users` in `tx`. Call [`Events::committed`] with
    /// the answer after the transaction commits.
    pub async fn record(
        &self,
        tx: &mut Tx,
        users: &[i64],
        kind: &str,
        data: &Value,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let text = data.to_string();
        let mut events = Vec::with_capacity(users.len());
        for &user_id in users {
            let id: i64 = match tx {
                // One round trip: the row and its NOTIFY (sent at commit).
                Tx::Postgres(tx) if text.len() < NOTIFY_INLINE_MAX - 300 => {
                    sqlx::query_scalar(
                        "WITH e AS (INSERT INTO events (user_id, kind, data, created_at) \
                         VALUES ($1, $2, $3, $4) RETURNING id, user_id, kind, data, created_at) \
                         SELECT e.id FROM e, LATERAL (SELECT pg_notify($5, json_build_object(\
                         'id', e.id, 'user_id', e.user_id, 'kind', e.kind, 'data', e.data::json, \
                         'created_at', e.created_at)::text)) AS n",
                    )
                    .bind(user_id)
                    .bind(kind)
                    .bind(&text)
                    .bind(now)
                    .bind(EVENTS_CHANNEL)
                    .fetch_one(&mut **tx)
                    .await?
                }
                Tx::Postgres(tx) => {
                    // Too long for a NOTIFY: its id travels, the listener reads it.
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO events (user_id, kind, data, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(user_id)
                    .bind(kind)
                    .bind(&text)
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await?;
                    let payload =
                        serde_json::to_string(&Notification::ById { id }).unwrap_or_default();
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(EVENTS_CHANNEL)
                        .bind(payload)
                        .execute(&mut **tx)
                        .await?;
                    id
                }
                Tx::Sqlite(tx) => {
                    sqlx::query_scalar(
                        "INSERT INTO events (user_id, kind, data, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(user_id)
                    .bind(kind)
                    .bind(&text)
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await?
                }
            };
            events.push(Event {
                id,
                user_id,
                kind: kind.to_string(),
                data: data.clone(),
                created_at: now,
            });
        }
        Ok(events)
    }

    /// Delivers events whose transaction committed (on PostgreSQL the
    /// listener does, from the NOTIFY).
    pub fn committed(&self, events: Vec<Event>) {
        if self.db.is_postgres() {
            return;
        }
        for event in events {
            // No receiver is fine: nobody is connected.
            let _ = self.local.send(event);
        }
    }

    /// Says a job is due, in `tx` on PostgreSQL (every replica's idle
    /// workers wake once it commits); call [`Events::job_committed`] after.
    pub async fn job_due(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        if let Tx::Postgres(tx) = tx {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(JOBS_CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Wakes one idle worker of this process.
    pub fn job_committed(&self) {
        self.job_due.notify_one();
    }

    /// The person's events after `after_id`, oldest first, at most `limit`.
    pub async fn since(
        &self,
        user_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let rows: Vec<EventRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, user_id, kind, data, created_at FROM events \
                 WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(user_id)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(EventRow::into_event).collect())
    }

    /// The newest event id of the person (0 if none).
    pub async fn last_id(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        let id: Option<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT MAX(id) FROM events WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(id.unwrap_or(0))
    }

    async fn by_id(&self, id: i64) -> Result<Option<Event>, sqlx::Error> {
        let row: Option<EventRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, user_id, kind, data, created_at FROM events WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(EventRow::into_event))
    }

    /// Deletes events older than `keep`.
    pub async fn prune(&self, keep: Duration, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(1));
        crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM events WHERE created_at < $1")
                .bind(cutoff)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    }

    /// On PostgreSQL: listens for events and due jobs from every replica
    /// until `stop` turns true, reconnecting after errors; `ready` turns
    /// true once it listens (workers wait for it, so no event of theirs is
    /// sent before anyone here can hear it). Returns at once on SQLite.
    pub async fn listen(self, mut stop: watch::Receiver<bool>, ready: watch::Sender<bool>) {
        let Db::Postgres(pool) = &self.db else {
            let _ = ready.send(true);
            return;
        };
        let pool = pool.clone();
        while !*stop.borrow() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            if let Err(err) = listener
                .listen_all([EVENTS_CHANNEL, JOBS_CHANNEL, crate::changes::CHANNEL])
                .await
            {
                tracing::warn!(error = %err, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Changes made while nobody listened went unheard.
            crate::changes::forget_all();
            let _ = ready.send(true);
            loop {
                let notification = tokio::select! {
                    n = listener.try_recv() => n,
                    _ = stop.changed() => return,
                };
                match notification {
                    Ok(Some(n)) if n.channel() == JOBS_CHANNEL => self.job_due.notify_one(),
                    Ok(Some(n)) if n.channel() == crate::changes::CHANNEL => {
                        crate::changes::heard(n.payload());
                    }
                    Ok(Some(n)) => self.forward(n.payload()).await,
                    // The connection dropped (notifications in the gap are
                    // lost; browsers catch up from the table on reconnect).
                    Ok(None) => {
                        tracing::warn!("event listener reconnecting");
                        crate::changes::forget_all();
                        // Jobs may have become due meanwhile.
                        self.job_due.notify_one();
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    async fn forward(&self, payload: &str) {
        let event = match serde_json::from_str::<Notification>(payload) {
            Ok(Notification::Whole(event)) => Some(event),
            Ok(Notification::ById { id }) => self.by_id(id).await.ok().flatten(),
            Err(err) => {
                tracing::warn!(error = %err, "unreadable event notification");
                None
            }
        };
        if let Some(event) = event {
            let _ = self.local.send(event);
        }
    }
}
