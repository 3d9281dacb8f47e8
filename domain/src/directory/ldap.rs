//! The LDAP directory: one entry per person, `uid=<username>,<users_dn>`,
//! with the object classes `inetOrgPerson` and `posixAccount`, written by
//! Bootler's service account (`ldap.bind_dn`).
//!
//! Every call opens its own connection and the whole call is bounded by
//! `ldap.timeout_seconds`: a server that is down or hangs makes the call fail
//! with [`DirectoryError::Unavailable`], never wait forever. Passwords are
//! never logged; filter values go through [`ldap_escape`] and DN values
//! through [`dn_escape`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use ldap3::exop::PasswordModify;
use ldap3::{
    LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, Scope, SearchEntry, dn_escape,
    ldap_escape,
};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{Directory, DirectoryError, Entry, Group};
use crate::config::{LdapConfig, PasswordScheme};

/// LDAP result codes Bootler acts on (RFC 4511, appendix A).
mod rc {
    pub const SUCCESS: u32 = 0;
    pub const TIME_LIMIT_EXCEEDED: u32 = 3;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const ADMIN_LIMIT_EXCEEDED: u32 = 11;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
}

/// The object classes of a person's entry.
const OBJECT_CLASSES: [&str; 2] = ["inetOrgPerson", "posixAccount"];
/// Salt length of `{SSHA}` hashes (OpenLDAP's own uses 4; more does no harm).
const SSHA_SALT_LEN: usize = 8;
const SHA1_LEN: usize = 20;
/// A well-formed `{SSHA}` hash of no one's password, to spend the same time
/// when there is no hash to check.
const DUMMY_SSHA: &str = "{SSHA}6wfJ94CnCEeztUel4PG0W5kx0Xxib290bGVyIQ==";
/// How often `create` tries again when another writer took the same
/// uidNumber or the same entry at the same moment.
const ATTEMPTS: usize = 10;
/// How many numbers above the highest one in use are probed one by one
/// (in case the server cannot order uidNumbers).
const PROBES: u32 = 100;
/// Rounds of the highest-uidNumber search when the server truncates results.
const MAX_ROUNDS: usize = 10_000;

pub struct Ldap {
    config: LdapConfig,
    timeout: Duration,
    /// Built on first TLS use: the system's roots plus `ldap.tls_ca_file`.
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

/// A person's entry as `create` finds it.
struct Existing {
    object_classes: Vec<String>,
    uid_number: Option<u32>,
    gid_number: Option<u32>,
}

impl Ldap {
    /// Takes the `[ldap]` section as it is; a missing key shows up as an
    /// error on first use (`Config::load` has already checked it).
    pub fn new(config: LdapConfig) -> Ldap {
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        Ldap {
            config,
            timeout,
            tls: OnceLock::new(),
        }
    }

