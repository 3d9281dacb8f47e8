//! VPN access (thesis §1.2, §4.2.5): the lab's OpenVPN server signs people
//! in with their Bootler username and password. This module decides each
//! sign-in (for `bootler vpn-auth`), keeps the sessions the connect hooks
//! report, writes the server's configuration and each person's client
//! profile from templates, and talks to OpenVPN's management interface.

pub mod config;
pub mod management;
mod templates;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::{VpnAccess, VpnConfig};
pub use management::{Connected, Management, ManagementError};

use crate::accounts::{AccountError, Accounts, User};
use crate::db::Db;
use crate::directory::DirectoryError;
use crate::templates::{Compiled, Limits};

/// `10.8.0.0/24` → (10.8.0.0, 255.255.255.0): the form OpenVPN wants.
pub fn ipv4_network(text: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (address, prefix) = text.trim().split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some((
        Ipv4Addr::from(u32::from(address) & mask),
        Ipv4Addr::from(mask),
    ))
}

/// What `bootler vpn-auth` answers OpenVPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refused, and why (for the log: never the password).
    Refuse(String),
}

#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    /// The lab has no VPN (`vpn.enabled` is off).
    #[error("This lab has no VPN (vpn.enabled is off).")]
    Disabled,
    /// This person may not use it.
    #[error("{0}")]
    Forbidden(String),
    /// No such account or session.
    #[error("{0}")]
    NotFound(String),
    /// Something the administrator must fix: an unreadable file, a
    /// template that does not render, a management interface that does
    /// not answer.
    #[error("{0}")]
    Setup(String),
    /// OpenVPN's management interface does not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// One VPN connection, as the connect hooks reported it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Session {
    pub id: i64,
    pub username: String,
    /// Where the client connected from (`ip:port`).
    pub real_address: String,
    /// The address it got inside the VPN.
    pub virtual_address: String,
    pub connected_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub bytes_received: i64,
    pub bytes_sent: i64,
}

/// What templates see when the server configuration is written.
#[derive(Debug, Serialize)]
struct ServerContext<'a> {
    port: u16,
    proto: &'a str,
    subnet_address: String,
    subnet_netmask: String,
    networks: Vec<Route>,
    ca_file: String,
    cert_file: String,
    key_file: String,
    tls_crypt_key_file: String,
    /// How OpenVPN starts Bootler's hooks (`… vpn-auth`, `… vpn-connect`).
    command: &'a str,
    /// Settings the hooks need that are not in a file (OpenVPN gives its
    /// scripts only the variables it is told to): `(name, quoted value)`.
    environment: Vec<(String, String)>,
    management: Option<ManagementContext>,
    base_url: &'a str,
}

#[derive(Debug, Serialize)]
struct Route {
    cidr: String,
    address: String,
    netmask: String,
}

#[derive(Debug, Serialize)]
struct ManagementContext {
    host: String,
    port: u16,
    password_file: Option<String>,
}

/// What templates see in a client profile.
#[derive(Debug, Serialize)]
struct ClientContext<'a> {
    server: &'a str,
    port: u16,
    proto: &'a str,
    username: &'a str,
    ca: String,
    tls_crypt: String,
    base_url: &'a str,
}

/// The VPN service.
#[derive(Clone)]
pub struct Vpn {
    db: Db,
    accounts: Accounts,
    config: Arc<VpnConfig>,
    base_url: Arc<str>,
}

impl Vpn {
    pub fn new(db: Db, accounts: Accounts, config: VpnConfig, base_url: &str) -> Vpn {
        Vpn {
            db,
            accounts,
            config: Arc::new(config),
            base_url: base_url.trim_end_matches('/').into(),
        }
    }

    pub fn config(&self) -> &VpnConfig {
        &self.config
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The address clients connect to.
    pub fn server_address(&self) -> String {
        if let Some(server) = &self.config.server {
            return server.clone();
        }
        let rest = self
            .base_url
            .split_once("://")
            .map_or(&*self.base_url, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
            _ => authority.to_string(),
        }
    }

    /// `user`'s VPN access in words: `on`, `off` or `awaiting approval`.
    pub fn access_of(&self, user: &User) -> &'static str {
        match (user.vpn_enabled, self.config.access) {
            (true, _) => "on",
            (false, VpnAccess::Approval) => "awaiting approval",
            (false, VpnAccess::On) => "off",
        }
    }

    /// The file name of `user`'s profile: `<server>-<username>.ovpn`, with
    /// anything a file name should not hold replaced.
    pub fn profile_file_name(&self, user: &User) -> String {
        format!("{}-{}.ovpn", self.server_address(), user.username)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }

