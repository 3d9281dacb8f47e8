//! Power control (thesis §5.1): what Bootler changes takes effect at the
//! next boot, so the holder starts or restarts the node from here. Each
//! host has one or more drivers, tried in order (IPMI first, Wake-on-LAN
//! as the fallback); each driver says what it can do.

pub mod ipmi;
pub mod sealed;
pub mod settings;
pub mod wol;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a person asks of a node's power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    /// Chassis power on.
    On,
    /// Chassis power off (hard).
    Off,
    /// Power cycle: off, then on (on if it was off).
    Cycle,
    /// Ask the operating system to shut down (ACPI soft off).
    Soft,
    /// Wake-on-LAN's magic packet.
    Wake,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Cycle => "cycle",
            PowerAction::Soft => "soft",
            PowerAction::Wake => "wake",
        }
    }

    pub fn parse(text: &str) -> Option<PowerAction> {
        Some(match text {
            "on" => PowerAction::On,
            "off" => PowerAction::Off,
            "cycle" => PowerAction::Cycle,
            "soft" => PowerAction::Soft,
            "wake" => PowerAction::Wake,
            _ => return None,
        })
    }

    /// Whether the action powers the node on (what the per-pool rate limit
    /// counts).
    pub fn starts(self) -> bool {
        matches!(
            self,
            PowerAction::On | PowerAction::Cycle | PowerAction::Wake
        )
    }
}

/// A node's power as a driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        }
    }
}

/// Why a driver could not do what was asked, in a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowerError {
    /// No answer in time, or the network refused: may work later.
    #[error("{0}")]
    Unreachable(String),
    /// The controller said no (wrong user or password, too little
    /// privilege, a command it refuses): will fail the same way again.
    #[error("{0}")]
    Refused(String),
    /// This driver cannot do that (Wake-on-LAN cannot power off).
    #[error("{0}")]
    Unsupported(String),
}

/// One way to reach a node's power.
#[async_trait]
pub trait PowerDriver: Send + Sync {
    /// For people: "IPMI at 10.0.0.5:623", "Wake-on-LAN to 10.0.0.255:9".
    fn describe(&self) -> String;

    /// Whether [`PowerDriver::act`] can do `action` at all.
    fn can(&self, action: PowerAction) -> bool;

    /// Sends the action. `Ok` means the controller accepted it ("sent"),
    /// not that the node is in the new state yet.
    async fn act(&self, action: PowerAction) -> Result<(), PowerError>;

    /// Reads the power state; `Ok(None)` when this driver cannot read it.
    async fn state(&self) -> Result<Option<PowerState>, PowerError>;

    /// Boots from the network once, at the next boot. `Ok(false)` when
    /// this driver cannot.
    async fn pxe_once(&self) -> Result<bool, PowerError>;
}
