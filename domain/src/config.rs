//! Typed configuration, loaded once at start.
//!
//! Sources, later ones winning: built-in defaults, a TOML file, then
//! environment variables `BOOTLER_*`. A nested key maps to the environment
//! with a double underscore (`ldap.url` is `BOOTLER_LDAP__URL`). Unknown keys
//! are an error that names the key and where it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_with::{DisplayFromStr, PickFirst, serde_as};

/// The environment variable prefix for configuration keys.
pub const ENV_PREFIX: &str = "BOOTLER_";

/// Environment variables with the prefix that are not configuration keys
/// (they are read by the command line itself).
const ENV_NOT_KEYS: &[&str] = &["BOOTLER_CONFIG"];

#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub listen: SocketAddr,
    /// The URL users and nodes reach Bootler at, without a trailing slash.
    /// Defaults to `http://<listen>`.
    pub base_url: Option<String>,
    /// Folder for the SQLite database, the mail outbox and other local state.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. Defaults to `sqlite://<data_dir>/bootler.db`.
    pub database_url: Option<String>,
    /// Largest number of pooled database connections.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub database_max_connections: u32,
    /// Folder with the built site (`pkg/` with the WASM, JS and CSS, and the
    /// public assets), as cargo-leptos writes it.
    pub site_dir: PathBuf,
    /// Log line format: `text` or `json`. Levels come from `RUST_LOG`.
    pub log_format: LogFormat,
    /// Who may register, and the rules accounts follow.
    pub accounts: AccountsConfig,
    /// Where credentials live.
    pub directory: DirectoryConfig,
    /// The LDAP server, for `directory.kind = "ldap"`.
    pub ldap: LdapConfig,
    /// How mail leaves Bootler.
    pub mail: MailConfig,
    /// The background job queue and its workers.
    pub jobs: JobsConfig,
    /// The boot endpoints nodes call.
    pub boot: BootConfig,
    /// Leases of bare-metal nodes.
    pub leases: LeasesConfig,
    /// Power control of bare-metal nodes (IPMI, Wake-on-LAN).
    pub power: PowerConfig,
    /// Virtual machines: backend, flavors, images, limits.
    pub vm: crate::vms::config::VmConfig,
    /// The lab's OpenVPN server: sign-ins with Bootler's credentials,
    /// sessions, client profiles. Off by default.
    pub vpn: crate::vpn::VpnConfig,
    /// The boot image store served at `/images/`.
    pub images: ImagesConfig,
}

/// `[images]`: the boot image store.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// The folder of images (one sub-folder each). Defaults to
    /// `<data_dir>/images`.
    pub dir: Option<PathBuf>,
}

/// Power control: timeouts, the pace of power-ons, and the key that seals
/// BMC passwords.
#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PowerConfig {
    /// The key sealing BMC passwords at rest (32 bytes, base64, one line).
    /// Created when the first password is sealed, if missing; every
    /// replica needs the same file. Defaults to `<data_dir>/power.key`.
    pub secret_key_file: Option<PathBuf>,
    /// Power-ons per pool within `starts_window_seconds` (more wait their
    /// turn), so a rack does not hit DHCP, TFTP and Bootler at once.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub starts_per_window: u32,
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub starts_window_seconds: u64,
    /// How long one IPMI message waits for its answer, in milliseconds,
    /// and how often it is sent again.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub ipmi_timeout_ms: u64,
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub ipmi_retries: u32,
    /// How long an action waits for the state it asked for before it says
    /// "sent" rather than "confirmed", in seconds.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub confirm_seconds: u64,
    /// How often the power state of hosts with a readable driver is
    /// polled, in seconds; 0: never.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub poll_seconds: u64,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            secret_key_file: None,
            starts_per_window: 5,
            starts_window_seconds: 10,
            ipmi_timeout_ms: 1000,
            ipmi_retries: 2,
            confirm_seconds: 20,
            poll_seconds: 300,
        }
    }
}

/// Leases: quotas and reminders.
#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LeasesConfig {
    /// Nodes one person may hold at once (an account may say otherwise);
    /// 0: no limit.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_hosts_per_user: u32,
    /// Hours before a lease ends at which its holder is reminded (by mail
    /// and in the browser).
    pub reminder_hours: Vec<u32>,
    /// How often expiries and reminders are looked for, in seconds.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub sweep_seconds: u64,
}

impl Default for LeasesConfig {
    fn default() -> Self {
        LeasesConfig {
            max_hosts_per_user: 0,
            reminder_hours: vec![72, 24],
            sweep_seconds: 60,
        }
    }
}