    fn required<'a>(value: &'a Option<String>, key: &str) -> Result<&'a str, DirectoryError> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(DirectoryError::Internal(format!(
                "`{key}` is not configured"
            ))),
        }
    }

    fn url(&self) -> Result<&str, DirectoryError> {
        Self::required(&self.config.url, "ldap.url")
    }

    fn users_dn(&self) -> Result<&str, DirectoryError> {
        Self::required(&self.config.users_dn, "ldap.users_dn")
    }

    /// `uid=<username>,<users_dn>`, the username escaped for a DN.
    pub fn user_dn(&self, username: &str) -> Result<String, DirectoryError> {
        if username.is_empty() {
            return Err(DirectoryError::Rejected("an empty username".into()));
        }
        Ok(format!("uid={},{}", dn_escape(username), self.users_dn()?))
    }

    /// The service account's password, from the configuration or read from
    /// its file now (so a rotated file takes effect without a restart).
    fn bind_password(&self) -> Result<String, DirectoryError> {
        let password = match (&self.config.bind_password, &self.config.bind_password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    DirectoryError::Internal(format!(
                        "cannot read ldap.bind_password_file {}: {err}",
                        path.display()
                    ))
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_string()
            }
            (None, None) => {
                return Err(DirectoryError::Internal(
                    "neither ldap.bind_password nor ldap.bind_password_file is configured".into(),
                ));
            }
        };
        if password.is_empty() {
            // An empty password would bind anonymously.
            return Err(DirectoryError::Internal(
                "the LDAP service account's password is empty".into(),
            ));
        }
        Ok(password)
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
        self.tls
            .get_or_init(|| build_tls_config(&self.config))
            .clone()
            .map_err(DirectoryError::Internal)
    }

    /// A new connection, not bound yet.
    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let url = self.url()?;
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        if url.starts_with("ldaps://") || self.config.starttls {
            settings = settings
                .set_config(self.tls_config()?)
                .set_starttls(self.config.starttls && url.starts_with("ldap://"));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|err| self.error("connect", err))?;
        tokio::spawn(async move {
            if let Err(err) = conn.drive().await {
                tracing::debug!(error = %err, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }

    /// A connection bound as the service account.
    async fn service(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let bind_dn = Self::required(&self.config.bind_dn, "ldap.bind_dn")?;
        let password = self.bind_password()?;
        let mut ldap = self.connect().await?;
        let result = ldap
            .simple_bind(bind_dn, &password)
            .await
            .map_err(|err| self.error("bind as the service account", err))?;
        match result.rc {
            rc::SUCCESS => Ok(ldap),
            rc::INVALID_CREDENTIALS => Err(DirectoryError::Internal(format!(
                "the LDAP server refused the service account {bind_dn}: check ldap.bind_dn and its password"
            ))),
            _ => Err(rc_error("bind as the service account", result)),
        }
    }

    /// Runs one directory call within `ldap.timeout_seconds`.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(DirectoryError::Unavailable(format!(
                "{what}: no answer from {} within {} s",
                self.config.url.as_deref().unwrap_or("the LDAP server"),
                self.timeout.as_secs()
            ))),
        }
    }

    /// Maps a client-side error: a server that cannot be reached is
    /// unavailable, anything else is Bootler's or the configuration's fault.
    fn error(&self, what: &str, err: LdapError) -> DirectoryError {
        let url = self.config.url.as_deref().unwrap_or("the LDAP server");
        match err {
            LdapError::LdapResult { result } => rc_error(what, result),
            // TLS handshake failures (an untrusted certificate, a wrong
            // name) come as I/O errors with invalid data: a configuration
            // problem, not an outage.
            LdapError::Io { source } if source.kind() == std::io::ErrorKind::InvalidData => {
                DirectoryError::Internal(format!("{what}: {url}: {source}"))
            }
            err @ (LdapError::Io { .. }
            | LdapError::Timeout { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream) => {
                DirectoryError::Unavailable(format!("{what}: {url}: {err}"))
            }
            err => DirectoryError::Internal(format!("{what}: {url}: {err}")),
        }
    }

    /// Searches and returns the entries; `NO_SUCH_OBJECT` is an empty answer.
    /// An answer cut short by a size limit is returned as far as it goes:
    /// the callers only ask whether anyone, or more than one, matches.
    async fn search(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let ldap3::SearchResult(entries, result) = ldap
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|err| self.error("search", err))?;
        match result.rc {
            rc::SUCCESS | rc::SIZE_LIMIT_EXCEEDED => {
                Ok(entries.into_iter().map(SearchEntry::construct).collect())
            }
            rc::NO_SUCH_OBJECT => Ok(Vec::new()),
            _ => Err(rc_error("search", result)),
        }
    }

    /// The person's entry, if there is one at `dn`.
    async fn existing(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
    ) -> Result<Option<Existing>, DirectoryError> {
        let found = self
            .search(
                ldap,
                dn,
                Scope::Base,
                "(objectClass=*)",
                &["objectClass", "uidNumber", "gidNumber"],
            )
            .await?;
        Ok(found.into_iter().next().map(|entry| Existing {
            object_classes: values(&entry, "objectClass").to_vec(),
            uid_number: number(&entry, "uidNumber"),
            gid_number: number(&entry, "gidNumber"),
        }))
    }

    /// Refuses a username that another entry under `users_dn` already
    /// carries (a POSIX login name must be unique).
    async fn check_uid_free(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        username: &str,
        ours_exists: bool,
    ) -> Result<(), DirectoryError> {
        let filter = format!("(uid={})", ldap_escape(username));
        let holders = self
            .search(ldap, self.users_dn()?, Scope::Subtree, &filter, &["1.1"])
            .await?
            .len();
        let ours = if ours_exists {
            self.search(ldap, dn, Scope::Base, &filter, &["1.1"])
                .await?
                .len()
        } else {
            0
        };
        if holders > ours {
            return Err(DirectoryError::Rejected(format!(
                "another entry under {} already has uid={username}",
                self.users_dn()?
            )));
        }
        Ok(())
    }

    /// The lowest free uidNumber above every one in use under `users_dn`
    /// (and at least `ldap.uid_start`).
    async fn next_uid_number(&self, ldap: &mut ldap3::Ldap) -> Result<u32, DirectoryError> {
        let users_dn = self.users_dn()?;
        let start = self.config.uid_start;
        let mut highest: Option<u32> = None;
        // A server may cut a long answer short (a size limit): then ask
        // again for the numbers above the highest seen, until it is complete.
        for _ in 0..MAX_ROUNDS {
            let floor = match highest {
                Some(n) => n.saturating_add(1),
                None => start,
            };
            let filter = format!("(uidNumber>={floor})");
            let ldap3::SearchResult(entries, result) = ldap
                .search(users_dn, Scope::Subtree, &filter, vec!["uidNumber"])
                .await
                .map_err(|err| self.error("search uidNumbers", err))?;
            let before = highest;
            for entry in entries.into_iter().map(SearchEntry::construct) {
                if let Some(n) = number(&entry, "uidNumber")
                    && n >= start
                {
                    highest = Some(highest.map_or(n, |h| h.max(n)));
                }
            }
            match result.rc {
                rc::SUCCESS | rc::NO_SUCH_OBJECT => break,
                rc::SIZE_LIMIT_EXCEEDED | rc::ADMIN_LIMIT_EXCEEDED if highest != before => {}
                _ => return Err(rc_error("search uidNumbers", result)),
            }
        }
        let mut candidate = match highest {
            Some(n) => n.checked_add(1).ok_or_else(|| {
                DirectoryError::Rejected("no uidNumber is left above the highest one".into())
            })?,
            None => start,
        };
        // Make sure: a server without an ordering rule for uidNumber
        // answers `>=` with nothing.
        for _ in 0..PROBES {
            if self.uid_number_holders(ldap, candidate).await? == 0 {
                return Ok(candidate);
            }
            candidate = candidate.checked_add(1).ok_or_else(|| {
                DirectoryError::Rejected("no uidNumber is left above the highest one".into())
            })?;
        }
        Err(DirectoryError::Rejected(format!(
            "no free uidNumber found under {users_dn}"
        )))
    }

    async fn uid_number_holders(
        &self,
        ldap: &mut ldap3::Ldap,
        number: u32,
    ) -> Result<usize, DirectoryError> {
        Ok(self
            .search(
                ldap,
                self.users_dn()?,
                Scope::Subtree,
                &format!("(uidNumber={number})"),
                &["1.1"],
            )
            .await?
            .len())
    }

    /// Sets uidNumber and gidNumber of `dn` to `number`.
    async fn move_to(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        number: u32,
    ) -> Result<(), DirectoryError> {
        let number = number.to_string();
        let result = ldap
            .modify(
                dn,
                vec![
                    Mod::Replace("uidNumber", HashSet::from([number.as_str()])),
                    Mod::Replace("gidNumber", HashSet::from([number.as_str()])),
                ],
            )
            .await
            .map_err(|err| self.error("modify", err))?;
        if result.rc == rc::SUCCESS {
            Ok(())
        } else {
            Err(rc_error("modify", result))
        }
    }

    /// The attributes Bootler owns, as they should be.
    fn attributes(&self, entry: &Entry, password_hash: &str) -> Vec<(&'static str, String)> {
        let display_name = entry.display_name.trim();
        let cn = if display_name.is_empty() {
            entry.username.clone()
        } else {
            display_name.to_string()
        };
        let sn = display_name
            .split_whitespace()
            .last()
            .unwrap_or(&entry.username)
            .to_string();
        let mut attrs = vec![
            ("cn", cn),
            ("sn", sn),
            (
                "homeDirectory",
                format!(
                    "{}/{}",
                    self.config.home_base.trim_end_matches('/'),
                    entry.username
                ),
            ),
            ("loginShell", self.config.login_shell.clone()),
            ("userPassword", password_hash.to_string()),
        ];
        if !entry.email.is_empty() {
            attrs.push(("mail", entry.email.clone()));
        }
        attrs
    }

    /// One attempt at creating or updating the entry. `Ok(None)`: someone
    /// else changed things at the same moment, try again.
    async fn create_once(
        &self,
        ldap: &mut ldap3::Ldap,
        entry: &Entry,
        dn: &str,
        password_hash: &str,
    ) -> Result<Option<()>, DirectoryError> {
        let existing = self.existing(ldap, dn).await?;
        self.check_uid_free(ldap, dn, &entry.username, existing.is_some())
            .await?;
        let attrs = self.attributes(entry, password_hash);
        let allocated = match existing {
            Some(existing) => {
                // Idempotent: the entry is there (an earlier attempt, or
                // made by hand); bring Bootler's attributes up to date and
                // keep the numbers it has.
                let mut mods: Vec<Mod<String>> = Vec::new();
                let missing: HashSet<String> = OBJECT_CLASSES
                    .iter()
                    .filter(|class| {
                        !existing
                            .object_classes
                            .iter()
                            .any(|have| have.eq_ignore_ascii_case(class))
                    })
                    .map(|class| class.to_string())
                    .collect();
                if !missing.is_empty() {
                    mods.push(Mod::Add("objectClass".into(), missing));
                }
                for (name, value) in &attrs {
                    mods.push(Mod::Replace(
                        name.to_string(),
                        HashSet::from([value.clone()]),
                    ));
                }
                let allocated = match existing.uid_number {
                    Some(_) => None,
                    None => Some(self.next_uid_number(ldap).await?),
                };
                if let Some(number) = existing.uid_number.or(allocated) {
                    if let Some(n) = allocated {
                        mods.push(Mod::Replace(
                            "uidNumber".into(),
                            HashSet::from([n.to_string()]),
                        ));
                    }
                    if existing.gid_number.is_none() {
                        mods.push(Mod::Replace(
                            "gidNumber".into(),
                            HashSet::from([number.to_string()]),
                        ));
                    }
                }
                let result = ldap
                    .modify(dn, mods)
                    .await
                    .map_err(|err| self.error("modify", err))?;
                match result.rc {
                    rc::SUCCESS => {}
                    rc::NO_SUCH_OBJECT => return Ok(None),
                    rc::CONSTRAINT_VIOLATION if allocated.is_some() => return Ok(None),
                    _ => return Err(rc_error("modify", result)),
                }
                allocated
            }
            None => {
                let number = self.next_uid_number(ldap).await?;
                let number_text = number.to_string();
                let mut add: Vec<(String, HashSet<String>)> = vec![
                    (
                        "objectClass".into(),
                        OBJECT_CLASSES.iter().map(|c| c.to_string()).collect(),
                    ),
                    ("uid".into(), HashSet::from([entry.username.clone()])),
                    ("uidNumber".into(), HashSet::from([number_text.clone()])),
                    ("gidNumber".into(), HashSet::from([number_text])),
                ];
                add.extend(
                    attrs
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), HashSet::from([value]))),
                );
                let result = ldap
                    .add(dn, add)
                    .await
                    .map_err(|err| self.error("add", err))?;
                match result.rc {
                    rc::SUCCESS => {}
                    // Created meanwhile (a second click): update it instead.
                    rc::ENTRY_ALREADY_EXISTS => return Ok(None),
                    // A uniqueness overlay refused the number: take another.
                    rc::CONSTRAINT_VIOLATION => return Ok(None),
                    _ => return Err(rc_error("add", result)),
                }
                Some(number)
            }
        };
        // Two writers may have picked the same number at the same moment:
        // whoever finds a twin moves on to a new number.
        if let Some(mut number) = allocated {
            for _ in 0..ATTEMPTS {
                if self.uid_number_holders(ldap, number).await? <= 1 {
                    return Ok(Some(()));
                }
                tracing::debug!(uid_number = number, %dn, "uidNumber taken twice; moving");
                jitter().await;
                number = self.next_uid_number(ldap).await?;
                self.move_to(ldap, dn, number).await?;
            }
            return Err(DirectoryError::Unavailable(
                "could not settle on a free uidNumber; try again".into(),
            ));
        }
        Ok(Some(()))
    }
}

