//! Timeline rows and "last seen" written behind the answer. A node asking
//! `/boot/{mac}` should not wait for two commits: its answer depends only
//! on what is read. The rows go to one writer task that commits them in
//! batches (everything that queued while it wrote the last batch, up to
//! [`BATCH`] rows, in one transaction).
//!
//! Order and visibility: every read of a timeline or host in the API first
//! waits for what was queued before it ([`BootLog::flush`]), and so does a
//! change of state, so the timeline keeps the order things happened in.
//! What is queued when the process dies (a few milliseconds' worth) is
//! lost; these rows are bookkeeping, never a promise made to someone: the
//! state changes that are (mark, install, done) are written before their
//! answer, as before.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, Tx};

/// Rows a batch commits at most.
const BATCH: usize = 2000;
/// Rows that may wait; beyond, new ones are dropped (and logged).
const QUEUE: usize = 100_000;

/// One row for a host's timeline, and maybe its "last seen".
#[derive(Debug)]
pub(super) struct Seen {
    pub host: i64,
    pub at: DateTime<Utc>,
    pub source_ip: Option<String>,
    /// Empty: no timeline row, only "last seen".
    pub kind: Cow<'static, str>,
    pub detail: Cow<'static, str>,
    /// Also set the host's last-seen time and address.
    pub refresh: bool,
}

enum Message {
    Row(Seen),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(super) struct BootLog {
    queue: Option<mpsc::Sender<Message>>,
}

impl BootLog {
    /// Starts the writer (on the current tokio runtime).
    pub fn start(db: Db) -> BootLog {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no tokio runtime: host timelines are not written");
            return BootLog { queue: None };
        };
        let (queue, rows) = mpsc::channel(QUEUE);
        runtime.spawn(write(db, rows));
        BootLog { queue: Some(queue) }
    }

    /// Queues a row; returns at once.
    pub fn push(&self, seen: Seen) {
        let Some(queue) = &self.queue else { return };
        if let Err(err) = queue.try_send(Message::Row(seen)) {
            let seen = match err {
                mpsc::error::TrySendError::Full(Message::Row(seen))
                | mpsc::error::TrySendError::Closed(Message::Row(seen)) => Some(seen),
                _ => None,
            };
            tracing::warn!(
                host = seen.map(|s| s.host),
                "host timeline queue is full or closed; a row was dropped"
            );
        }
    }

    /// Waits until everything queued before this call is committed (or
    /// failed and was logged).
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, wait) = oneshot::channel();
        if queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(db: Db, mut queue: mpsc::Receiver<Message>) {
    let mut rows = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(seen) => rows.push(seen),
                Message::Flush(done) => waiting.push(done),
            }
            if rows.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !rows.is_empty()
            && let Err(err) = commit(&db, &rows).await
        {
            tracing::warn!(rows = rows.len(), error = %err, "could not write host timeline rows");
        }
        rows.clear();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Rows per statement (5 values each: well within both engines' limits).
const CHUNK: usize = 400;

async fn commit(db: &Db, rows: &[Seen]) -> Result<(), sqlx::Error> {
    // "Last seen" once per host: the latest of the batch.
    let mut latest: HashMap<i64, (DateTime<Utc>, Option<&str>)> = HashMap::new();
    for seen in rows.iter().filter(|s| s.refresh) {
        let entry = latest
            .entry(seen.host)
            .or_insert((seen.at, seen.source_ip.as_deref()));
        if seen.at >= entry.0 {
            *entry = (seen.at, seen.source_ip.as_deref());
        }
    }
    let latest: Vec<(i64, DateTime<Utc>, Option<&str>)> = latest
        .into_iter()
        .map(|(host, (at, ip))| (host, at, ip))
        .collect();
    let events: Vec<Row<'_>> = rows
        .iter()
        .filter(|s| !s.kind.is_empty())
        .map(|seen| Row {
            host: seen.host,
            at: seen.at,
            source_ip: seen.source_ip.as_deref(),
            kind: &seen.kind,
            detail: &seen.detail,
        })
        .collect();
    // Bookkeeping: PostgreSQL need not flush it before it answers.
    let mut tx = db.begin_relaxed().await?;
    for chunk in latest.chunks(CHUNK) {
        crate::with_tx!(&mut tx, conn => {
            let mut query = sqlx::QueryBuilder::new(
                "UPDATE hosts SET last_seen_at = v.column2, last_ip = v.column3 FROM (",
            );
            query.push_values(chunk, |mut row, (host, at, ip)| {
                row.push_bind(*host).push_bind(*at).push_bind(*ip);
            });
            query.push(
                ") AS v WHERE hosts.id = v.column1 \
                 AND (hosts.last_seen_at IS NULL OR hosts.last_seen_at <= v.column2)",
            );
            query.build().execute(conn).await.map(|_| ())
        })?;
    }
    insert_timeline(&mut tx, &events).await?;
    tx.commit().await
}

/// One row of a host's timeline.
pub(super) struct Row<'a> {
    pub host: i64,
    pub at: DateTime<Utc>,
    pub source_ip: Option<&'a str>,
    pub kind: &'a str,
    pub detail: &'a str,
}

/// Inserts `rows` in `tx`, in their order (the timeline sorts by id),
/// [`CHUNK`] per statement; rows of hosts that no longer exist are left out.
pub(super) async fn insert_timeline(tx: &mut Tx, rows: &[Row<'_>]) -> Result<(), sqlx::Error> {
    let numbered: Vec<(usize, &Row<'_>)> = rows.iter().enumerate().collect();
    for chunk in numbered.chunks(CHUNK) {
        crate::with_tx!(&mut *tx, conn => {
            let mut query = sqlx::QueryBuilder::new(
                "INSERT INTO host_events (host_id, at, source_ip, kind, detail) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5 FROM (",
            );
            query.push_values(chunk, |mut values, (n, row)| {
                values
                    .push_bind(row.host)
                    .push_bind(row.at)
                    .push_bind(row.source_ip)
                    .push_bind(row.kind)
                    .push_bind(row.detail)
                    .push_bind(*n as i64);
            });
            query.push(") AS v JOIN hosts h ON h.id = v.column1 ORDER BY v.column6");
            query.build().execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}
