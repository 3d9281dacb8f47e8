//! A host's power drivers as stored (`hosts.power`, a JSON list tried in
//! order) and as the API takes and shows them. BMC passwords are sealed
//! at rest and never shown back.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PowerDriver;
use super::ipmi::{Ipmi, IpmiSettings};
use super::sealed::SecretBox;
use super::wol::{self, WakeOnLan};
use crate::hosts::Mac;

/// Most drivers one host has.
pub const MAX_DRIVERS: usize = 4;

/// One driver of a host. `password` is the clear password in what the API
/// takes, and sealed in what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
pub enum DriverSetting {
    Ipmi {
        address: String,
        #[serde(default = "ipmi_port")]
        port: u16,
        username: String,
        /// Clear on input (absent: keep the stored one of the same
        /// address); sealed when stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// RMCP+ cipher suite (3: HMAC-SHA1 and AES-CBC-128).
        #[serde(default = "cipher_suite")]
        cipher_suite: u8,
        /// `lanplus` (IPMI 2.0, RMCP+) or `lan` (IPMI 1.5).
        #[serde(default = "lanplus")]
        interface: String,
    },
    Wol {
        /// Where the magic packet goes (a subnet's broadcast address).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broadcast: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// The MAC to wake (default: the host's first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        /// The network interface the packet leaves by (where the route
        /// would pick the wrong one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
}

/// A pool's Wake-on-LAN settings: every node in the pool can be woken
/// with them (those without drivers of their own, and as the fallback of
/// those with only a BMC); a node's own Wake-on-LAN driver takes what it
/// leaves blank from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl WakeDefaults {
    /// Checks and tidies settings from the API.
    pub fn settle(self) -> Result<WakeDefaults, String> {
        let [
            DriverSetting::Wol {
                broadcast,
                port,
                interface,
                ..
            },
        ] = &settle(
            vec![DriverSetting::Wol {
                broadcast: self.broadcast,
                port: self.port,
                mac: None,
                interface: self.interface,
            }],
            &[],
            &SecretBox::new([0; 32]),
        )?[..]
        else {
            return Err("Wake-on-LAN settings could not be read.".into());
        };
        Ok(WakeDefaults {
            broadcast: broadcast.clone(),
            port: *port,
            interface: interface.clone(),
        })
    }

    /// For people: "to 10.0.0.255:9 via eno1".
    pub fn describe(&self) -> String {
        let mut out = format!(
            "to {}:{}",
            self.broadcast.as_deref().unwrap_or(wol::BROADCAST),
            self.port.unwrap_or(wol::PORT)
        );
        if let Some(dev) = &self.interface {
            out.push_str(" via ");
            out.push_str(dev);
        }
        out
    }
}

/// The drivers a host is reached by: its own, with its pool's
/// Wake-on-LAN settings filled in (the pool's Wake-on-LAN is added last
/// when the host has none of its own).
pub fn effective(own: &[DriverSetting], pool: Option<&WakeDefaults>) -> Vec<DriverSetting> {
    let Some(pool) = pool else {
        return own.to_vec();
    };
    let mut out: Vec<DriverSetting> = own
        .iter()
        .map(|setting| match setting {
            DriverSetting::Wol {
                broadcast,
                port,
                mac,
                interface,
            } => DriverSetting::Wol {
                broadcast: broadcast.clone().or_else(|| pool.broadcast.clone()),
                port: port.or(pool.port),
                mac: mac.clone(),
                interface: interface.clone().or_else(|| pool.interface.clone()),
            },
            other => other.clone(),
        })
        .collect();
    if !own.iter().any(|s| matches!(s, DriverSetting::Wol { .. })) && out.len() < MAX_DRIVERS {
        out.push(DriverSetting::Wol {
            broadcast: pool.broadcast.clone(),
            port: pool.port,
            mac: None,
            interface: pool.interface.clone(),
        });
    }
    out
}

fn ipmi_port() -> u16 {
    623
}
fn cipher_suite() -> u8 {
    3
}
fn lanplus() -> String {
    "lanplus".into()
}

/// What drivers are built with besides their settings.
#[derive(Debug, Clone)]
pub struct DriverContext<'a> {
    pub macs: &'a [String],
    pub secrets: &'a SecretBox,
    pub ipmi_timeout: std::time::Duration,
    pub ipmi_retries: u32,
}