#[async_trait]
impl Directory for Ldap {
    fn kind(&self) -> &'static str {
        "ldap"
    }

    fn hash_password(&self, password: &str) -> Result<String, DirectoryError> {
        match self.config.password_scheme {
            PasswordScheme::Ssha => {
                let mut salt = [0u8; SSHA_SALT_LEN];
                getrandom::fill(&mut salt)
                    .map_err(|e| DirectoryError::Internal(format!("no randomness: {e}")))?;
                Ok(ssha(password, &salt))
            }
        }
    }

    async fn verify_hash(&self, password: &str, hash: Option<&str>) -> bool {
        let matches = verify_ssha(password, hash.unwrap_or(DUMMY_SSHA));
        matches && hash.is_some()
    }

    async fn create(&self, entry: &Entry, password_hash: &str) -> Result<(), DirectoryError> {
        if !password_hash.starts_with('{') {
            // For example an argon2 hash kept while directory.kind was builtin.
            return Err(DirectoryError::Internal(format!(
                "the pending password of {} is not an LDAP password hash; the account must register again",
                entry.username
            )));
        }
        let dn = self.user_dn(&entry.username)?;
        self.bounded("create the directory entry", async {
            let mut ldap = self.service().await?;
            let mut outcome = Err(DirectoryError::Unavailable(format!(
                "{dn} kept changing while Bootler wrote it; try again"
            )));
            for _ in 0..ATTEMPTS {
                match self.create_once(&mut ldap, entry, &dn, password_hash).await {
                    Ok(Some(())) => {
                        outcome = Ok(());
                        break;
                    }
                    Ok(None) => jitter().await,
                    Err(err) => {
                        outcome = Err(err);
                        break;
                    }
                }
            }
            let _ = ldap.unbind().await;
            if outcome.is_ok() {
                tracing::info!(%dn, "directory entry written");
            }
            outcome
        })
        .await
    }

    async fn verify(&self, entry: &Entry, password: &str) -> Result<bool, DirectoryError> {
        if password.is_empty() {
            // An empty password is an anonymous bind, which succeeds.
            return Ok(false);
        }
        let dn = self.user_dn(&entry.username)?;
        self.bounded("check the password", async {
            let mut ldap = self.connect().await?;
            let result = ldap.simple_bind(&dn, password).await;
            let _ = ldap.unbind().await;
            let result = result.map_err(|err| self.error("bind", err))?;
            match result.rc {
                rc::SUCCESS => Ok(true),
                rc::INVALID_CREDENTIALS | rc::NO_SUCH_OBJECT => Ok(false),
                _ => Err(rc_error("bind", result)),
            }
        })
        .await
    }

    async fn set_password(&self, entry: &Entry, password: &str) -> Result<(), DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::Rejected("an empty password".into()));
        }
        let dn = self.user_dn(&entry.username)?;
        self.bounded("set the password", async {
            let mut ldap = self.service().await?;
            let result = ldap
                .extended(PasswordModify {
                    user_id: Some(&dn),
                    old_pass: None,
                    new_pass: Some(password),
                })
                .await;
            let _ = ldap.unbind().await;
            let result = result.map_err(|err| self.error("password modify", err))?.1;
            if result.rc == rc::SUCCESS {
                tracing::info!(%dn, "directory password changed");
                Ok(())
            } else {
                Err(rc_error("password modify", result))
            }
        })
        .await
    }

    async fn update(&self, entry: &Entry) -> Result<(), DirectoryError> {
        let dn = self.user_dn(&entry.username)?;
        let mods: Vec<Mod<String>> = self
            .attributes(entry, "")
            .into_iter()
            .filter(|(name, _)| matches!(*name, "cn" | "sn" | "mail"))
            .map(|(name, value)| Mod::Replace(name.to_string(), HashSet::from([value])))
            .collect();
        self.bounded("update the directory entry", async {
            let mut ldap = self.service().await?;
            let result = ldap.modify(&dn, mods).await;
            let _ = ldap.unbind().await;
            let result = result.map_err(|err| self.error("modify", err))?;
            match result.rc {
                rc::SUCCESS => Ok(()),
                rc::NO_SUCH_OBJECT => Err(DirectoryError::Rejected(format!(
                    "the entry {dn} does not exist"
                ))),
                _ => Err(rc_error("modify", result)),
            }
        })
        .await
    }

    async fn set_enabled(&self, entry: &Entry, enabled: bool) -> Result<(), DirectoryError> {
        let config = &self.config;
        if config.disabled_attribute.is_none() && config.disabled_group_dn.is_none() {
            // Nothing marks it in the directory; Bootler's own status (which
            // `bootler vpn-auth` checks as well) is the only switch.
            return Ok(());
        }
        let dn = self.user_dn(&entry.username)?;
        let what = if enabled {
            "enable the account"
        } else {
            "disable the account"
        };
        self.bounded(what, async {
            let mut ldap = self.service().await?;
            let outcome = self.mark_disabled(&mut ldap, &dn, entry, !enabled).await;
            let _ = ldap.unbind().await;
            if outcome.is_ok() {
                tracing::info!(%dn, enabled, "directory entry marked");
            }
            outcome
        })
        .await
    }

    async fn groups_of(&self, username: &str) -> Result<Vec<String>, DirectoryError> {
        let Some(base) = self.config.groups_dn.as_deref() else {
            return Ok(Vec::new());
        };
        let dn = ldap_escape(self.user_dn(username)?).into_owned();
        let filter = format!(
            "(|(memberUid={})(member={dn})(uniqueMember={dn}))",
            ldap_escape(username)
        );
        self.bounded("look up the person's groups", async {
            let mut ldap = self.service().await?;
            let found = self
                .search(&mut ldap, base, Scope::Subtree, &filter, &["cn"])
                .await;
            let _ = ldap.unbind().await;
            let mut names: Vec<String> = found?
                .iter()
                .filter_map(|entry| values(entry, "cn").first().cloned())
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<Group>, DirectoryError> {
        let Some(base) = self.config.groups_dn.as_deref() else {
            return Ok(Vec::new());
        };
        let users_dn = self.users_dn()?.to_ascii_lowercase();
        self.bounded("list the groups", async {
            let mut ldap = self.service().await?;
            let found = self
                .search(
                    &mut ldap,
                    base,
                    Scope::Subtree,
                    "(|(objectClass=posixGroup)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                    &["cn", "memberUid", "member", "uniqueMember"],
                )
                .await;
            let _ = ldap.unbind().await;
            let mut groups: Vec<Group> = found?
                .iter()
                .filter_map(|entry| {
                    let name = values(entry, "cn").first()?.clone();
                    let mut members: Vec<String> = values(entry, "memberUid").to_vec();
                    // A DN member counts when it is one of Bootler's people.
                    for dn in values(entry, "member").iter().chain(values(entry, "uniqueMember")) {
                        if let Some((rdn, parent)) = dn.split_once(',')
                            && parent.trim().to_ascii_lowercase() == users_dn
                            && let Some(uid) = rdn.trim().strip_prefix("uid=")
                        {
                            members.push(uid.to_string());
                        }
                    }
                    members.sort();
                    members.dedup();
                    Some(Group { name, members })
                })
                .collect();
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(groups)
        })
        .await
    }

    async fn set_group(&self, _name: &str, _members: &[i64]) -> Result<(), DirectoryError> {
        Err(DirectoryError::Rejected(
            "groups are kept in LDAP (ldap.groups_dn); change them with the lab's LDAP tools"
                .into(),
        ))
    }
}

impl Ldap {
    /// Sets or clears the configured markers of a disabled account. If the
    /// group cannot be changed, the attribute is put back: both or neither.
    async fn mark_disabled(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        entry: &Entry,
        disabled: bool,
    ) -> Result<(), DirectoryError> {
        let attribute = self.config.disabled_attribute.as_deref();
        if let Some(attribute) = attribute {
            self.mark_attribute(ldap, dn, attribute, disabled).await?;
        }
        if let Some(group) = &self.config.disabled_group_dn
            && let Err(err) = self.mark_group(ldap, dn, group, entry, disabled).await
        {
            if let Some(attribute) = attribute
                && let Err(undo) = self.mark_attribute(ldap, dn, attribute, !disabled).await
            {
                tracing::error!(%dn, error = %undo, "could not put {attribute} back after the group change failed");
            }
            return Err(err);
        }
        Ok(())
    }

    async fn mark_attribute(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        attribute: &str,
        disabled: bool,
    ) -> Result<(), DirectoryError> {
        let values = if disabled {
            HashSet::from([self.config.disabled_value.clone()])
        } else {
            HashSet::new()
        };
        let result = ldap
            .modify(dn, vec![Mod::Replace(attribute.to_string(), values)])
            .await
            .map_err(|err| self.error("modify", err))?;
        match result.rc {
            rc::SUCCESS => Ok(()),
            rc::NO_SUCH_OBJECT => Err(DirectoryError::Rejected(format!(
                "the entry {dn} does not exist"
            ))),
            _ => Err(rc_error(&format!("set {attribute}"), result)),
        }
    }

    async fn mark_group(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        group: &str,
        entry: &Entry,
        disabled: bool,
    ) -> Result<(), DirectoryError> {
        let attribute = self.config.disabled_group_member_attribute.clone();
        let member = if attribute.eq_ignore_ascii_case("memberUid") {
            entry.username.clone()
        } else {
            dn.to_string()
        };
        let change = if disabled {
            Mod::Add(attribute, HashSet::from([member]))
        } else {
            Mod::Delete(attribute, HashSet::from([member]))
        };
        let result = ldap
            .modify(group, vec![change])
            .await
            .map_err(|err| self.error("modify", err))?;
        match result.rc {
            // Already a member, or already not: the state is as wanted.
            rc::SUCCESS | rc::ATTRIBUTE_OR_VALUE_EXISTS | rc::NO_SUCH_ATTRIBUTE => Ok(()),
            rc::NO_SUCH_OBJECT => Err(DirectoryError::Rejected(format!(
                "the group {group} (ldap.disabled_group_dn) does not exist"
            ))),
            _ => Err(rc_error("change the disabled group", result)),
        }
    }
}

/// Maps a result code: a busy or unavailable server is an outage; anything
/// else the server refused.
fn rc_error(what: &str, result: LdapResult) -> DirectoryError {
    match result.rc {
        rc::TIME_LIMIT_EXCEEDED | rc::ADMIN_LIMIT_EXCEEDED | rc::BUSY | rc::UNAVAILABLE => {
            DirectoryError::Unavailable(format!("{what}: {result}"))
        }
        _ => DirectoryError::Rejected(format!("{what}: {result}")),
    }
}

/// The values of an attribute, whatever case the server spells its name in.
fn values<'a>(entry: &'a SearchEntry, name: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, values)| values.as_slice())
        .unwrap_or(&[])
}

