//! `[vpn]`: the lab's OpenVPN server (thesis §1.2 "VPN Access", §4.2.5).
//! People sign in to it with their Bootler username and password; Bootler
//! writes the server's configuration, checks each sign-in
//! (`bootler vpn-auth`), records sessions and hands out client profiles.
//! Off by default: a lab whose nodes are not on a private network needs
//! none of it.

use std::path::PathBuf;

use serde::Deserialize;
use serde_with::{DisplayFromStr, PickFirst, serde_as};

/// Whether a new account may use the VPN at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VpnAccess {
    /// On at registration (and for `bootler user add`).
    #[default]
    On,
    /// Off until an administrator turns it on.
    Approval,
}

#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VpnConfig {
    /// Whether the lab has a VPN (pages, profiles, the verifier).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub enabled: bool,
    /// `on`: new accounts may connect at once; `approval`: after an
    /// administrator turns it on.
    pub access: VpnAccess,
    /// The address clients connect to. Default: the host of `base_url`.
    pub server: Option<String>,
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub port: u16,
    /// `udp` or `tcp`.
    pub proto: String,
    /// The addresses clients get, e.g. `10.8.0.0/24`.
    pub subnet: String,
    /// The lab's private networks, pushed to clients as routes.
    pub networks: Vec<String>,
    /// The CA that signed the server's certificate (clients get it inline).
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// `openvpn --genkey tls-crypt <file>`; clients get it inline.
    pub tls_crypt_key_file: PathBuf,
    /// The server configuration's template (minijinja); default: the
    /// built-in one (`bootler vpn server-config --template` prints it).
    pub server_template_file: Option<PathBuf>,
    /// The client profile's template; default: the built-in one.
    pub client_template_file: Option<PathBuf>,
    /// OpenVPN's management interface (`127.0.0.1:7505`): who is connected,
    /// and disconnecting them. Unset: Bootler knows sessions only from the
    /// connect hooks.
    pub management: Option<String>,
    /// The management interface's password (its first line).
    pub management_password_file: Option<PathBuf>,
    /// How long a sign-in check may take before it is refused, in seconds
    /// (OpenVPN waits for the verifier; a directory that is down must not
    /// hold it).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub auth_timeout_seconds: u64,
    /// How the verifier is started in the server configuration. Default:
    /// this program, with `--config` if Bootler was started with one.
    pub command: Option<String>,
}

impl Default for VpnConfig {
    fn default() -> Self {
        VpnConfig {
            enabled: false,
            access: VpnAccess::On,
            server: None,
            port: 1194,
            proto: "udp".into(),
            subnet: "10.8.0.0/24".into(),
            networks: Vec::new(),
            ca_file: "/etc/openvpn/server/ca.crt".into(),
            cert_file: "/etc/openvpn/server/server.crt".into(),
            key_file: "/etc/openvpn/server/server.key".into(),
            tls_crypt_key_file: "/etc/openvpn/server/tls-crypt.key".into(),
            server_template_file: None,
            client_template_file: None,
            management: None,
            management_password_file: None,
            auth_timeout_seconds: 5,
            command: None,
        }
    }
}

impl VpnConfig {
    /// Checks what cannot be right: the key and the reason.
    pub fn check(&self) -> Result<(), (String, String)> {
        if !matches!(self.proto.as_str(), "udp" | "tcp") {
            return Err((
                "vpn.proto".into(),
                format!("“{}” is neither udp nor tcp", self.proto),
            ));
        }
        if self.port == 0 {
            return Err(("vpn.port".into(), "0 is not a port".into()));
        }
        if super::ipv4_network(&self.subnet).is_none() {
            return Err((
                "vpn.subnet".into(),
                format!(
                    "“{}” is not an IPv4 network such as 10.8.0.0/24",
                    self.subnet
                ),
            ));
        }
        for network in &self.networks {
            if super::ipv4_network(network).is_none() {
                return Err((
                    "vpn.networks".into(),
                    format!("“{network}” is not an IPv4 network such as 10.10.0.0/16"),
                ));
            }
        }
        if let Some(management) = &self.management
            && management.parse::<std::net::SocketAddr>().is_err()
        {
            return Err((
                "vpn.management".into(),
                format!("“{management}” is not an address and port such as 127.0.0.1:7505"),
            ));
        }
        if self.auth_timeout_seconds == 0 || self.auth_timeout_seconds > 60 {
            return Err((
                "vpn.auth_timeout_seconds".into(),
                "must be between 1 and 60 (OpenVPN waits for it)".into(),
            ));
        }
        Ok(())
    }
}