impl DriverSetting {
    /// The driver's name for people.
    pub fn kind(&self) -> &'static str {
        match self {
            DriverSetting::Ipmi { .. } => "ipmi",
            DriverSetting::Wol { .. } => "wol",
        }
    }

    /// What the API shows: everything but the password.
    pub fn public(&self) -> Value {
        match self {
            DriverSetting::Ipmi {
                address,
                port,
                username,
                password,
                cipher_suite,
                interface,
            } => json!({
                "driver": "ipmi",
                "address": address,
                "port": port,
                "username": username,
                "password_set": password.is_some(),
                "cipher_suite": cipher_suite,
                "interface": interface,
            }),
            wol => serde_json::to_value(wol).unwrap_or(Value::Null),
        }
    }

    /// The driver, ready to use.
    pub fn driver(&self, ctx: &DriverContext<'_>) -> Result<Box<dyn PowerDriver>, String> {
        match self {
            DriverSetting::Ipmi {
                address,
                port,
                username,
                password,
                cipher_suite,
                interface,
            } => {
                let sealed = password
                    .as_deref()
                    .ok_or_else(|| format!("IPMI at {address} has no password; set one"))?;
                Ok(Box::new(Ipmi::new(IpmiSettings {
                    address: address.clone(),
                    port: *port,
                    username: username.clone(),
                    password: ctx.secrets.open(sealed)?,
                    cipher_suite: *cipher_suite,
                    lanplus: interface != "lan",
                    timeout: ctx.ipmi_timeout,
                    retries: ctx.ipmi_retries,
                })))
            }
            DriverSetting::Wol {
                broadcast,
                port,
                mac,
                interface,
            } => {
                let mac = match mac {
                    Some(mac) => Mac::parse(mac)?,
                    None => ctx
                        .macs
                        .first()
                        .ok_or("the host has no MAC address to wake")
                        .and_then(|m| {
                            Mac::parse(m).map_err(|_| "the host's MAC address is unreadable")
                        })?,
                };
                Ok(Box::new(
                    WakeOnLan::new(
                        mac,
                        broadcast.as_deref().unwrap_or(wol::BROADCAST),
                        port.unwrap_or(wol::PORT),
                    )?
                    .via(interface.as_deref())?,
                ))
            }
        }
    }
}

fn bad(message: String) -> Result<(), String> {
    Err(message)
}