fn number(entry: &SearchEntry, name: &str) -> Option<u32> {
    values(entry, name).first()?.trim().parse().ok()
}

/// A short random pause, so two writers that collided do not collide again.
async fn jitter() {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    tokio::time::sleep(Duration::from_millis(5 + u64::from(byte[0]) / 4)).await;
}

fn build_tls_config(config: &LdapConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = roots.add_parsable_certificates(native.certs);
    let mut extra = 0;
    if let Some(path) = &config.tls_ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read ldap.tls_ca_file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ldap.tls_ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ldap.tls_ca_file {}: {e}", path.display()))?;
            extra += 1;
        }
        if extra == 0 {
            return Err(format!(
                "ldap.tls_ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
    }
    tracing::debug!(system, extra, "LDAP TLS trust roots loaded");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// `{SSHA}` + base64(SHA-1(password ‖ salt) ‖ salt).
fn ssha(password: &str, salt: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(password.as_bytes());
    hasher.update(salt);
    let mut raw = hasher.finalize().to_vec();
    raw.extend_from_slice(salt);
    format!(
        "{{SSHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Checks a password against an `{SSHA}` hash in constant time; anything
/// malformed never matches.
fn verify_ssha(password: &str, hash: &str) -> bool {
    let Some(prefix) = hash.get(..6) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case("{SSHA}") {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(hash[6..].trim()) else {
        return false;
    };
    if raw.len() <= SHA1_LEN {
        return false;
    }
    let (digest, salt) = raw.split_at(SHA1_LEN);
    let mut hasher = Sha1::new();
    hasher.update(password.as_bytes());
    hasher.update(salt);
    let computed: [u8; SHA1_LEN] = hasher.finalize().into();
    bool::from(computed.ct_eq(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ldap() -> Ldap {
        Ldap::new(LdapConfig {
            url: Some("ldap://127.0.0.1:1".into()),
            bind_dn: Some("cn=admin,dc=lab,dc=test".into()),
            bind_password: Some("secret".into()),
            users_dn: Some("ou=people,dc=lab,dc=test".into()),
            timeout_seconds: 2,
            ..LdapConfig::default()
        })
    }

    #[test]
    fn ssha_matches_openldap() {
        // base64(SHA-1("secret" ‖ "salt") ‖ "salt"), as OpenLDAP computes it
        // (checked against slapd in the integration tests).
        let hash = ssha("secret", b"salt");
        assert_eq!(hash, "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0");
        assert!(verify_ssha("secret", &hash));
        assert!(verify_ssha("secret", &hash.replace("{SSHA}", "{ssha}")));
        assert!(!verify_ssha("Secret", &hash));
        assert!(!verify_ssha("secret", "{SSHA}"));
        assert!(!verify_ssha("secret", "{SSHA}not base64!"));
        assert!(!verify_ssha("secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="));
        assert!(!verify_ssha("secret", "$argon2id$v=19$m=1"));
        assert!(!verify_ssha("secret", ""));
    }

    #[tokio::test]
    async fn hashes_are_salted_and_verified() {
        let dir = ldap();
        let a = dir.hash_password("correct horse battery").unwrap();
        let b = dir.hash_password("correct horse battery").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("{SSHA}"));
        assert!(dir.verify_hash("correct horse battery", Some(&a)).await);
        assert!(!dir.verify_hash("correct horse batter", Some(&a)).await);
        assert!(!dir.verify_hash("not the password", None).await);
        // The dummy is well-formed, so `None` costs a real check.
        assert!(verify_ssha("not the password", DUMMY_SSHA));
    }

    #[test]
    fn dns_are_escaped() {
        let dir = ldap();
        assert_eq!(
            dir.user_dn("ana").unwrap(),
            "uid=ana,ou=people,dc=lab,dc=test"
        );
        assert_eq!(
            dir.user_dn("a,b=c+d").unwrap(),
            "uid=a\\2cb\\3dc\\2bd,ou=people,dc=lab,dc=test"
        );
        assert!(dir.user_dn("").is_err());
    }

    #[test]
    fn attributes_from_the_entry() {
        let dir = ldap();
        let entry = Entry {
            user_id: 1,
            username: "ana".into(),
            display_name: " Ana Maria  Silva ".into(),
            email: "ana@uminho.pt".into(),
        };
        let attrs: HashMap<_, _> = dir.attributes(&entry, "{SSHA}x").into_iter().collect();
        assert_eq!(attrs["cn"], "Ana Maria  Silva");
        assert_eq!(attrs["sn"], "Silva");
        assert_eq!(attrs["homeDirectory"], "/home/ana");
        assert_eq!(attrs["loginShell"], "/bin/bash");
        assert_eq!(attrs["mail"], "ana@uminho.pt");
        assert_eq!(attrs["userPassword"], "{SSHA}x");
        let nameless = Entry {
            display_name: "  ".into(),
            ..entry
        };
        let attrs: HashMap<_, _> = dir.attributes(&nameless, "{SSHA}x").into_iter().collect();
        assert_eq!(attrs["cn"], "ana");
        assert_eq!(attrs["sn"], "ana");
    }

    #[tokio::test]
    async fn closed_port_is_unavailable() {
        let dir = ldap();
        let entry = Entry {
            user_id: 1,
            username: "ana".into(),
            display_name: "Ana".into(),
            email: "ana@uminho.pt".into(),
        };
        let err = dir.verify(&entry, "pw").await.unwrap_err();
        assert!(matches!(err, DirectoryError::Unavailable(_)), "{err:?}");
        let err = dir.create(&entry, "{SSHA}x").await.unwrap_err();
        assert!(matches!(err, DirectoryError::Unavailable(_)), "{err:?}");
        // Never binds with an empty password (that would be anonymous).
        assert!(!dir.verify(&entry, "").await.unwrap());
        // A hash from another directory kind is not written.
        let err = dir.create(&entry, "$argon2id$v=19$x").await.unwrap_err();
        assert!(matches!(err, DirectoryError::Internal(_)), "{err:?}");
    }
}
