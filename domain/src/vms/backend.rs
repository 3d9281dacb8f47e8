//! The one small trait every VM backend implements (libvirt, OpenStack).
//! Calls may be slow (seconds): callers run them from jobs, never in a
//! request. Errors are sentences for people; whether trying again may
//! help is in the variant.

use async_trait::async_trait;
use serde::Serialize;

/// What Bootler asks a backend to build: the three answers, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// A name unique on the backend, made by Bootler
    /// (`bootler-<instance id>-<hostname>`): the libvirt domain's name, the
    /// Nova server's name.
    pub name: String,
    /// The guest's host name (cloud-init `local-hostname`).
    pub hostname: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// The flavor's backend reference (OpenStack: the Nova flavor).
    pub flavor: String,
    /// The image's backend reference (`[[vm.images]] reference`).
    pub image: String,
    /// One OpenSSH public key line, checked.
    pub ssh_key: String,
    /// The owner's username (OpenStack keypairs are per user:
    /// `bootler-<username>`).
    pub owner: String,
}

/// A VM as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// Being built (OpenStack `BUILD`).
    Building,
    Running,
    /// Shut off, paused or suspended.
    Stopped,
    /// The backend says it broke (OpenStack `ERROR`).
    Error,
    /// Not on the backend (any more).
    Missing,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Running => "running",
            VmState::Stopped => "stopped",
            VmState::Error => "error",
            VmState::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    pub state: VmState,
    /// IP addresses known for it (DHCP leases, the guest agent, Nova).
    pub addresses: Vec<String>,
    /// The backend's own word when `state` is `Error` (Nova's `fault`).
    pub fault: Option<String>,
}

/// What the backend can hold, for the limits and the admin view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Capacity {
    /// Cores of its largest host (libvirt: the host; OpenStack: the largest
    /// hypervisor if visible, else none).
    pub max_host_cores: Option<u32>,
    /// Cores and memory over all its hosts, if it says.
    pub total_cores: Option<u32>,
    pub total_memory_mib: Option<u64>,
    /// A line for administrators ("libvirt 9.0 at qemu:///system on h1").
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    /// The backend did not answer or was busy: trying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The backend refused (no such image, over its quota, bad
    /// credentials): the same request fails the same way.
    #[error("{0}")]
    Refused(String),
}

#[async_trait]
pub trait VmBackend: Send + Sync {
    /// `libvirt` or `openstack`.
    fn kind(&self) -> &'static str;

    /// Builds the VM and starts it; returns the backend's id for it. On
    /// failure it leaves nothing behind (disk, seed, domain, server).
    async fn create(&self, spec: &VmSpec) -> Result<String, VmError>;

    /// Where it stands; `Missing` (not an error) when it is gone.
    async fn status(&self, id: &str) -> Result<VmStatus, VmError>;

    async fn start(&self, id: &str) -> Result<(), VmError>;

    /// Powers it off (a guest that ignores the ACPI request within a short
    /// time is stopped hard).
    async fn stop(&self, id: &str) -> Result<(), VmError>;

    /// Removes it and its storage. `Ok` when it is already gone.
    async fn destroy(&self, id: &str) -> Result<(), VmError>;

    async fn capacity(&self) -> Result<Capacity, VmError>;

    /// Removes what may be left of a VM Bootler named `name` once the VM
    /// itself is gone (libvirt: its disk and seed volumes, when someone
    /// removed the domain but not its storage). Nothing to do by default.
    async fn forget(&self, _name: &str) -> Result<(), VmError> {
        Ok(())
    }

    /// The images it offers when `vm.images` is empty (OpenStack: Glance,
    /// filtered); libvirt offers none of its own.
    async fn images(&self) -> Result<Vec<crate::vms::config::Image>, VmError> {
        Ok(Vec::new())
    }
}