/// Checks drivers from the API and seals their passwords; a driver without
/// a password keeps the stored one of the same address and user.
pub fn settle(
    input: Vec<DriverSetting>,
    stored: &[DriverSetting],
    secrets: &SecretBox,
) -> Result<Vec<DriverSetting>, String> {
    if input.len() > MAX_DRIVERS {
        return Err(format!("A host has at most {MAX_DRIVERS} power drivers."));
    }
    let mut out = Vec::with_capacity(input.len());
    for setting in input {
        match setting {
            DriverSetting::Ipmi {
                address,
                port,
                username,
                password,
                cipher_suite,
                interface,
            } => {
                let address = address.trim().to_string();
                if address.is_empty()
                    || address.len() > 253
                    || address.chars().any(|c| c.is_whitespace() || c == '/')
                {
                    bad(format!(
                        "“{}” is not a BMC address: give a host name or an IP address.",
                        address.chars().take(60).collect::<String>()
                    ))?;
                }
                if port == 0 {
                    bad("An IPMI port is between 1 and 65535.".into())?;
                }
                if username.is_empty() || username.len() > 16 {
                    bad("An IPMI user name has 1 to 16 characters.".into())?;
                }
                if cipher_suite > 3 {
                    bad(format!(
                        "Cipher suite {cipher_suite} is not one Bootler speaks: use 3 (the default) or 0–2."
                    ))?;
                }
                if !matches!(interface.as_str(), "lanplus" | "lan") {
                    bad(format!(
                        "“{}” is not an IPMI interface: use lanplus (IPMI 2.0) or lan (IPMI 1.5).",
                        interface.chars().take(20).collect::<String>()
                    ))?;
                }
                let password = match password {
                    Some(clear) => {
                        if clear.is_empty() || clear.len() > 20 {
                            bad("An IPMI password has 1 to 20 characters.".into())?;
                        }
                        Some(secrets.seal(&clear)?)
                    }
                    None => stored.iter().find_map(|s| match s {
                        DriverSetting::Ipmi {
                            address: a,
                            username: u,
                            password: p,
                            ..
                        } if *a == address && *u == username => p.clone(),
                        _ => None,
                    }),
                };
                if password.is_none() {
                    bad(format!(
                        "Give the password of IPMI user “{username}” at {address}."
                    ))?;
                }
                out.push(DriverSetting::Ipmi {
                    address,
                    port,
                    username,
                    password,
                    cipher_suite,
                    interface,
                });
            }
            DriverSetting::Wol {
                broadcast,
                port,
                mac,
                interface,
            } => {
                let interface = interface
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty());
                if let Some(dev) = &interface
                    && !wol::valid_interface(dev)
                {
                    bad(format!(
                        "“{}” is not a network interface's name (like eno1 or br0).",
                        dev.chars().take(30).collect::<String>()
                    ))?;
                }
                if let Some(b) = &broadcast
                    && b.trim().parse::<std::net::IpAddr>().is_err()
                {
                    bad(format!(
                        "“{}” is not an IP address to send Wake-on-LAN packets to.",
                        b.chars().take(60).collect::<String>()
                    ))?;
                }
                if port == Some(0) {
                    bad("A Wake-on-LAN port is between 1 and 65535 (usually 9).".into())?;
                }
                let mac = match mac {
                    Some(m) => Some(Mac::parse(&m)?.to_string()),
                    None => None,
                };
                out.push(DriverSetting::Wol {
                    broadcast: broadcast
                        .map(|b| b.trim().to_string())
                        .filter(|b| !b.is_empty()),
                    port,
                    mac,
                    interface,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipmi(password: Option<&str>) -> DriverSetting {
        DriverSetting::Ipmi {
            address: "10.0.0.5".into(),
            port: 623,
            username: "admin".into(),
            password: password.map(String::from),
            cipher_suite: 3,
            interface: "lanplus".into(),
        }
    }

    #[test]
    fn passwords_are_sealed_kept_and_never_shown() {
        let secrets = SecretBox::new([1; 32]);
        let stored = settle(vec![ipmi(Some("calvin"))], &[], &secrets).unwrap();
        let DriverSetting::Ipmi {
            password: Some(sealed),
            ..
        } = &stored[0]
        else {
            panic!("{stored:?}");
        };
        assert_ne!(sealed, "calvin");
        assert_eq!(secrets.open(sealed).unwrap(), "calvin");
        assert!(!stored[0].public().to_string().contains("calvin"));
        assert_eq!(stored[0].public()["password_set"], true);
        // Saved again without a password: the stored one stays.
        let again = settle(vec![ipmi(None)], &stored, &secrets).unwrap();
        assert_eq!(again, stored);
        // A new BMC needs its password.
        let err = settle(vec![ipmi(None)], &[], &secrets).unwrap_err();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn a_pools_wake_settings_fill_in_and_fall_back() {
        let pool = WakeDefaults {
            broadcast: Some("10.0.0.255".into()),
            port: None,
            interface: Some("eno1".into()),
        };
        // No drivers of its own: the pool's Wake-on-LAN.
        let none = effective(&[], Some(&pool));
        assert_eq!(
            none,
            vec![DriverSetting::Wol {
                broadcast: Some("10.0.0.255".into()),
                port: None,
                mac: None,
                interface: Some("eno1".into()),
            }]
        );
        // A BMC only: the pool's Wake-on-LAN comes after it.
        let with_bmc = effective(&[ipmi(Some("x"))], Some(&pool));
        assert_eq!(with_bmc.len(), 2);
        assert_eq!(with_bmc[0], ipmi(Some("x")));
        assert_eq!(with_bmc[1].kind(), "wol");
        // Its own Wake-on-LAN keeps what it set and takes the rest.
        let own = DriverSetting::Wol {
            broadcast: None,
            port: Some(7),
            mac: None,
            interface: None,
        };
        assert_eq!(
            effective(std::slice::from_ref(&own), Some(&pool)),
            vec![DriverSetting::Wol {
                broadcast: Some("10.0.0.255".into()),
                port: Some(7),
                mac: None,
                interface: Some("eno1".into()),
            }]
        );
        // No pool settings: its own, as they are.
        assert_eq!(effective(std::slice::from_ref(&own), None), vec![own]);
        assert_eq!(pool.describe(), "to 10.0.0.255:9 via eno1");
        assert!(
            WakeDefaults {
                broadcast: Some("nowhere".into()),
                ..WakeDefaults::default()
            }
            .settle()
            .is_err()
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let secrets = SecretBox::new([1; 32]);
        let parse = |v: Value| serde_json::from_value::<Vec<DriverSetting>>(v);
        assert!(parse(json!([{"driver": "redfish"}])).is_err());
        assert!(parse(json!([{"driver": "wol", "colour": 1}])).is_err());
        for (input, words) in [
            (
                json!([{"driver": "wol", "broadcast": "nowhere"}]),
                "not an IP address",
            ),
            (json!([{"driver": "wol", "mac": "zz"}]), "not a MAC address"),
            (
                json!([{"driver": "wol", "interface": "a b"}]),
                "network interface",
            ),
            (
                json!([{"driver": "ipmi", "address": "", "username": "a", "password": "b"}]),
                "BMC address",
            ),
            (
                json!([{"driver": "ipmi", "address": "h", "username": "a", "password": "b", "cipher_suite": 9}]),
                "Cipher suite 9",
            ),
            (
                json!([{"driver": "ipmi", "address": "h", "username": "a", "password": "b", "interface": "x"}]),
                "interface",
            ),
            (
                json!([{"driver": "wol"}, {"driver": "wol"}, {"driver": "wol"}, {"driver": "wol"}, {"driver": "wol"}]),
                "at most 4",
            ),
        ] {
            let err = settle(parse(input.clone()).unwrap(), &[], &secrets).unwrap_err();
            assert!(err.contains(words), "{input}: {err}");
        }
    }
}
