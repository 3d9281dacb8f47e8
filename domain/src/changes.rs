//! How in-memory caches learn that what they hold changed.
//!
//! The boot endpoints answer from memory (see `hosts::cache`); what they
//! keep is only good as long as every change reaches them:
//!
//! - in this process, a writer calls [`changed`] (or, for a host, its hosts
//!   cache directly) **after** its transaction commits; the counters below
//!   move at once, so the next read here misses and reads the database;
//! - on PostgreSQL the writer also sends `NOTIFY bootler_changes` in its
//!   transaction ([`notify`]); every replica's event listener hears it
//!   ([`heard`]): a host is forgotten by every hosts cache of that process
//!   ([`watch_hosts`]), people and templates move the counters. A replica
//!   that loses its listening connection forgets everything
//!   ([`forget_all`]), and no entry is kept longer than [`MAX_AGE`] anyway.
//!
//! Counters are per process, not per database: two Bootlers in one test
//! process only make each other read a little more often.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::db::{Db, Tx};

/// PostgreSQL channel carrying changes between replicas.
pub const CHANNEL: &str = "bootler_changes";

/// The longest any cached entry is trusted, even without a change heard.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A host: its state, names, boot options, MACs or holder.
    Host(i64),
    /// A person's name, e-mail address or SSH keys.
    People,
    /// A template's body, name or existence.
    Templates,
}

static HOSTS: AtomicU64 = AtomicU64::new(0);
static PEOPLE: AtomicU64 = AtomicU64::new(0);
static TEMPLATES: AtomicU64 = AtomicU64::new(0);

/// Something that keeps hosts and forgets one when told.
pub trait ForgetsHosts: Send + Sync {
    fn forget_host(&self, id: i64);
}

type Watchers = Mutex<Vec<Weak<dyn ForgetsHosts>>>;

/// The hosts caches of this process, told of hosts changed elsewhere.
static WATCHERS: LazyLock<Watchers> = LazyLock::new(Watchers::default);

/// Lets `cache` hear of hosts changed on other replicas (while it lives).
pub fn watch_hosts(cache: Weak<dyn ForgetsHosts>) {
    let mut watchers = WATCHERS.lock().unwrap_or_else(PoisonError::into_inner);
    watchers.retain(|w| w.strong_count() > 0);
    watchers.push(cache);
}

fn forget_host_everywhere(id: i64) {
    let watchers: Vec<Arc<dyn ForgetsHosts>> = WATCHERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for cache in watchers {
        cache.forget_host(id);
    }
}

/// The counters an entry was read under; it is good while they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    hosts: u64,
    people: u64,
    templates: u64,
}

/// The counters now. Take them **before** reading the database.
pub fn generation() -> Generation {
    Generation {
        hosts: HOSTS.load(Ordering::Acquire),
        people: PEOPLE.load(Ordering::Acquire),
        templates: TEMPLATES.load(Ordering::Acquire),
    }
}

impl Generation {
    /// Whether host data read under `self` is still good (this counter
    /// moves only when everything is forgotten; single hosts are forgotten
    /// by the hosts caches themselves).
    pub fn hosts_current(&self) -> bool {
        self.hosts == HOSTS.load(Ordering::Acquire)
    }

    pub fn people_current(&self) -> bool {
        self.people == PEOPLE.load(Ordering::Acquire)
    }

    pub fn templates_current(&self) -> bool {
        self.templates == TEMPLATES.load(Ordering::Acquire)
    }
}

/// A change committed in this process (call it after the commit).
/// Hosts changed here go to the hosts cache itself, which forgets just
/// that host; this moves the counters of people and templates.
pub fn changed(change: Change) {
    match change {
        Change::Host(_) => {}
        Change::People => {
            PEOPLE.fetch_add(1, Ordering::AcqRel);
        }
        Change::Templates => {
            TEMPLATES.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Everything cached may be stale (a listener lost its connection).
pub fn forget_all() {
    HOSTS.fetch_add(1, Ordering::AcqRel);
    PEOPLE.fetch_add(1, Ordering::AcqRel);
    TEMPLATES.fetch_add(1, Ordering::AcqRel);
}

/// Tells the other replicas of `change` once `tx` commits (PostgreSQL
/// only; SQLite has one process).
pub async fn notify(tx: &mut Tx, change: Change) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(change))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A change committed outside a transaction: this process sees it at
/// once; on PostgreSQL the other replicas hear it a moment later (if that
/// NOTIFY fails, they see it within [`MAX_AGE`]).
pub async fn announce(db: &Db, change: Change) {
    changed(change);
    if let Db::Postgres(pool) = db
        && let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(change))
            .execute(pool)
            .await
    {
        tracing::warn!(error = %err, ?change, "could not tell the other replicas of a change");
    }
}

fn payload(change: Change) -> String {
    match change {
        Change::Host(id) => format!("host:{id}"),
        Change::People => "people".into(),
        Change::Templates => "templates".into(),
    }
}

/// A notification from the listener (ours too: the writer's own cache
/// already forgot, but other Bootlers in this process may not have).
pub fn heard(payload: &str) {
    match payload {
        "people" => changed(Change::People),
        "templates" => changed(Change::Templates),
        other => match other.strip_prefix("host:").and_then(|id| id.parse().ok()) {
            Some(id) => forget_host_everywhere(id),
            None => forget_all(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Kept(Mutex<Vec<i64>>);

    impl ForgetsHosts for Kept {
        fn forget_host(&self, id: i64) {
            self.0.lock().unwrap().push(id);
        }
    }

    #[test]
    fn notifications_reach_every_cache_and_move_the_counters() {
        let a = Arc::new(Kept(Mutex::new(Vec::new())));
        let b = Arc::new(Kept(Mutex::new(Vec::new())));
        let weak_a: Weak<dyn ForgetsHosts> = Arc::downgrade(&a) as Weak<dyn ForgetsHosts>;
        let weak_b: Weak<dyn ForgetsHosts> = Arc::downgrade(&b) as Weak<dyn ForgetsHosts>;
        watch_hosts(weak_a);
        watch_hosts(weak_b);
        heard(&payload(Change::Host(3)));
        assert!(a.0.lock().unwrap().contains(&3));
        assert!(b.0.lock().unwrap().contains(&3));
        let before = generation();
        heard(&payload(Change::Templates));
        assert!(!before.templates_current());
        let before = generation();
        heard(&payload(Change::People));
        assert!(!before.people_current());
        let before = generation();
        heard("garbage");
        assert!(!before.hosts_current() && !before.people_current() && !before.templates_current());
    }
}
