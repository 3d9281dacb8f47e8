//! Clean installs (thesis §5.1, DESIGN.md "Provisioning state"):
//!
//! ```text
//! local ──mark──▶ install_pending ──system script served──▶ installing
//!   ▲                  │ unmark                                  │ unattended served
//!   │                  ▼                                         ▼
//!   └────────────── local ◀──────── done callback ─────────── installed
//!                                    watchdog timeout ──▶ failed
//! ```
//!
//! Marking is the only way to an install, and the system script is served
//! once: the state moves from `install_pending` to `installing` in the
//! same statement that decides to serve it, so two boots at once get one
//! install, and a node that boots again (installed, failed, or while its
//! installer runs) boots from its disk. Every change of state is an event
//! on the host's timeline and a live event for its holder and whoever
//! marked it.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::cache::{CachedTemplate, Person, Rendered};
use super::{Host, HostState, Hosts, HostsError, Mac, scripts};
use crate::templates::{HostContext, MacContext, RenderContext, RenderError, UserContext};

/// Who is asking (a host's holder, or an administrator).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub admin: bool,
}

/// A template named in a host's boot options: by id or by name (the
/// person's own template of that name first, then the global one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    Id(i64),
    Name(String),
}

/// What a boot endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub host_id: i64,
    pub text: String,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    name: String,
    version: i32,
    body: String,
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: i64,
    username: String,
    display_name: String,
    email: String,
}

/// Where a state change comes from, for the timeline.
struct Change<'a> {
    from: &'a [HostState],
    to: HostState,
    marked_by: Option<i64>,
    source_ip: Option<&'a str>,
    kind: &'a str,
    detail: &'a str,
    /// A person's action goes into the audit log too (under `kind`).
    actor: Option<&'a Actor>,
}

/// The name of a state in sentences.
fn in_words(state: HostState) -> &'static str {
    match state {
        HostState::Discovered => "discovered",
        HostState::Local => "booting from its disk",
        HostState::InstallPending => "marked for an install",
        HostState::Installing => "installing",
        HostState::Installed => "installed",
        HostState::Failed => "failed",
    }
}

/// `text` on one line for an iPXE `echo`, without what iPXE would expand.
fn echo_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '$' => 'S',
            c => c,
        })
        .take(300)
        .collect()
}

impl Hosts {
    /// Whether `actor` may change the host's boot options and mark it.
    pub fn may_control(host: &Host, actor: &Actor) -> bool {
        actor.admin || host.holder_id == Some(actor.user_id)
    }

    /// The host if `actor` may control it; a 404-style error otherwise
    /// (others' hosts are not revealed).
    pub async fn controlled(&self, id: i64, actor: &Actor) -> Result<Host, HostsError> {
        self.get(id)
            .await?
            .filter(|h| Self::may_control(h, actor))
            .ok_or_else(|| HostsError::NotFound(format!("There is no host {id} that you hold.")))
    }