    /// Whether `username` may connect with `password` (from `address`),
    /// decided within `vpn.auth_timeout_seconds`.
    pub async fn verify(
        &self,
        username: &str,
        password: &str,
        address: Option<&str>,
        now: DateTime<Utc>,
    ) -> Verdict {
        if !self.config.enabled {
            return Verdict::Refuse(
                "the VPN is off in Bootler's configuration (vpn.enabled)".into(),
            );
        }
        if username.is_empty() || password.is_empty() {
            return Verdict::Refuse("no username or no password was given".into());
        }
        let limit = Duration::from_secs(self.config.auth_timeout_seconds);
        let checked = tokio::time::timeout(
            limit,
            self.accounts
                .authenticate_limited(username, password, address, now),
        )
        .await;
        match checked {
            Err(_) => Verdict::Refuse(format!(
                "the check took longer than {} s (is the directory reachable?)",
                limit.as_secs()
            )),
            Ok(Ok(user)) if user.vpn_enabled => Verdict::Accept,
            Ok(Ok(_)) => Verdict::Refuse("VPN access is off for this account".into()),
            Ok(Err(err)) => Verdict::Refuse(refusal(&err)),
        }
    }

    /// `client-connect`: a session begins.
    pub async fn connected(
        &self,
        username: &str,
        real_address: &str,
        virtual_address: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, VpnError> {
        let user = self.accounts.find(username).await?;
        let id: i64 = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "INSERT INTO vpn_sessions (user_id, username, real_address, virtual_address, connected_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(user.map(|u| u.id))
            .bind(username)
            .bind(real_address)
            .bind(virtual_address)
            .bind(now)
            .fetch_one(pool)
            .await
        })?;
        tracing::info!(%username, %real_address, %virtual_address, "VPN session began");
        Ok(id)
    }

    /// `client-disconnect`: the newest open session of `username` at
    /// `virtual_address` ends.
    pub async fn disconnected(
        &self,
        username: &str,
        virtual_address: &str,
        bytes_received: i64,
        bytes_sent: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, VpnError> {
        let done = crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE vpn_sessions SET disconnected_at = $1, bytes_received = $2, bytes_sent = $3 \
                 WHERE id = (SELECT id FROM vpn_sessions WHERE username = $4 AND virtual_address = $5 \
                 AND disconnected_at IS NULL ORDER BY id DESC LIMIT 1)",
            )
            .bind(now)
            .bind(bytes_received)
            .bind(bytes_sent)
            .bind(username)
            .bind(virtual_address)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        tracing::info!(%username, %virtual_address, bytes_received, bytes_sent, "VPN session ended");
        Ok(done > 0)
    }

    /// Recent sessions, newest first: one person's, or everyone's.
    pub async fn sessions(
        &self,
        user_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Session>, VpnError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, username, real_address, virtual_address, connected_at, disconnected_at, \
                 bytes_received, bytes_sent FROM vpn_sessions \
                 WHERE ($1 IS NULL OR user_id = $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit.clamp(1, 500))
            .fetch_all(pool)
            .await
        })?)
    }

    /// The management interface, when configured.
    pub fn management(&self) -> Result<Option<Management>, VpnError> {
        let Some(address) = &self.config.management else {
            return Ok(None);
        };
        let address = address.parse().map_err(|_| {
            VpnError::Setup(format!("vpn.management “{address}” is not an address"))
        })?;
        let password = match &self.config.management_password_file {
            Some(path) => Some(
                read(path, "vpn.management_password_file")?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Some(Management::new(address, password)))
    }

    /// Who is connected now; `None` without a management interface.
    pub async fn connected_now(&self) -> Result<Option<Vec<Connected>>, VpnError> {
        let Some(management) = self.management()? else {
            return Ok(None);
        };
        management
            .clients()
            .await
            .map(Some)
            .map_err(management_error)
    }

    /// Ends every session of `username` now (through the management
    /// interface); how many there were.
    pub async fn disconnect(&self, username: &str) -> Result<usize, VpnError> {
        let Some(management) = self.management()? else {
            return Err(VpnError::Setup(
                "Bootler cannot disconnect anyone: OpenVPN's management interface is not configured (vpn.management).".into(),
            ));
        };
        let killed = management.kill(username).await.map_err(management_error)?;
        tracing::info!(%username, sessions = killed, "VPN sessions disconnected");
        Ok(killed)
    }

    /// The OpenVPN server configuration (see [`server_config`]).
    pub fn server_config(
        &self,
        command: &str,
        environment: &[(String, String)],
    ) -> Result<String, VpnError> {
        server_config(&self.config, &self.base_url, command, environment)
    }

    /// The `.ovpn` profile of `user`: the server's address, the CA and the
    /// tls-crypt key inline, and `auth-user-pass` (the password is asked
    /// for when connecting, never stored in the file).
    pub async fn client_profile(&self, user: &User) -> Result<String, VpnError> {
        if !self.config.enabled {
            return Err(VpnError::Disabled);
        }
        if !user.vpn_enabled {
            return Err(VpnError::Forbidden(match self.config.access {
                VpnAccess::Approval => {
                    "Your VPN access waits for an administrator's approval.".into()
                }
                VpnAccess::On => {
                    "VPN access is off for your account; ask the lab's administrator.".into()
                }
            }));
        }
        let server = self.server_address();
        let context = ClientContext {
            server: &server,
            port: self.config.port,
            proto: &self.config.proto,
            username: &user.username,
            ca: with_newline(read(&self.config.ca_file, "vpn.ca_file")?),
            tls_crypt: with_newline(read(
                &self.config.tls_crypt_key_file,
                "vpn.tls_crypt_key_file",
            )?),
            base_url: &self.base_url,
        };
        let template = match &self.config.client_template_file {
            Some(path) => read(path, "vpn.client_template_file")?,
            None => templates::CLIENT.to_string(),
        };
        render("vpn client profile", &template, &context)
    }

    /// The built-in templates, for administrators who want to start from them.
    pub fn builtin_templates() -> (&'static str, &'static str) {
        (templates::SERVER, templates::CLIENT)
    }
}

