//! What boot requests read, kept in memory: hosts by MAC, the people whose
//! data templates render with, templates, and what they rendered to. A boot storm then
//! costs no database read; only state changes and the timeline (written
//! behind, see `bootlog`) reach the database.
//!
//! Entries are dropped when what they hold changes (see
//! [`crate::changes`]): hosts changed in this process are forgotten one by
//! one, right after the commit; anything changed on another replica, and
//! people and templates changed anywhere, move a counter that makes every
//! entry read under the old value a miss. A read that raced with a change
//! is not stored ([`Ticket`]), and nothing is trusted for longer than
//! [`crate::changes::MAX_AGE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use crate::changes::{self, Generation, MAX_AGE};
use crate::templates::RenderContext;

use super::{Host, Mac};

/// Beyond this many entries of a kind, the cache starts afresh (a bound
/// on memory, far above any lab).
const MAX_ENTRIES: usize = 200_000;

/// A person as templates see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Person {
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// `authorized_keys` lines.
    pub keys: Vec<String>,
}

/// A template as stored.
#[derive(Debug)]
pub(super) struct CachedTemplate {
    pub name: String,
    pub version: i32,
    pub body: String,
}

/// A template's output for a host, and what it was rendered from: a
/// template is a pure function of its version and context, so the same
/// pair gives the same output.
#[derive(Debug)]
pub(super) struct Rendered {
    pub version: i32,
    pub context: RenderContext,
    pub output: String,
}

struct Entry<T> {
    value: Arc<T>,
    generation: Generation,
    at: Instant,
}

/// Taken before a database read; the result is stored only if nothing
/// changed meanwhile.
#[derive(Clone, Copy)]
pub(super) struct Ticket {
    generation: Generation,
    forgotten: u64,
}

#[derive(Default)]
pub(super) struct BootCache {
    hosts: RwLock<HashMap<Mac, Entry<Host>>>,
    people: RwLock<HashMap<i64, Entry<Person>>>,
    templates: RwLock<HashMap<i64, Entry<CachedTemplate>>>,
    /// By (host, template).
    rendered: RwLock<HashMap<(i64, i64), Arc<Rendered>>>,
    /// Moves each time a host is forgotten here.
    forgotten: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn fresh<T>(entry: &Entry<T>) -> bool {
    entry.at.elapsed() < MAX_AGE
}

fn put<K: std::hash::Hash + Eq, T>(map: &RwLock<HashMap<K, Entry<T>>>, key: K, entry: Entry<T>) {
    let mut map = write(map);
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, entry);
}

impl BootCache {
    pub fn ticket(&self) -> Ticket {
        Ticket {
            // Before the counter of this cache: a change between the two
            // reads is then seen by one of them.
            forgotten: self.forgotten.load(Ordering::Acquire),
            generation: changes::generation(),
        }
    }

    pub fn host(&self, mac: Mac) -> Option<Arc<Host>> {
        let map = read(&self.hosts);
        let entry = map.get(&mac)?;
        (entry.generation.hosts_current() && fresh(entry)).then(|| Arc::clone(&entry.value))
    }

    /// Stores `host` as read under `ticket` for each of its MACs.
    pub fn put_host(&self, host: Host, ticket: Ticket) -> Arc<Host> {
        let host = Arc::new(host);
        if ticket.forgotten != self.forgotten.load(Ordering::Acquire)
            || !ticket.generation.hosts_current()
        {
            return host;
        }
        let now = Instant::now();
        for mac in host.macs.iter().filter_map(|m| Mac::parse(m).ok()) {
            put(
                &self.hosts,
                mac,
                Entry {
                    value: Arc::clone(&host),
                    generation: ticket.generation,
                    at: now,
                },
            );
        }
        // A forget that ran while storing wins.
        if ticket.forgotten != self.forgotten.load(Ordering::Acquire) {
            self.forget_host(host.id);
        }
        host
    }

    /// The host's address as its last boot request came from (what
    /// templates see as `host.ip`), without forgetting the rest.
    pub fn seen_at(&self, host: &Arc<Host>, ip: &str) -> Arc<Host> {
        if host.last_ip.as_deref() == Some(ip) {
            return Arc::clone(host);
        }
        let mut changed = Host::clone(host);
        changed.last_ip = Some(ip.to_string());
        let changed = Arc::new(changed);
        let mut map = write(&self.hosts);
        for entry in map.values_mut() {
            if Arc::ptr_eq(&entry.value, host) {
                entry.value = Arc::clone(&changed);
            }
        }
        changed
    }

    /// Forgets a host changed in this process (after the commit).
    pub fn forget_host(&self, id: i64) {
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        write(&self.hosts).retain(|_, entry| entry.value.id != id);
    }

    /// [`BootCache::forget_host`] for many, in one pass.
    pub fn forget_hosts(&self, ids: &std::collections::HashSet<i64>) {
        if ids.is_empty() {
            return;
        }
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        write(&self.hosts).retain(|_, entry| !ids.contains(&entry.value.id));
    }

    pub fn person(&self, id: i64) -> Option<Arc<Person>> {
        let map = read(&self.people);
        let entry = map.get(&id)?;
        (entry.generation.people_current() && fresh(entry)).then(|| Arc::clone(&entry.value))
    }

    pub fn put_person(&self, id: i64, person: Person, ticket: Ticket) -> Arc<Person> {
        let person = Arc::new(person);
        if ticket.generation.people_current() {
            put(
                &self.people,
                id,
                Entry {
                    value: Arc::clone(&person),
                    generation: ticket.generation,
                    at: Instant::now(),
                },
            );
        }
        person
    }

    pub fn template(&self, id: i64) -> Option<Arc<CachedTemplate>> {
        let map = read(&self.templates);
        let entry = map.get(&id)?;
        (entry.generation.templates_current() && fresh(entry)).then(|| Arc::clone(&entry.value))
    }

    pub fn put_template(
        &self,
        id: i64,
        template: CachedTemplate,
        ticket: Ticket,
    ) -> Arc<CachedTemplate> {
        let template = Arc::new(template);
        if ticket.generation.templates_current() {
            put(
                &self.templates,
                id,
                Entry {
                    value: Arc::clone(&template),
                    generation: ticket.generation,
                    at: Instant::now(),
                },
            );
        }
        template
    }
}

impl BootCache {
    /// The output of `template` for `host` if it was rendered from this
    /// version and context.
    pub fn rendered(
        &self,
        host: i64,
        template: i64,
        version: i32,
        context: &RenderContext,
    ) -> Option<Arc<Rendered>> {
        let map = read(&self.rendered);
        let hit = map.get(&(host, template))?;
        (hit.version == version && hit.context == *context).then(|| Arc::clone(hit))
    }

    pub fn put_rendered(&self, host: i64, template: i64, rendered: Rendered) {
        let mut map = write(&self.rendered);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert((host, template), Arc::new(rendered));
    }
}

impl changes::ForgetsHosts for BootCache {
    fn forget_host(&self, id: i64) {
        BootCache::forget_host(self, id);
    }
}