/// The boot endpoints (`/boot.ipxe`, `/boot/{mac}`…): who may call them and
/// how many unknown nodes may register themselves.
#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BootConfig {
    /// The URL nodes reach Bootler at, when it differs from `base_url`
    /// (the one people's browsers and mails use): for nodes on a
    /// provisioning network. Defaults to `base_url`.
    pub base_url: Option<String>,
    /// Networks (CIDR, e.g. `10.10.0.0/16`) whose nodes may call the boot
    /// endpoints; empty: any address.
    pub allowed_networks: Vec<String>,
    /// New MACs registered per minute at most (a flood of spoofed MACs
    /// must not fill the database); beyond it, unknown nodes boot locally
    /// without being registered.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub discovery_per_minute: u32,
    /// At most this many hosts wait in state `discovered`.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_discovered: u32,
    /// An install that has not called `/boot/{mac}/done` this many minutes
    /// after its system script was served is marked failed.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub install_timeout_minutes: u32,
    /// Templates render in worker processes (`bootler render-worker`): at
    /// most this many at once.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub render_workers: usize,
    /// Memory (address space) of one render worker, in MiB: a template
    /// that needs more fails with a clear error.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub render_memory_mb: u64,
    /// Longest time one render may take, in milliseconds.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub render_timeout_ms: u64,
    /// The program render workers run (`bootler` itself unless set; tests
    /// that embed the server point it at the binary).
    #[serde(skip)]
    pub render_program: Option<PathBuf>,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            base_url: None,
            allowed_networks: Vec::new(),
            discovery_per_minute: 60,
            max_discovered: 1000,
            install_timeout_minutes: 120,
            render_workers: 2,
            render_memory_mb: 512,
            render_timeout_ms: 3000,
            render_program: None,
        }
    }
}

/// The job queue: how many workers this process runs, and how jobs are
/// retried.
#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Workers in this process; 0 runs none (an API-only replica).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub workers: usize,
    /// How long a running job's lease lasts without a heartbeat; a job
    /// whose worker died runs again after this.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub lease_seconds: u64,
    /// How often idle workers look for due jobs (besides being woken).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub poll_ms: u64,
    /// Attempts before a job that keeps failing transiently is failed, for
    /// kinds that do not set their own.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled for each further one.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub backoff_base_ms: u64,
    /// The longest wait between attempts.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub backoff_max_ms: u64,
    /// On shutdown, how long running jobs may take to finish before they
    /// are put back in the queue for the next start.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub shutdown_grace_seconds: u64,
    /// How long events stay for browsers that reconnect.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub event_retention_hours: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 4,
            lease_seconds: 30,
            poll_ms: 1000,
            max_attempts: 5,
            backoff_base_ms: 2000,
            backoff_max_ms: 600_000,
            shutdown_grace_seconds: 20,
            event_retention_hours: 24,
        }
    }
}

#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// E-mail domains that may register, exactly (a subdomain only if listed).
    /// Empty: registration is closed.
    pub allowed_domains: Vec<String>,
    /// Shortest password accepted.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub password_min_length: usize,
    /// How long a confirmation link stays valid, in hours.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub confirmation_ttl_hours: u64,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            allowed_domains: Vec::new(),
            password_min_length: 12,
            confirmation_ttl_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    pub kind: DirectoryKind,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// argon2id hashes in Bootler's database.
    #[default]
    Builtin,
    /// Entries in an LDAP server (OpenLDAP), under `ldap.users_dn`.
    Ldap,
}

