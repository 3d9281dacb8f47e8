//! The programs OpenVPN runs: `bootler vpn-auth` (is this sign-in
//! allowed?), `bootler vpn-connect` and `bootler vpn-disconnect` (session
//! records). Each opens the database without migrating it, does its one
//! thing and exits; each writes one line for OpenVPN's log, never with the
//! password.

use std::path::Path;
use std::time::Duration;

use bootler_domain::vpn::{Verdict, Vpn};
use bootler_domain::{Config, Db};
use chrono::Utc;

use crate::services;

/// A name for the log: printable, bounded.
fn shown(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if clean.is_empty() {
        "(no username)".into()
    } else {
        clean
    }
}

/// The username and password: from OpenVPN's file (via-file), else from
/// its variables (via-env).
fn credentials(file: Option<&Path>) -> Result<(String, String), String> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| {
                format!(
                    "the credentials file {} cannot be read: {err}",
                    path.display()
                )
            })?;
            let mut lines = text.lines();
            let username = lines.next().unwrap_or_default().to_string();
            let password = lines.next().unwrap_or_default().to_string();
            Ok((username, password))
        }
        None => Ok((
            std::env::var("username").unwrap_or_default(),
            std::env::var("password").unwrap_or_default(),
        )),
    }
}

/// The VPN service on a database connection of its own (no migrations:
/// the server does those).
async fn open(config: &Config) -> anyhow::Result<(Db, Vpn)> {
    let db = Db::connect(&config.database_url(), 2).await?;
    let accounts = services::accounts(config, &db)?;
    let vpn = services::vpn(config, &db, &accounts);
    Ok((db, vpn))
}

/// `auth-user-pass-verify`: exits 0 to accept, 1 to refuse.
pub async fn auth(config: &Config, file: Option<&Path>) -> anyhow::Result<()> {
    let limit = Duration::from_secs(config.vpn.auth_timeout_seconds);
    let from = std::env::var("untrusted_ip").ok();
    let (username, verdict) = match credentials(file) {
        Err(reason) => (String::new(), Verdict::Refuse(reason)),
        Ok((username, password)) => {
            let check = async {
                let (db, vpn) = open(config).await?;
                let verdict = vpn
                    .verify(&username, &password, from.as_deref(), Utc::now())
                    .await;
                db.close().await;
                anyhow::Ok(verdict)
            };
            let verdict = match tokio::time::timeout(limit, check).await {
                Ok(Ok(verdict)) => verdict,
                Ok(Err(err)) => Verdict::Refuse(format!("Bootler could not check: {err:#}")),
                Err(_) => Verdict::Refuse(format!(
                    "the check took longer than {} s (is the database or the directory reachable?)",
                    limit.as_secs()
                )),
            };
            (username, verdict)
        }
    };
    let whence = from
        .map(|ip| format!(" from {}", shown(&ip)))
        .unwrap_or_default();
    match verdict {
        Verdict::Accept => {
            eprintln!("bootler vpn-auth: accepted {}{whence}", shown(&username));
            std::process::exit(0)
        }
        Verdict::Refuse(reason) => {
            eprintln!(
                "bootler vpn-auth: refused {}{whence}: {reason}",
                shown(&username)
            );
            std::process::exit(1)
        }
    }
}

/// The session's username: OpenVPN sets `username` (and, with
/// `username-as-common-name`, `common_name`).
fn session_user() -> String {
    std::env::var("username")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("common_name").ok())
        .unwrap_or_default()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// `client-connect`: records the session; a failure is logged, and the
/// connection goes on (the records are bookkeeping, not a gate).
pub async fn connect(config: &Config) -> anyhow::Result<()> {
    let username = session_user();
    let real = match (var("trusted_ip"), var("trusted_port")) {
        (ip, port) if !port.is_empty() => format!("{ip}:{port}"),
        (ip, _) => ip,
    };
    let virtual_address = var("ifconfig_pool_remote_ip");
    let recorded = tokio::time::timeout(Duration::from_secs(5), async {
        let (db, vpn) = open(config).await?;
        let id = vpn
            .connected(&username, &real, &virtual_address, Utc::now())
            .await?;
        db.close().await;
        anyhow::Ok(id)
    })
    .await;
    match recorded {
        Ok(Ok(id)) => eprintln!(
            "bootler vpn-connect: {} from {real} at {virtual_address} (session {id})",
            shown(&username)
        ),
        Ok(Err(err)) => eprintln!(
            "bootler vpn-connect: the session of {} was not recorded: {err:#}",
            shown(&username)
        ),
        Err(_) => eprintln!(
            "bootler vpn-connect: the session of {} was not recorded: the database did not answer in 5 s",
            shown(&username)
        ),
    }
    Ok(())
}

/// `client-disconnect`: ends the session's record.
pub async fn disconnect(config: &Config) -> anyhow::Result<()> {
    let username = session_user();
    let virtual_address = var("ifconfig_pool_remote_ip");
    let received = var("bytes_received").parse().unwrap_or(0);
    let sent = var("bytes_sent").parse().unwrap_or(0);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let (db, vpn) = open(config).await?;
        let ended = vpn
            .disconnected(&username, &virtual_address, received, sent, Utc::now())
            .await?;
        db.close().await;
        anyhow::Ok(ended)
    })
    .await;
    match ended {
        Ok(Ok(true)) => eprintln!(
            "bootler vpn-disconnect: {} left {virtual_address}",
            shown(&username)
        ),
        Ok(Ok(false)) => eprintln!(
            "bootler vpn-disconnect: {} at {virtual_address} had no open session",
            shown(&username)
        ),
        Ok(Err(err)) => eprintln!("bootler vpn-disconnect: not recorded: {err:#}"),
        Err(_) => {
            eprintln!("bootler vpn-disconnect: not recorded: the database did not answer in 5 s")
        }
    }
    Ok(())
}
