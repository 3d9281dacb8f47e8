//! The VPN page's data: one's access, profile and sessions; for
//! administrators, who is connected, everyone's sessions and who may
//! connect.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub username: String,
    pub real_address: String,
    pub virtual_address: String,
    pub connected: String,
    /// "still connected" or when it ended.
    pub ended: String,
    /// "1.2 MB in, 300 kB out".
    pub traffic: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedRow {
    pub username: String,
    pub real_address: String,
    pub virtual_address: String,
    pub since: String,
    pub traffic: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRow {
    pub username: String,
    pub display_name: String,
    /// active, pending, disabled.
    pub status: String,
    pub vpn: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnAdminView {
    /// `None`: no management interface; `Err`: it does not answer.
    pub connected: Option<Result<Vec<ConnectedRow>, String>>,
    pub sessions: Vec<SessionRow>,
    pub people: Vec<AccessRow>,
    /// "on at registration" or "after an administrator's approval".
    pub policy: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnView {
    /// The lab has a VPN at all.
    pub enabled: bool,
    pub username: String,
    /// on, off, awaiting approval.
    pub access: String,
    /// "vpn.lab.example 1194/udp".
    pub server: String,
    pub networks: Vec<String>,
    pub profile_name: String,
    pub sessions: Vec<SessionRow>,
    pub admin: Option<VpnAdminView>,
    pub csrf: String,
}

/// "12 B", "3.4 kB", "1.2 MB".
#[cfg(feature = "ssr")]
fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1000.0 {
        format!("{n} B")
    } else if n < 1e6 {
        format!("{:.1} kB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} GB", n / 1e9)
    }
}

#[cfg(feature = "ssr")]
fn session_row(session: &bootler_domain::vpn::Session) -> SessionRow {
    use super::account::when;
    SessionRow {
        username: session.username.clone(),
        real_address: session.real_address.clone(),
        virtual_address: session.virtual_address.clone(),
        connected: when(session.connected_at),
        ended: session
            .disconnected_at
            .map(when)
            .unwrap_or_else(|| "still connected".into()),
        traffic: if session.disconnected_at.is_some() {
            format!(
                "{} in, {} out",
                bytes(session.bytes_received),
                bytes(session.bytes_sent)
            )
        } else {
            String::new()
        },
    }
}

/// `None` when nobody is signed in.
#[server(prefix = "/sfn", endpoint = "vpn_overview")]
pub async fn vpn_overview() -> Result<Option<VpnView>, ServerFnError> {
    use super::current_user::request_session;
    use bootler_domain::accounts::{Accounts, Role, UserQuery};
    use bootler_domain::vpn::{Vpn, VpnAccess};
    let Some(session) = request_session().await? else {
        return Ok(None);
    };
    let vpn = use_context::<Vpn>().ok_or_else(|| ServerFnError::new("VPN service missing"))?;
    let user = session.user;
    let config = vpn.config();
    let error = |e: bootler_domain::vpn::VpnError| ServerFnError::new(e.to_string());
    let mut view = VpnView {
        enabled: vpn.enabled(),
        username: user.username.clone(),
        access: vpn.access_of(&user).into(),
        server: format!("{} {}/{}", vpn.server_address(), config.port, config.proto),
        networks: config.networks.clone(),
        profile_name: vpn.profile_file_name(&user),
        sessions: Vec::new(),
        admin: None,
        csrf: session.csrf_token,
    };
    if !vpn.enabled() {
        return Ok(Some(view));
    }
    view.sessions = vpn
        .sessions(Some(user.id), 10)
        .await
        .map_err(error)?
        .iter()
        .map(session_row)
        .collect();
    if user.role == Role::Admin {
        let accounts = use_context::<Accounts>()
            .ok_or_else(|| ServerFnError::new("accounts service missing"))?;
        let people = accounts
            .list_users(
                &user,
                &UserQuery {
                    search: String::new(),
                    status: None,
                    role: None,
                    limit: 500,
                    offset: 0,
                },
            )
            .await
            .map_err(|e| ServerFnError::new(e.to_string()))?
            .users
            .into_iter()
            .map(|u| AccessRow {
                status: u.status.as_str().to_string(),
                username: u.username,
                display_name: u.display_name,
                vpn: u.vpn_enabled,
            })
            .collect();
        let connected = match vpn.connected_now().await {
            Ok(None) => None,
            Ok(Some(clients)) => Some(Ok(clients
                .into_iter()
                .map(|c| ConnectedRow {
                    username: c.username,
                    real_address: c.real_address,
                    virtual_address: c.virtual_address,
                    since: c
                        .connected_since
                        .map(super::account::when)
                        .unwrap_or_default(),
                    traffic: format!(
                        "{} in, {} out",
                        bytes(c.bytes_received),
                        bytes(c.bytes_sent)
                    ),
                })
                .collect())),
            Err(err) => Some(Err(err.to_string())),
        };
        view.admin = Some(VpnAdminView {
            connected,
            sessions: vpn
                .sessions(None, 50)
                .await
                .map_err(error)?
                .iter()
                .map(session_row)
                .collect(),
            people,
            policy: match config.access {
                VpnAccess::On => "New accounts may connect at once (vpn.access = \"on\").".into(),
                VpnAccess::Approval => {
                    "New accounts connect after an administrator turns their access on (vpn.access = \"approval\").".into()
                }
            },
        });
    }
    Ok(Some(view))
}