/// How Bootler reaches the LDAP server and where it keeps people there.
/// Read only when `directory.kind = "ldap"`.
#[serde_as]
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: Option<String>,
    /// Upgrades an `ldap://` connection with StartTLS before anything else.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub starttls: bool,
    /// A PEM file of CA certificates to trust for `ldaps://` and StartTLS,
    /// besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// Bootler's service account, which creates entries and sets passwords.
    pub bind_dn: Option<String>,
    /// The service account's password; or see `bind_password_file`.
    pub bind_password: Option<String>,
    /// A file holding the service account's password (a trailing newline is
    /// ignored). Read at each connection, so it can be rotated in place.
    pub bind_password_file: Option<PathBuf>,
    /// Where people's entries live: `uid=<username>,<users_dn>`.
    pub users_dn: Option<String>,
    /// The lowest uidNumber (and gidNumber) Bootler hands out.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub uid_start: u32,
    /// `homeDirectory` is `<home_base>/<username>`.
    pub home_base: String,
    /// `loginShell` of new entries.
    pub login_shell: String,
    /// How long one directory call may take before it counts as unavailable.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub timeout_seconds: u64,
    /// How `userPassword` is hashed.
    pub password_scheme: PasswordScheme,
    /// Marks disabled accounts with this attribute (set to
    /// `disabled_value`; removed again on enabling). With OpenLDAP's
    /// ppolicy overlay, `pwdAccountLockedTime` = `000001010000Z` makes
    /// the server itself refuse their binds.
    pub disabled_attribute: Option<String>,
    /// The value of `disabled_attribute` on disabled accounts.
    pub disabled_value: String,
    /// Adds disabled accounts to this group (which must exist), for
    /// services that filter on group membership.
    pub disabled_group_dn: Option<String>,
    /// The group's member attribute: `memberUid` (a posixGroup, holds the
    /// username) or `member`/`uniqueMember` (holds the entry's DN).
    pub disabled_group_member_attribute: String,
    /// Where the lab's groups live (posixGroup with `memberUid`, or
    /// groupOfNames/groupOfUniqueNames with `member`/`uniqueMember`); a
    /// pool's access can name one as `@cn`. Read only: groups are kept
    /// with the lab's LDAP tools. None: no groups.
    pub groups_dn: Option<String>,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: None,
            starttls: false,
            tls_ca_file: None,
            bind_dn: None,
            bind_password: None,
            bind_password_file: None,
            users_dn: None,
            uid_start: 10000,
            home_base: "/home".into(),
            login_shell: "/bin/bash".into(),
            timeout_seconds: 5,
            password_scheme: PasswordScheme::Ssha,
            disabled_attribute: None,
            disabled_value: "000001010000Z".into(),
            disabled_group_dn: None,
            disabled_group_member_attribute: "memberUid".into(),
            groups_dn: None,
        }
    }
}

/// Never prints the bind password.
impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "<redacted>"),
            )
            .field("bind_password_file", &self.bind_password_file)
            .field("users_dn", &self.users_dn)
            .field("uid_start", &self.uid_start)
            .field("home_base", &self.home_base)
            .field("login_shell", &self.login_shell)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("password_scheme", &self.password_scheme)
            .field("disabled_attribute", &self.disabled_attribute)
            .field("disabled_value", &self.disabled_value)
            .field("disabled_group_dn", &self.disabled_group_dn)
            .field(
                "disabled_group_member_attribute",
                &self.disabled_group_member_attribute,
            )
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PasswordScheme {
    /// `{SSHA}`: salted SHA-1, which every OpenLDAP understands.
    #[default]
    Ssha,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub kind: MailKind,
    /// The sender of every mail, `Name <address>` or a bare address.
    pub from: String,
    /// Folder for `kind = "outbox"`. Default: `<data_dir>/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// The SMTP server, for `kind = "smtp"`.
    pub smtp: SmtpConfig,
}

#[serde_as]
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 (STARTTLS); 465 for `tls = "tls"`.
    #[serde_as(as = "Option<PickFirst<(_, DisplayFromStr)>>")]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (a relay on localhost).
    pub tls: SmtpTlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Read the password from this file instead (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Give up on an SMTP server that does not answer after this long.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            tls: SmtpTlsMode::StartTls,
            username: None,
            password: None,
            password_file: None,
            timeout_seconds: 10,
        }
    }
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