    /// Moves a host between states in one statement guarded by the states
    /// it may come from; `None` if it was in none of them. The timeline
    /// event and the live events commit with it.
    async fn change_state(
        &self,
        id: i64,
        change: Change<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, HostsError> {
        // What happened before this change comes first in the timeline.
        self.log.flush().await;
        let from = change
            .from
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.db.begin().await?;
        let row: Option<(String, Option<i64>, Option<i64>)> = crate::with_tx!(&mut tx, conn => {
            sqlx::query_as(
                "UPDATE hosts SET state = $1, state_changed_at = $2, updated_at = $2, \
                 marked_by = COALESCE($3, marked_by) \
                 WHERE id = $4 AND (',' || $5 || ',') LIKE ('%,' || state || ',%') \
                 RETURNING name, holder_id, marked_by",
            )
            .bind(change.to.as_str())
            .bind(now)
            .bind(change.marked_by)
            .bind(id)
            .bind(&from)
            .fetch_optional(conn)
            .await
        })?;
        let Some((name, holder, marker)) = row else {
            return Ok(None);
        };
        crate::with_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO host_events (host_id, at, source_ip, kind, detail) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(now)
            .bind(change.source_ip)
            .bind(change.kind)
            .bind(change.detail)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        if let Some(actor) = change.actor {
            super::leases::audit(
                &mut tx,
                now,
                &super::leases::Acting {
                    actor: Some(actor),
                    source_ip: change.source_ip,
                },
                change.kind,
                (id, &name),
                None,
                change.detail,
            )
            .await?;
        }
        let mut people: Vec<i64> = holder.into_iter().chain(marker).collect();
        people.dedup();
        let events = self
            .events
            .record(
                &mut tx,
                &people,
                "host",
                &json!({
                    "host": id,
                    "name": name,
                    "state": change.to,
                    "detail": change.detail,
                }),
                now,
            )
            .await?;
        crate::changes::notify(&mut tx, crate::changes::Change::Host(id)).await?;
        tx.commit().await?;
        self.cache.forget_host(id);
        self.events.committed(events);
        tracing::info!(host = id, %name, state = change.to.as_str(), detail = change.detail, "host state changed");
        Ok(Some(name))
    }

    /// Marks a host for a clean install on its next boot. Its system
    /// template (and unattended template, if chosen) must render for it
    /// now, so a broken template is found before the node boots.
    pub async fn mark(
        &self,
        id: i64,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.controlled(id, actor).await?;
        match host.state {
            HostState::Discovered => {
                return Err(HostsError::Conflict(format!(
                    "{} is not enrolled in a pool yet; an administrator enrols it first.",
                    host.name
                )));
            }
            HostState::Installing => {
                return Err(HostsError::Conflict(format!(
                    "{} is installing since {}; wait until the install ends or fails.",
                    host.name,
                    host.state_changed_at.format("%Y-%m-%d %H:%M UTC")
                )));
            }
            _ => {}
        }
        let Some(system) = &host.system else {
            return Err(HostsError::Conflict(format!(
                "Choose a system template for {} before marking it.",
                host.name
            )));
        };
        self.render_for(&host, system.id, Some(actor.user_id))
            .await?
            .map_err(|err| HostsError::Render(err.to_string()))?;
        if let Some(unattended) = &host.unattended {
            self.render_for(&host, unattended.id, Some(actor.user_id))
                .await?
                .map_err(|err| HostsError::Render(err.to_string()))?;
        }
        let detail = format!(
            "{} marked it for an install with “{}”{}",
            actor.username,
            system.name,
            host.unattended
                .as_ref()
                .map(|u| format!(" and “{}”", u.name))
                .unwrap_or_default()
        );
        let changed = self
            .change_state(
                id,
                Change {
                    from: &[
                        HostState::Local,
                        HostState::Installed,
                        HostState::Failed,
                        HostState::InstallPending,
                    ],
                    to: HostState::InstallPending,
                    marked_by: Some(actor.user_id),
                    source_ip: None,
                    kind: "mark",
                    actor: Some(actor),
                    detail: &detail,
                },
                now,
            )
            .await?;
        if changed.is_none() {
            // It changed meanwhile (a boot served the install, or an admin
            // took it out of service): say what it is now.
            let now_host = self.controlled(id, actor).await?;
            return Err(HostsError::Conflict(format!(
                "{} is {} now; it was not marked.",
                now_host.name,
                in_words(now_host.state)
            )));
        }
        self.controlled(id, actor).await
    }

    /// Takes the mark back, as long as the system script was not served.
    pub async fn unmark(
        &self,
        id: i64,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Host, HostsError> {
        let host = self.controlled(id, actor).await?;
        let detail = format!("{} took the mark back", actor.username);
        let changed = self
            .change_state(
                id,
                Change {
                    from: &[HostState::InstallPending],
                    to: HostState::Local,
                    marked_by: None,
                    source_ip: None,
                    kind: "unmark",
                    actor: Some(actor),
                    detail: &detail,
                },
                now,
            )
            .await?;
        if changed.is_none() {
            let now_host = self.controlled(id, actor).await?;
            return Err(HostsError::Conflict(match now_host.state {
                HostState::Installing => format!(
                    "{} already got its system script at {}; the install is running and can no longer be taken back.",
                    host.name,
                    now_host.state_changed_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                state => format!("{} is not marked (it is {}).", host.name, in_words(state)),
            }));
        }
        self.controlled(id, actor).await
    }

    /// The context templates render with for `host`: its holder's data, or
    /// whoever marked it, or `fallback` (a preview by an admin).
    pub async fn render_context(
        &self,
        host: &Host,
        fallback: Option<i64>,
    ) -> Result<RenderContext, HostsError> {
        let person_id = host.holder_id.or(host.marked_by_id).or(fallback);
        let person = match person_id {
            None => None,
            Some(id) => self.person(id).await?,
        };
        let mac = host
            .macs
            .first()
            .and_then(|m| Mac::parse(m).ok())
            .ok_or_else(|| HostsError::Conflict(format!("{} has no MAC address.", host.name)))?;
        let base_url = self.settings.base_url.clone();
        let (username, display_name, email, ssh_keys) = person
            .map(|p| {
                (
                    p.username.clone(),
                    p.display_name.clone(),
                    p.email.clone(),
                    p.keys.clone(),
                )
            })
            .unwrap_or_default();
        Ok(RenderContext {
            host: HostContext {
                id: host.id,
                name: host.name.clone(),
                interface: host.interface.clone(),
                mac: mac.to_string(),
                ip: host.last_ip.clone().unwrap_or_default(),
            },
            mac: MacContext {
                mac_address: mac.hexhyp(),
            },
            vars: host.vars.clone(),
            email: email.clone(),
            user: UserContext {
                username,
                display_name,
                email,
            },
            ssh_keys,
            unattended_url: format!("{base_url}/boot/{}/unattended", mac.hexhyp()),
            done_url: format!("{base_url}/boot/{}/done", mac.hexhyp()),
            base_url,
        })
    }

    /// A person as templates see them, from memory if there.
    async fn person(&self, id: i64) -> Result<Option<Arc<Person>>, HostsError> {
        if let Some(person) = self.cache.person(id) {
            return Ok(Some(person));
        }
        let ticket = self.cache.ticket();
        let row: Option<PersonRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, username, display_name, email FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let keys: Vec<(String, String)> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT public_key, name FROM ssh_keys WHERE user_id = $1 ORDER BY id")
                .bind(row.id)
                .fetch_all(pool)
                .await
        })?;
        let person = Person {
            username: row.username,
            display_name: row.display_name,
            email: row.email,
            keys: keys
                .into_iter()
                .map(|(key, name)| format!("{key} {name}"))
                .collect(),
        };
        Ok(Some(self.cache.put_person(id, person, ticket)))
    }

    /// A template, from memory if there; `None` if it is gone.
    async fn stored(&self, id: i64) -> Result<Option<Arc<CachedTemplate>>, HostsError> {
        if let Some(template) = self.cache.template(id) {
            return Ok(Some(template));
        }
        let ticket = self.cache.ticket();
        let row: Option<TemplateRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT name, version, body FROM templates WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| {
            self.cache.put_template(
                id,
                CachedTemplate {
                    name: row.name,
                    version: row.version,
                    body: row.body,
                },
                ticket,
            )
        }))
    }

    /// Renders `body` (a template named `name`) for `host` in the sandbox:
    /// a preview. The outer error is Bootler's; the inner the template's.
    pub async fn preview(
        &self,
        host: &Host,
        name: &str,
        body: &str,
        fallback: Option<i64>,
    ) -> Result<Result<String, RenderError>, HostsError> {
        let context = self.render_context(host, fallback).await?;
        self.sandbox
            .render(name, body, &context)
            .await
            .map_err(|err| HostsError::Unavailable(err.to_string()))
    }

    /// Renders template `template` for `host` in a blocking task. The
    /// outer error is Bootler's; the inner one the template's.
    async fn render_for(
        &self,
        host: &Host,
        template_id: i64,
        fallback: Option<i64>,
    ) -> Result<Result<(String, String), RenderError>, HostsError> {
        let Some(template) = self.stored(template_id).await? else {
            return Err(HostsError::Conflict(format!(
                "The template chosen for {} no longer exists; choose another.",
                host.name
            )));
        };
        let context = self.render_context(host, fallback).await?;
        let label = format!("“{}” v{}", template.name, template.version);
        if let Some(hit) = self
            .cache
            .rendered(host.id, template_id, template.version, &context)
        {
            return Ok(Ok((hit.output.clone(), label)));
        }
        let output = self
            .sandbox
            .render(&template.name, &template.body, &context)
            .await
            .map_err(|err| HostsError::Unavailable(err.to_string()))?;
        // Only outputs: an error may be the machine's (a render that ran
        // out of time under load), and errors are rare anyway.
        if let Ok(text) = &output {
            self.cache.put_rendered(
                host.id,
                template_id,
                Rendered {
                    version: template.version,
                    context,
                    output: text.clone(),
                },
            );
        }
        Ok(output.map(|text| (text, label)))
    }

    /// A marked host boots: render its system script and, in the same
    /// step that serves it, move it to `installing`. If it rendered but
    /// another request got there first (or the mark was taken back), the
    /// node boots from its disk.
    pub(super) async fn serve_install(
        &self,
        host: &Host,
        mac: Mac,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<String, HostsError> {
        let Some(system) = host.system.clone() else {
            self.seen(host.id, now, ip);
            let detail = "it was marked, but has no system template; the install failed";
            self.fail_pending(host, ip, detail, now).await?;
            return Ok(scripts::local_boot(Some(&host.name), mac));
        };
        match self.render_for(host, system.id, None).await {
            Ok(Ok((script, label))) => {
                let detail = format!("served the system script {label}; the install begins");
                let changed = self
                    .installs
                    .begin(super::installs::Install {
                        host: host.id,
                        at: now,
                        source_ip: ip.to_string(),
                        detail,
                    })
                    .await
                    .map_err(HostsError::Unavailable)?;
                if changed.is_some() {
                    Ok(script)
                } else {
                    self.seen(host.id, now, ip);
                    self.record(
                        host.id,
                        now,
                        Some(ip),
                        "boot",
                        "served the local-boot script (the install was already served or taken back)",
                    )
                    .await?;
                    Ok(scripts::local_boot(Some(&host.name), mac))
                }
            }
            Ok(Err(err)) => {
                self.seen(host.id, now, ip);
                let detail = format!("the system script did not render: {err}");
                self.fail_pending(host, ip, &detail, now).await?;
                Ok(format!(
                    "#!ipxe\necho Bootler: {}\necho Booting from the local disk.\nexit\n",
                    echo_safe(&detail)
                ))
            }
            Err(HostsError::Conflict(reason)) => {
                self.seen(host.id, now, ip);
                self.fail_pending(host, ip, &reason, now).await?;
                Ok(scripts::local_boot(Some(&host.name), mac))
            }
            Err(err) => Err(err),
        }
    }

    async fn fail_pending(
        &self,
        host: &Host,
        ip: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), HostsError> {
        self.change_state(
            host.id,
            Change {
                from: &[HostState::InstallPending],
                to: HostState::Failed,
                marked_by: None,
                source_ip: Some(ip),
                kind: "render_error",
                actor: None,
                detail,
            },
            now,
        )
        .await
        .map(|_| ())
    }

    /// A file of the image store was served to `ip`: a step of the install
    /// of the host that runs one from that address, if any (an image
    /// request names no MAC; the node asked for its system script from the
    /// same address moments before). Written behind the answer.
    pub async fn image_served(
        &self,
        ip: IpAddr,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, HostsError> {
        let ip = ip.to_string();
        let host: Option<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM hosts WHERE last_ip = $1 AND state = 'installing' \
                 ORDER BY state_changed_at DESC LIMIT 1",
            )
            .bind(&ip)
            .fetch_optional(pool)
            .await
        })?;
        if let Some(id) = host {
            self.record(id, now, Some(&ip), "image", detail).await?;
        }
        Ok(host)
    }

    /// `GET /boot/{mac}/unattended`: the installer's answer file, for a
    /// host whose install runs.
    pub async fn unattended(
        &self,
        mac: Mac,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Served, HostsError> {
        let ip = ip.to_string();
        let host = self
            .by_mac(mac)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("No host has the MAC address {mac}.")))?;
        if host.state != HostState::Installing {
            self.record(
                host.id,
                now,
                Some(&ip),
                "unattended",
                &format!("asked for its answer file while {}", in_words(host.state)),
            )
            .await?;
            return Err(HostsError::Conflict(format!(
                "{} ({mac}) is not installing (it is {}), so there is no answer file for it.",
                host.name,
                in_words(host.state)
            )));
        }
        let Some(unattended) = host.unattended.clone() else {
            self.record(
                host.id,
                now,
                Some(&ip),
                "unattended",
                "asked for its answer file; none is chosen",
            )
            .await?;
            return Err(HostsError::Conflict(format!(
                "{} ({mac}) has no unattended template chosen.",
                host.name
            )));
        };
        match self.render_for(&host, unattended.id, None).await? {
            Ok((text, label)) => {
                self.record(
                    host.id,
                    now,
                    Some(&ip),
                    "unattended",
                    &format!("served the answer file {label}"),
                )
                .await?;
                Ok(Served {
                    host_id: host.id,
                    text,
                })
            }
            Err(err) => {
                let detail = format!("the answer file did not render: {err}");
                self.change_state(
                    host.id,
                    Change {
                        from: &[HostState::Installing],
                        to: HostState::Failed,
                        marked_by: None,
                        source_ip: Some(&ip),
                        kind: "render_error",
                        actor: None,
                        detail: &detail,
                    },
                    now,
                )
                .await?;
                Err(HostsError::Render(err.to_string()))
            }
        }
    }

    /// `GET|POST /boot/{mac}/done`: the installer finished.
    pub async fn done(
        &self,
        mac: Mac,
        ip: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Served, HostsError> {
        let ip = ip.to_string();
        let host = self
            .by_mac(mac)
            .await?
            .ok_or_else(|| HostsError::NotFound(format!("No host has the MAC address {mac}.")))?;
        let changed = self
            .change_state(
                host.id,
                Change {
                    from: &[HostState::Installing],
                    to: HostState::Installed,
                    marked_by: None,
                    source_ip: Some(&ip),
                    kind: "done",
                    actor: None,
                    detail: "the installer said it finished; the install is done",
                },
                now,
            )
            .await?;
        if changed.is_some() {
            return Ok(Served {
                host_id: host.id,
                text: format!("{} ({mac}) is installed.\n", host.name),
            });
        }
        let current = self
            .get(host.id)
            .await?
            .map(|h| h.state)
            .unwrap_or(host.state);
        if current == HostState::Installed {
            // A retried call: nothing more to do.
            self.record(
                host.id,
                now,
                Some(&ip),
                "done",
                "said again that it finished",
            )
            .await?;
            return Ok(Served {
                host_id: host.id,
                text: format!("{} ({mac}) is installed.\n", host.name),
            });
        }
        self.record(
            host.id,
            now,
            Some(&ip),
            "done",
            &format!(
                "said its install finished while {}; nothing changed",
                in_words(current)
            ),
        )
        .await?;
        Err(HostsError::Conflict(format!(
            "{} ({mac}) has no install running (it is {}); nothing changed.",
            host.name,
            in_words(current)
        )))
    }

    /// Installs that ran longer than `boot.install_timeout` fail; their
    /// holders hear of it. Returns how many.
    pub async fn watchdog(&self, now: DateTime<Utc>) -> Result<usize, HostsError> {
        let timeout = chrono::Duration::from_std(self.settings.install_timeout)
            .unwrap_or(chrono::Duration::hours(2));
        let cutoff = now - timeout;
        let stuck: Vec<i64> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM hosts WHERE state = 'installing' AND state_changed_at < $1 ORDER BY id LIMIT 500",
            )
            .bind(cutoff)
            .fetch_all(pool)
            .await
        })?;
        let minutes = self.settings.install_timeout.as_secs() / 60;
        let detail = format!(
            "the installer did not say it finished within {minutes} minutes (boot.install_timeout_minutes); the install failed"
        );
        let mut failed = 0;
        for id in stuck {
            // Guarded again: a `done` may have come in meanwhile.
            if self
                .change_state(
                    id,
                    Change {
                        from: &[HostState::Installing],
                        to: HostState::Failed,
                        marked_by: None,
                        source_ip: None,
                        kind: "watchdog",
                        actor: None,
                        detail: &detail,
                    },
                    now,
                )
                .await?
                .is_some()
            {
                failed += 1;
            }
        }
        Ok(failed)
    }
}
