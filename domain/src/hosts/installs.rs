//! Group commit of served installs. A marked node that boots moves from
//! `install_pending` to `installing` before it gets its system script, and
//! that change is a promise (no reinstall loop), so it is committed before
//! the answer. One commit per node caps a boot storm at the disk's flush
//! rate; here one task commits every install that queued while it wrote
//! the last batch, in one transaction, and then answers each node.
//!
//! A batch is what [`Hosts::change_state`](super::Hosts) does for one host,
//! done for many: the guarded `UPDATE` (so a mark taken back, or a second
//! request for the same node, still loses) that also sets "last seen", the
//! timeline rows, the holder's live events and, on PostgreSQL, the other
//! replicas' NOTIFY. The boot request that waits for it queues nothing
//! for the timeline writer, so the batch's flush of that writer is quick.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::bootlog::{BootLog, Row, insert_timeline};
use super::cache::BootCache;
use crate::db::Db;
use crate::jobs::Events;

/// Installs a batch commits at most.
const BATCH: usize = 512;
/// Installs that may wait for their batch.
const QUEUE: usize = 8192;
/// Hosts per `UPDATE`.
const CHUNK: usize = 256;

/// One node to move to `installing`.
pub(super) struct Install {
    pub host: i64,
    pub at: DateTime<Utc>,
    pub source_ip: String,
    pub detail: String,
}

/// `Ok(Some(name))`: it is installing now; `Ok(None)`: it was not pending
/// any more (served already, or unmarked); `Err`: nothing changed.
type Reply = Result<Option<String>, String>;

#[derive(Clone)]
pub(super) struct Installs {
    queue: Option<mpsc::Sender<(Install, oneshot::Sender<Reply>)>>,
}

struct Writer {
    db: Db,
    log: BootLog,
    events: Events,
    cache: Arc<BootCache>,
}

impl Installs {
    /// Starts the committer (on the current tokio runtime).
    pub fn start(db: Db, log: BootLog, events: Events, cache: Arc<BootCache>) -> Installs {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no tokio runtime: installs cannot be served");
            return Installs { queue: None };
        };
        let (queue, installs) = mpsc::channel(QUEUE);
        let writer = Writer {
            db,
            log,
            events,
            cache,
        };
        runtime.spawn(writer.run(installs));
        Installs { queue: Some(queue) }
    }

    /// Moves the host to `installing` in the next batch and waits for its
    /// commit.
    pub async fn begin(&self, install: Install) -> Reply {
        let Some(queue) = &self.queue else {
            return Err("installs cannot be served (no runtime)".into());
        };
        let (reply, answer) = oneshot::channel();
        if queue.send((install, reply)).await.is_err() {
            return Err("the install committer stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the install committer stopped".into()))
    }
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<(Install, oneshot::Sender<Reply>)>) {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = queue.recv().await {
            batch.push(first);
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let installs: Vec<&Install> = batch.iter().map(|(install, _)| install).collect();
            let outcome = self.commit(&installs).await;
            match outcome {
                Ok(names) => {
                    for ((_, reply), name) in batch.drain(..).zip(names) {
                        let _ = reply.send(Ok(name));
                    }
                }
                Err(err) => {
                    tracing::warn!(installs = batch.len(), error = %err, "could not serve installs");
                    for (_, reply) in batch.drain(..) {
                        let _ = reply.send(Err(format!("database: {err}")));
                    }
                }
            }
        }
    }

    /// Commits a batch; for each install (in order) the host's name if it
    /// changed.
    async fn commit(&self, installs: &[&Install]) -> Result<Vec<Option<String>>, sqlx::Error> {
        // What happened before these changes comes first in the timeline.
        self.log.flush().await;
        // A node asking twice in one batch: the first request wins, the
        // others lose as they would one batch later.
        let mut seen = HashSet::new();
        let first: Vec<(usize, &Install)> = installs
            .iter()
            .enumerate()
            .filter(|(_, install)| seen.insert(install.host))
            .map(|(n, install)| (n, *install))
            .collect();
        let mut tx = self.db.begin().await?;
        let mut changed: Vec<(i64, String, Option<i64>, Option<i64>)> = Vec::new();
        for chunk in first.chunks(CHUNK) {
            let rows: Vec<(i64, String, Option<i64>, Option<i64>)> = crate::with_tx!(&mut tx, conn => {
                let mut query = sqlx::QueryBuilder::new(
                    "UPDATE hosts SET state = 'installing', state_changed_at = v.column2, \
                     updated_at = v.column2, last_seen_at = v.column2, last_ip = v.column3 FROM (",
                );
                query.push_values(chunk, |mut row, (_, install)| {
                    row.push_bind(install.host)
                        .push_bind(install.at)
                        .push_bind(install.source_ip.as_str());
                });
                query.push(
                    ") AS v WHERE hosts.id = v.column1 AND hosts.state = 'install_pending' \
                     RETURNING hosts.id, hosts.name, hosts.holder_id, hosts.marked_by",
                );
                query.build_query_as().fetch_all(conn).await
            })?;
            changed.extend(rows);
        }
        let names: std::collections::HashMap<i64, &str> = changed
            .iter()
            .map(|(id, name, _, _)| (*id, name.as_str()))
            .collect();
        let timeline: Vec<Row<'_>> = first
            .iter()
            .filter(|(_, install)| names.contains_key(&install.host))
            .map(|(_, install)| Row {
                host: install.host,
                at: install.at,
                source_ip: Some(&install.source_ip),
                kind: "install",
                detail: &install.detail,
            })
            .collect();
        insert_timeline(&mut tx, &timeline).await?;
        let by_host: std::collections::HashMap<i64, &Install> = first
            .iter()
            .map(|(_, install)| (install.host, *install))
            .collect();
        let mut events = Vec::new();
        for (id, name, holder, marker) in &changed {
            let Some(install) = by_host.get(id) else {
                continue;
            };
            let mut people: Vec<i64> = holder.iter().chain(marker.iter()).copied().collect();
            people.dedup();
            events.extend(
                self.events
                    .record(
                        &mut tx,
                        &people,
                        "host",
                        &json!({
                            "host": id,
                            "name": name,
                            "state": "installing",
                            "detail": install.detail,
                        }),
                        install.at,
                    )
                    .await?,
            );
            crate::changes::notify(&mut tx, crate::changes::Change::Host(*id)).await?;
        }
        tx.commit().await?;
        let ids: HashSet<i64> = names.keys().copied().collect();
        self.cache.forget_hosts(&ids);
        self.events.committed(events);
        for (id, name, _, _) in &changed {
            tracing::info!(host = id, %name, state = "installing", "host state changed");
        }
        // Each install's answer: its host's name, once (to its first request).
        let mut answered = HashSet::new();
        Ok(installs
            .iter()
            .map(|install| {
                names
                    .get(&install.host)
                    .filter(|_| answered.insert(install.host))
                    .map(|name| name.to_string())
            })
            .collect())
    }
}