impl SmtpConfig {
    /// The password from `password` or `password_file`.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        match &self.password_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|p| Some(p.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| {
                    invalid(
                        "mail.smtp.password_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                }),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    #[default]
    StartTls,
    Tls,
    None,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            kind: MailKind::Outbox,
            from: "Bootler <bootler@localhost>".into(),
            outbox_dir: None,
            smtp: SmtpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// Every mail becomes an `.eml` file in the outbox folder.
    #[default]
    Outbox,
    /// Mail goes to the SMTP server of `[mail.smtp]`.
    Smtp,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            base_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 10,
            site_dir: PathBuf::from("target/site"),
            log_format: LogFormat::Text,
            accounts: AccountsConfig::default(),
            directory: DirectoryConfig::default(),
            ldap: LdapConfig::default(),
            mail: MailConfig::default(),
            jobs: JobsConfig::default(),
            boot: BootConfig::default(),
            leases: LeasesConfig::default(),
            power: PowerConfig::default(),
            vm: crate::vms::config::VmConfig::default(),
            vpn: crate::vpn::VpnConfig::default(),
            images: ImagesConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var} is not valid: {message}")]
    Env { var: String, message: String },
    #[error("configuration key `{key}`{origin}: {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given (an explicit
    /// file must exist), then `BOOTLER_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let env_keys = overlay_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner().to_string();
                // The path already ends in the unknown field's name, except
                // at the top level, where serde reports it only in the text.
                let key = if path == "." || path.is_empty() {
                    unknown_key(&inner).unwrap_or_default().to_string()
                } else {
                    path
                };
                let origin = env_keys
                    .get(&key)
                    .map(|var| format!(" (from {var})"))
                    .unwrap_or_default();
                ConfigError::Invalid {
                    key,
                    origin,
                    message: inner,
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.vm
            .check()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.vpn
            .check()
            .map_err(|(key, message)| invalid(&key, message))?;
        for network in &self.boot.allowed_networks {
            crate::hosts::Network::parse(network)
                .map_err(|reason| invalid("boot.allowed_networks", reason))?;
        }
        if self.power.starts_per_window == 0 || self.power.starts_window_seconds == 0 {
            return Err(invalid(
                "power.starts_per_window",
                "and power.starts_window_seconds must be at least 1".to_string(),
            ));
        }
        if self.power.ipmi_timeout_ms == 0 {
            return Err(invalid(
                "power.ipmi_timeout_ms",
                "must be at least 1".to_string(),
            ));
        }
        if self.leases.sweep_seconds == 0 {
            return Err(invalid(
                "leases.sweep_seconds",
                "must be at least 1".to_string(),
            ));
        }
        if let Some(hours) = self
            .leases
            .reminder_hours
            .iter()
            .find(|h| **h == 0 || **h > 24 * 365)
        {
            return Err(invalid(
                "leases.reminder_hours",
                format!("{hours} is not between 1 and 8760 hours"),
            ));
        }
        let boot = &self.boot;
        for (key, value, low, high) in [
            ("boot.render_workers", boot.render_workers as u64, 1, 64),
            ("boot.render_memory_mb", boot.render_memory_mb, 128, 65536),
            (
                "boot.render_timeout_ms",
                boot.render_timeout_ms,
                100,
                600_000,
            ),
        ] {
            if !(low..=high).contains(&value) {
                return Err(invalid(key, format!("must be between {low} and {high}")));
            }
        }
        let jobs = &self.jobs;
        for (key, value) in [
            ("jobs.lease_seconds", jobs.lease_seconds),
            ("jobs.poll_ms", jobs.poll_ms),
            ("jobs.max_attempts", u64::from(jobs.max_attempts)),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".to_string()));
            }
        }
        if jobs.backoff_max_ms < jobs.backoff_base_ms {
            return Err(invalid(
                "jobs.backoff_max_ms",
                "must not be smaller than jobs.backoff_base_ms".to_string(),
            ));
        }
        if self.mail.kind == MailKind::Smtp {
            if self.mail.smtp.host.trim().is_empty() {
                return Err(invalid(
                    "mail.smtp.host",
                    "is required with mail.kind = \"smtp\"".to_string(),
                ));
            }
            self.mail.smtp.password()?;
        }
        for (key, value) in [
            ("base_url", &self.base_url),
            ("boot.base_url", &self.boot.base_url),
        ] {
            if let Some(url) = value
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    key,
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://".to_string(),
            ));
        }
        for domain in &self.accounts.allowed_domains {
            if crate::accounts::validate::email(&format!("x@{domain}")).is_err() {
                return Err(invalid(
                    "accounts.allowed_domains",
                    format!("`{domain}` is not a domain name"),
                ));
            }
        }
        if self.accounts.password_min_length < 8 {
            return Err(invalid(
                "accounts.password_min_length",
                "must be at least 8".to_string(),
            ));
        }
        if self.accounts.confirmation_ttl_hours == 0 {
            return Err(invalid(
                "accounts.confirmation_ttl_hours",
                "must be at least 1".to_string(),
            ));
        }
        if self.database_max_connections == 0 {
            return Err(invalid(
                "database_max_connections",
                "must be at least 1".to_string(),
            ));
        }
        if self.directory.kind == DirectoryKind::Ldap {
            self.ldap.validate()?;
        }
        Ok(())
    }

    /// The public URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The outbox folder for mail.
    /// The URL nodes reach Bootler at (boot scripts, answer files), without
    /// a trailing slash: `boot.base_url`, else [`Config::base_url`].
    pub fn boot_base_url(&self) -> String {
        match &self.boot.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.base_url(),
        }
    }

    /// The key file sealing secrets at rest.
    pub fn power_key_file(&self) -> PathBuf {
        self.power
            .secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("power.key"))
    }

    /// The boot image store's folder.
    pub fn images_dir(&self) -> PathBuf {
        self.images
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.mail
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("bootler.db").display()),
        }
    }
}