/// The OpenVPN server configuration, from `vpn.server_template_file`
/// or the built-in template. `command` starts Bootler's hooks, with
/// `environment` set (`setenv`).
pub fn server_config(
    config: &VpnConfig,
    base_url: &str,
    command: &str,
    environment: &[(String, String)],
) -> Result<String, VpnError> {
    let (subnet_address, subnet_netmask) = ipv4_network(&config.subnet).ok_or_else(|| {
        VpnError::Setup(format!("vpn.subnet “{}” is not a network", config.subnet))
    })?;
    let networks = config
        .networks
        .iter()
        .map(|cidr| {
            ipv4_network(cidr)
                .map(|(address, netmask)| Route {
                    cidr: cidr.clone(),
                    address: address.to_string(),
                    netmask: netmask.to_string(),
                })
                .ok_or_else(|| VpnError::Setup(format!("vpn.networks: “{cidr}” is not a network")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let management = match &config.management {
        Some(text) => {
            let address: std::net::SocketAddr = text.parse().map_err(|_| {
                VpnError::Setup(format!("vpn.management “{text}” is not an address"))
            })?;
            Some(ManagementContext {
                host: address.ip().to_string(),
                port: address.port(),
                password_file: config
                    .management_password_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            })
        }
        None => None,
    };
    let context = ServerContext {
        port: config.port,
        proto: &config.proto,
        subnet_address: subnet_address.to_string(),
        subnet_netmask: subnet_netmask.to_string(),
        networks,
        ca_file: config.ca_file.display().to_string(),
        cert_file: config.cert_file.display().to_string(),
        key_file: config.key_file.display().to_string(),
        tls_crypt_key_file: config.tls_crypt_key_file.display().to_string(),
        command,
        environment: environment
            .iter()
            .map(|(name, value)| {
                let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
                (name.clone(), format!("\"{quoted}\""))
            })
            .collect(),
        management,
        base_url: base_url.trim_end_matches('/'),
    };
    let template = match &config.server_template_file {
        Some(path) => read(path, "vpn.server_template_file")?,
        None => templates::SERVER.to_string(),
    };
    render("vpn server configuration", &template, &context)
}

fn management_error(err: ManagementError) -> VpnError {
    match err {
        ManagementError::Unreachable(..) => VpnError::Unavailable(err.to_string()),
        ManagementError::Refused(_) => VpnError::Setup(err.to_string()),
    }
}

fn refusal(err: &AccountError) -> String {
    match err {
        AccountError::WrongCredentials => "wrong username or password".into(),
        AccountError::NotActive(reason) => format!("the account cannot sign in: {reason}"),
        AccountError::RateLimited {
            retry_after_seconds,
        } => {
            format!("too many failed sign-ins; the next try in {retry_after_seconds} s")
        }
        AccountError::Directory(DirectoryError::Unavailable(reason)) => {
            format!("the directory is unavailable: {reason}")
        }
        other => format!("Bootler could not check the password: {other}"),
    }
}

fn read(path: &Path, key: &str) -> Result<String, VpnError> {
    std::fs::read_to_string(path)
        .map_err(|err| VpnError::Setup(format!("{key} {}: {err}", path.display())))
}

fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn render<C: Serialize>(what: &str, template: &str, context: &C) -> Result<String, VpnError> {
    Compiled::new(what, template, Limits::default())
        .and_then(|compiled| compiled.render(context))
        .map_err(|err| VpnError::Setup(format!("the {what} template does not render: {err}")))
}

#[cfg(test)]
mod tests;