impl LdapConfig {
    /// What `directory.kind = "ldap"` needs: a server, a service account
    /// with a password, and where people go.
    fn validate(&self) -> Result<(), ConfigError> {
        let required = |key: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(invalid(
                key,
                "is required when directory.kind = \"ldap\"".to_string(),
            )),
        };
        required("ldap.url", &self.url)?;
        required("ldap.bind_dn", &self.bind_dn)?;
        required("ldap.users_dn", &self.users_dn)?;
        let attribute_name = |key: &str, name: &str| {
            let mut chars = name.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
            if ok {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!(
                        "`{name}` is not an LDAP attribute name (letters, digits and `-`, starting with a letter)"
                    ),
                ))
            }
        };
        if let Some(name) = &self.disabled_attribute {
            attribute_name("ldap.disabled_attribute", name)?;
            if self.disabled_value.is_empty() {
                return Err(invalid(
                    "ldap.disabled_value",
                    "must not be empty when ldap.disabled_attribute is set".to_string(),
                ));
            }
        }
        attribute_name(
            "ldap.disabled_group_member_attribute",
            &self.disabled_group_member_attribute,
        )?;
        let url = self.url.as_deref().unwrap_or_default();
        let ldaps = url.starts_with("ldaps://");
        if !(ldaps || url.starts_with("ldap://")) {
            return Err(invalid(
                "ldap.url",
                format!("`{url}` must start with ldap:// or ldaps://"),
            ));
        }
        if ldaps && self.starttls {
            return Err(invalid(
                "ldap.starttls",
                "applies to ldap:// URLs only (ldaps:// is TLS from the start)".to_string(),
            ));
        }
        match (&self.bind_password, &self.bind_password_file) {
            (None, None) => {
                return Err(invalid(
                    "ldap.bind_password",
                    "is required when directory.kind = \"ldap\" (or set ldap.bind_password_file)"
                        .to_string(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "ldap.bind_password_file",
                    "set either ldap.bind_password or ldap.bind_password_file, not both"
                        .to_string(),
                ));
            }
            (None, Some(path)) => {
                if let Err(err) = std::fs::File::open(path) {
                    return Err(invalid(
                        "ldap.bind_password_file",
                        format!("cannot read {}: {err}", path.display()),
                    ));
                }
            }
            (Some(password), None) if password.is_empty() => {
                return Err(invalid(
                    "ldap.bind_password",
                    "is empty (an empty password binds anonymously)".to_string(),
                ));
            }
            (Some(_), None) => {}
        }
        if let Some(path) = &self.tls_ca_file
            && let Err(err) = std::fs::File::open(path)
        {
            return Err(invalid(
                "ldap.tls_ca_file",
                format!("cannot read {}: {err}", path.display()),
            ));
        }
        if self.timeout_seconds == 0 {
            return Err(invalid(
                "ldap.timeout_seconds",
                "must be at least 1".to_string(),
            ));
        }
        if self.uid_start == 0 {
            return Err(invalid(
                "ldap.uid_start",
                "must be at least 1 (0 is root)".to_string(),
            ));
        }
        if !self.home_base.starts_with('/') {
            return Err(invalid(
                "ldap.home_base",
                format!("`{}` must be an absolute path", self.home_base),
            ));
        }
        if !self.login_shell.starts_with('/') {
            return Err(invalid(
                "ldap.login_shell",
                format!("`{}` must be an absolute path", self.login_shell),
            ));
        }
        Ok(())
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        origin: String::new(),
        message,
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|err| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: err.to_string(),
        })
}

/// Writes `BOOTLER_*` variables into `table`; returns which dotted key came
/// from which variable, so errors can say so.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut origins = BTreeMap::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.is_empty() || ENV_NOT_KEYS.contains(&var.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment (use one `__` between nested keys)".into(),
            });
        }
        let value = env_value(&raw).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
        })?;
        let mut node = &mut *table;
        for segment in &path[..path.len() - 1] {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(inner) => inner,
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        message: format!("`{segment}` is not a section"),
                    });
                }
            };
        }
        if let Some(last) = path.last() {
            node.insert(last.clone(), value);
        }
        origins.insert(path.join("."), var);
    }
    Ok(origins)
}

/// Arrays and tables come as TOML (`["a", "b"]`, `{ x = 1 }`); everything
/// else is a string, and numeric or boolean keys accept strings.
fn env_value(raw: &str) -> Result<toml::Value, String> {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let doc = format!("v = {raw}");
        let mut parsed: toml::Table = doc.parse().map_err(|e: toml::de::Error| e.to_string())?;
        parsed
            .remove("v")
            .ok_or_else(|| "not a TOML value".to_string())
    } else {
        Ok(toml::Value::String(raw.to_string()))
    }
}

/// Pulls the field name out of serde's "unknown field `x`, expected …".
fn unknown_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_any_source() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.database_url(), "sqlite://data/bootler.db");
        assert_eq!(config.base_url(), "http://127.0.0.1:3000");
    }

    #[test]
    fn file_then_environment() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "listen = \"0.0.0.0:8080\"\nbase_url = \"https://boot.lab/\"\ndata_dir = \"/var/lib/bootler\""
        )
        .unwrap();
        let config = Config::load(
            Some(file.path()),
            env(&[
                ("BOOTLER_LISTEN", "127.0.0.1:9000"),
                ("BOOTLER_DATABASE_MAX_CONNECTIONS", "3"),
                ("BOOTLER_CONFIG", "ignored.toml"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.base_url(), "https://boot.lab");
        assert_eq!(config.database_max_connections, 3);
        assert_eq!(
            config.database_url(),
            "sqlite:///var/lib/bootler/bootler.db"
        );
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "listen = \"127.0.0.1:1\"\nlisten_port = 3").unwrap();
        let err = Config::load(Some(file.path()), env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`listen_port`"), "{text}");
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn unknown_key_in_environment_names_the_variable() {
        let err = Config::load(None, env(&[("BOOTLER_DATABSE_URL", "sqlite::memory:")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`databse_url`"), "{err}");
        assert!(err.contains("BOOTLER_DATABSE_URL"), "{err}");
    }

    #[test]
    fn nested_environment_key_for_unknown_section_is_an_error() {
        let err = Config::load(None, env(&[("BOOTLER_NOSUCH__URL", "ldap://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nosuch`"), "{err}");
    }

    /// A complete LDAP setup in environment variables, minus `skip`.
    fn ldap_env(skip: &str, password_file: &Path) -> Vec<(String, String)> {
        let file = password_file.display().to_string();
        let pairs = [
            ("BOOTLER_DIRECTORY__KIND", "ldap"),
            ("BOOTLER_LDAP__URL", "ldap://127.0.0.1:389"),
            ("BOOTLER_LDAP__BIND_DN", "cn=bootler,dc=lab,dc=test"),
            ("BOOTLER_LDAP__BIND_PASSWORD_FILE", file.as_str()),
            ("BOOTLER_LDAP__USERS_DN", "ou=people,dc=lab,dc=test"),
        ];
        env(&pairs
            .into_iter()
            .filter(|(var, _)| *var != skip)
            .collect::<Vec<_>>())
    }

    #[test]
    fn ldap_from_environment() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "s3cret").unwrap();
        let mut vars = ldap_env("", secret.path());
        vars.extend(env(&[
            ("BOOTLER_LDAP__STARTTLS", "true"),
            ("BOOTLER_LDAP__TIMEOUT_SECONDS", "3"),
            ("BOOTLER_LDAP__UID_START", "20000"),
            ("BOOTLER_LDAP__PASSWORD_SCHEME", "ssha"),
        ]));
        let config = Config::load(None, vars).unwrap();
        assert_eq!(config.directory.kind, DirectoryKind::Ldap);
        assert_eq!(config.ldap.url.as_deref(), Some("ldap://127.0.0.1:389"));
        assert_eq!(
            config.ldap.bind_dn.as_deref(),
            Some("cn=bootler,dc=lab,dc=test")
        );
        assert_eq!(
            config.ldap.bind_password_file.as_deref(),
            Some(secret.path())
        );
        assert_eq!(
            config.ldap.users_dn.as_deref(),
            Some("ou=people,dc=lab,dc=test")
        );
        assert!(config.ldap.starttls);
        assert_eq!(config.ldap.timeout_seconds, 3);
        assert_eq!(config.ldap.uid_start, 20000);
        assert_eq!(config.ldap.password_scheme, PasswordScheme::Ssha);
        assert_eq!(config.ldap.home_base, "/home");
        assert_eq!(config.ldap.login_shell, "/bin/bash");
    }

    #[test]
    fn ldap_from_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[directory]\nkind = \"ldap\"\n[ldap]\nurl = \"ldaps://ldap.lab\"\n\
             bind_dn = \"cn=bootler,dc=lab\"\nbind_password = \"pw\"\n\
             users_dn = \"ou=people,dc=lab\"\nuid_start = 5000\ntimeout_seconds = 10"
        )
        .unwrap();
        let config = Config::load(Some(file.path()), env(&[])).unwrap();
        assert_eq!(config.directory.kind, DirectoryKind::Ldap);
        assert_eq!(config.ldap.url.as_deref(), Some("ldaps://ldap.lab"));
        assert_eq!(config.ldap.bind_password.as_deref(), Some("pw"));
        assert_eq!(config.ldap.uid_start, 5000);
        assert_eq!(config.ldap.timeout_seconds, 10);
        assert!(!config.ldap.starttls);
    }

    #[test]
    fn vm_flavors_and_images_from_file_and_bad_ones_explained() {
        let load = |text: &str| {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            write!(file, "{text}").unwrap();
            Config::load(Some(file.path()), env(&[]))
        };
        let config = load(
            "[vm]\nbackend = \"openstack\"\nvcpu_budget = 64\n\
             [[vm.flavors]]\nname = \"tiny\"\nvcpus = 1\nmemory_mib = 512\ndisk_gib = 5\nreference = \"m1.tiny\"\n\
             [[vm.images]]\nname = \"Debian 12\"\nreference = \"debian-12-genericcloud\"\nlogin = \"debian\"\n\
             [vm.openstack]\nauth_url = \"https://keystone.lab:5000/v3\"\nnetwork = \"lab-net\"\n",
        )
        .unwrap();
        assert_eq!(
            config.vm.backend,
            crate::vms::config::BackendKind::Openstack
        );
        assert_eq!(config.vm.flavors.len(), 1);
        assert_eq!(config.vm.flavors[0].reference(), "m1.tiny");
        assert_eq!(config.vm.images[0].login.as_deref(), Some("debian"));
        assert_eq!(config.vm.openstack.network.as_deref(), Some("lab-net"));
        // The defaults: libvirt, three flavors, no images.
        let defaults = Config::load(None, env(&[])).unwrap();
        assert_eq!(
            defaults.vm.backend,
            crate::vms::config::BackendKind::Libvirt
        );
        assert_eq!(defaults.vm.libvirt.uri, "qemu:///system");
        assert_eq!(defaults.vm.flavors.len(), 3);
        for (text, words) in [
            (
                "[[vm.flavors]]\nname = \"a\"\nvcpus = 0\nmemory_mib = 512\ndisk_gib = 5\n",
                "at least 1 vCPU",
            ),
            (
                "[[vm.flavors]]\nname = \"Big One\"\nvcpus = 1\nmemory_mib = 512\ndisk_gib = 5\n",
                "not a flavor name",
            ),
            (
                "[[vm.images]]\nname = \"x\"\nreference = \"\"\n",
                "needs a `name` and a `reference`",
            ),
            ("[vm]\nbackend = \"vmware\"\n", "vmware"),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(words), "{text}: {err}");
        }
    }

    #[test]
    fn ldap_missing_keys_are_named() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        let cases = [
            ("BOOTLER_LDAP__URL", "ldap.url"),
            ("BOOTLER_LDAP__BIND_DN", "ldap.bind_dn"),
            ("BOOTLER_LDAP__USERS_DN", "ldap.users_dn"),
            ("BOOTLER_LDAP__BIND_PASSWORD_FILE", "ldap.bind_password"),
        ];
        for (skip, key) in cases {
            let err = Config::load(None, ldap_env(skip, secret.path()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "without {skip}: {err}");
            assert!(err.contains("required"), "without {skip}: {err}");
        }
        // Complete, it loads.
        Config::load(None, ldap_env("", secret.path())).unwrap();
        // The section is not checked while the directory is built in.
        let config = Config::load(None, env(&[("BOOTLER_LDAP__URL", "ldap://x")])).unwrap();
        assert_eq!(config.directory.kind, DirectoryKind::Builtin);
    }

    #[test]
    fn ldap_bad_values_are_explained() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("BOOTLER_LDAP__URL", "http://ldap.lab")], "ldap.url"),
            (
                &[
                    ("BOOTLER_LDAP__URL", "ldaps://ldap.lab"),
                    ("BOOTLER_LDAP__STARTTLS", "true"),
                ],
                "ldap.starttls",
            ),
            (&[("BOOTLER_LDAP__STARTTLS", "maybe")], "ldap.starttls"),
            (
                &[("BOOTLER_LDAP__BIND_PASSWORD", "pw")],
                "ldap.bind_password_file",
            ),
            (
                &[("BOOTLER_LDAP__BIND_PASSWORD_FILE", "/nonexistent/secret")],
                "ldap.bind_password_file",
            ),
            (
                &[("BOOTLER_LDAP__TLS_CA_FILE", "/nonexistent/ca.pem")],
                "ldap.tls_ca_file",
            ),
            (
                &[("BOOTLER_LDAP__TIMEOUT_SECONDS", "0")],
                "ldap.timeout_seconds",
            ),
            (&[("BOOTLER_LDAP__UID_START", "-1")], "ldap.uid_start"),
            (&[("BOOTLER_LDAP__UID_START", "0")], "ldap.uid_start"),
            (&[("BOOTLER_LDAP__HOME_BASE", "home")], "ldap.home_base"),
            (
                &[("BOOTLER_LDAP__PASSWORD_SCHEME", "md5")],
                "ldap.password_scheme",
            ),
            (&[("BOOTLER_LDAP__BIND_PW", "pw")], "ldap.bind_pw"),
        ];
        for (extra, key) in cases {
            let mut vars = ldap_env("", secret.path());
            vars.extend(env(extra));
            let err = Config::load(None, vars).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{extra:?}: {err}");
        }
        let mut vars = ldap_env("BOOTLER_LDAP__BIND_PASSWORD_FILE", secret.path());
        vars.extend(env(&[("BOOTLER_LDAP__BIND_PASSWORD", "")]));
        let err = Config::load(None, vars).unwrap_err().to_string();
        assert!(err.contains("`ldap.bind_password`"), "{err}");
    }

    #[test]
    fn ldap_password_never_printed() {
        let config = LdapConfig {
            bind_password: Some("hunter2-secret".into()),
            ..LdapConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            ("BOOTLER_LISTEN", "localhost", "listen"),
            ("BOOTLER_BASE_URL", "boot.lab", "base_url"),
            ("BOOTLER_DATABASE_URL", "mysql://x", "database_url"),
            (
                "BOOTLER_DATABASE_MAX_CONNECTIONS",
                "0",
                "database_max_connections",
            ),
            (
                "BOOTLER_DATABASE_MAX_CONNECTIONS",
                "many",
                "database_max_connections",
            ),
            ("BOOTLER_LOG_FORMAT", "xml", "log_format"),
            (
                "BOOTLER_BOOT__ALLOWED_NETWORKS",
                "[\"10.0.0.0/33\"]",
                "boot.allowed_networks",
            ),
            ("BOOTLER_JOBS__LEASE_SECONDS", "0", "jobs.lease_seconds"),
            ("BOOTLER_JOBS__BACKOFF_MAX_MS", "10", "jobs.backoff_max_ms"),
            ("BOOTLER_JOBS__WORKERS", "several", "jobs.workers"),
        ];
        for (var, value, key) in cases {
            let err = Config::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{var}={value}: {err}");
        }
    }

    #[test]
    fn missing_or_broken_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/bootler.toml")), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "listen = ").unwrap();
        let err = Config::load(Some(file.path()), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }));
    }

    #[test]
    fn nested_sections_from_file_and_environment() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[accounts]\nallowed_domains = [\"uminho.pt\"]\n[mail]\nfrom = \"lab@uminho.pt\""
        )
        .unwrap();
        let config = Config::load(
            Some(file.path()),
            env(&[
                ("BOOTLER_ACCOUNTS__PASSWORD_MIN_LENGTH", "16"),
                (
                    "BOOTLER_ACCOUNTS__ALLOWED_DOMAINS",
                    "[\"uminho.pt\", \"di.uminho.pt\"]",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.accounts.allowed_domains,
            ["uminho.pt", "di.uminho.pt"]
        );
        assert_eq!(config.accounts.password_min_length, 16);
        assert_eq!(config.mail.from, "lab@uminho.pt");
        assert_eq!(config.outbox_dir(), PathBuf::from("data/outbox"));

        let err = Config::load(None, env(&[("BOOTLER_ACCOUNTS__ALOWED_DOMAINS", "[]")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`accounts.alowed_domains`"), "{err}");
        assert!(err.contains("BOOTLER_ACCOUNTS__ALOWED_DOMAINS"), "{err}");
        let err = Config::load(
            None,
            env(&[("BOOTLER_ACCOUNTS__ALLOWED_DOMAINS", "[\"not a domain\"]")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`accounts.allowed_domains`"), "{err}");
    }

    #[test]
    fn smtp_needs_a_host_and_a_readable_password_file() {
        let err = Config::load(None, env(&[("BOOTLER_MAIL__KIND", "smtp")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`mail.smtp.host`"), "{err}");
        let err = Config::load(
            None,
            env(&[
                ("BOOTLER_MAIL__KIND", "smtp"),
                ("BOOTLER_MAIL__SMTP__HOST", "mail.lab"),
                ("BOOTLER_MAIL__SMTP__PASSWORD_FILE", "/nonexistent/secret"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`mail.smtp.password_file`"), "{err}");
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "s3cret").unwrap();
        let config = Config::load(
            None,
            env(&[
                ("BOOTLER_MAIL__KIND", "smtp"),
                ("BOOTLER_MAIL__SMTP__HOST", "mail.lab"),
                ("BOOTLER_MAIL__SMTP__PORT", "2525"),
                ("BOOTLER_MAIL__SMTP__TLS", "tls"),
                (
                    "BOOTLER_MAIL__SMTP__PASSWORD_FILE",
                    secret.path().to_str().unwrap(),
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.mail.smtp.port, Some(2525));
        assert_eq!(config.mail.smtp.tls, SmtpTlsMode::Tls);
        assert_eq!(
            config.mail.smtp.password().unwrap().as_deref(),
            Some("s3cret")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn env_arrays_parse_as_toml() {
        assert_eq!(
            env_value("[\"a\", \"b\"]").unwrap(),
            toml::Value::Array(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            env_value("3000").unwrap(),
            toml::Value::String("3000".into())
        );
        assert!(env_value("[unclosed").is_err());
    }
}
