//! `[vm]`: virtual machines (thesis §5.2 "Managing Virtual Resources").
//! People answer three questions (hostname, flavor, image with an SSH
//! key); what a flavor and an image mean on the backend is said here.

use std::path::PathBuf;

use serde::Deserialize;
use serde_with::{DisplayFromStr, PickFirst, serde_as};

/// Which backend runs the VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// libvirt (QEMU/KVM), local or over `qemu+ssh://`: no external
    /// platform needed.
    Libvirt,
    /// An OpenStack cloud (Keystone v3, Nova, Glance).
    Openstack,
}

#[serde_as]
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VmConfig {
    pub backend: BackendKind,
    /// The presets people choose from.
    pub flavors: Vec<Flavor>,
    /// The images people choose from.
    pub images: Vec<Image>,
    /// Most vCPUs one VM may have; 0: the cores of the backend's largest
    /// host (the thesis's limit: no VM bigger than a node).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_vcpus_per_vm: u32,
    /// vCPUs of all of Bootler's VMs on the backend together; 0: no budget.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub vcpu_budget: u32,
    /// Per person (an account may say otherwise later); 0: no limit.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_instances_per_user: u32,
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_vcpus_per_user: u32,
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub max_memory_mib_per_user: u64,
    /// How long a new VM may take to run before creation fails (and what
    /// was made is removed), in seconds.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub create_timeout_seconds: u64,
    /// How often Bootler's record is compared with the backend (a VM
    /// deleted behind Bootler's back shows so), in seconds; 0: never.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    pub reconcile_seconds: u64,
    pub libvirt: LibvirtConfig,
    pub openstack: OpenStackConfig,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            backend: BackendKind::Libvirt,
            flavors: vec![
                Flavor::new("small", 1, 1024, 10),
                Flavor::new("medium", 2, 4096, 20),
                Flavor::new("large", 4, 8192, 40),
            ],
            images: Vec::new(),
            max_vcpus_per_vm: 0,
            vcpu_budget: 0,
            max_instances_per_user: 5,
            max_vcpus_per_user: 8,
            max_memory_mib_per_user: 16384,
            create_timeout_seconds: 600,
            reconcile_seconds: 60,
            libvirt: LibvirtConfig::default(),
            openstack: OpenStackConfig::default(),
        }
    }
}

impl VmConfig {
    /// Checks what cannot be right: the key and the reason.
    pub fn check(&self) -> Result<(), (String, String)> {
        let mut names = std::collections::BTreeSet::new();
        for flavor in &self.flavors {
            if crate::vms::instances::check_hostname(&flavor.name).as_deref()
                != Ok(flavor.name.as_str())
            {
                return Err((
                    "vm.flavors".into(),
                    format!(
                        "“{}” is not a flavor name (lower-case letters, digits, dashes)",
                        flavor.name
                    ),
                ));
            }
            if !names.insert(flavor.name.as_str()) {
                return Err((
                    "vm.flavors".into(),
                    format!("two flavors are named “{}”", flavor.name),
                ));
            }
            if flavor.vcpus == 0 || flavor.memory_mib < 64 || flavor.disk_gib == 0 {
                return Err((
                    "vm.flavors".into(),
                    format!(
                        "flavor “{}” needs at least 1 vCPU, 64 MiB of memory and 1 GiB of disk",
                        flavor.name
                    ),
                ));
            }
        }
        let mut images = std::collections::BTreeSet::new();
        for image in &self.images {
            if image.name.trim().is_empty() || image.reference.trim().is_empty() {
                return Err((
                    "vm.images".into(),
                    "every image needs a `name` and a `reference`".into(),
                ));
            }
            if !images.insert(image.name.as_str()) {
                return Err((
                    "vm.images".into(),
                    format!("two images are named “{}”", image.name),
                ));
            }
        }
        if self.create_timeout_seconds == 0 {
            return Err((
                "vm.create_timeout_seconds".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A preset of virtual hardware.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Flavor {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// What the backend calls it (OpenStack: a Nova flavor's name or id;
    /// default: `name`). libvirt builds the VM from the numbers above.
    #[serde(default)]
    pub reference: Option<String>,
}

impl Flavor {
    pub fn new(name: &str, vcpus: u32, memory_mib: u64, disk_gib: u64) -> Flavor {
        Flavor {
            name: name.into(),
            vcpus,
            memory_mib,
            disk_gib,
            reference: None,
        }
    }

    /// The backend's name for it.
    pub fn reference(&self) -> &str {
        self.reference.as_deref().unwrap_or(&self.name)
    }
}

/// An image people may start from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// What people see ("Debian 12").
    pub name: String,
    /// The backend's reference: libvirt, a base image file on the
    /// hypervisor host (qcow2 or raw; new disks are copy-on-write over it)
    /// or a volume `pool/volume`; OpenStack, a Glance image's name or id.
    pub reference: String,
    /// The user cloud-init creates, for the SSH command Bootler shows
    /// (`debian` on Debian's cloud images).
    #[serde(default)]
    pub login: Option<String>,
}

/// The libvirt backend.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LibvirtConfig {
    /// Connection URI: `qemu:///system`, `qemu+ssh://root@host/system`,
    /// or `test:///default` (libvirt's in-memory test driver).
    pub uri: String,
    /// The libvirt network VMs join (its DHCP leases give their address).
    pub network: String,
    /// The libvirt storage pool for VM disks and seeds (a `dir` pool);
    /// created at `pool_path` if missing.
    pub storage_pool: String,
    /// Where a missing storage pool is created (on the hypervisor host);
    /// default: `<data_dir>/vms` when libvirt runs on this machine.
    pub pool_path: Option<PathBuf>,
    /// The domain type: `kvm`, or `qemu` where there is no KVM (TCG).
    pub domain_type: String,
}

impl Default for LibvirtConfig {
    fn default() -> Self {
        LibvirtConfig {
            uri: "qemu:///system".into(),
            network: "default".into(),
            storage_pool: "bootler".into(),
            pool_path: None,
            domain_type: "kvm".into(),
        }
    }
}

/// The OpenStack backend. Empty fields come from the standard `OS_*`
/// variables, or from `clouds.yaml` when `cloud` is set.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenStackConfig {
    /// A cloud's name in `clouds.yaml` (`OS_CLOUD`).
    pub cloud: Option<String>,
    /// Keystone v3, e.g. `https://keystone.example.org:5000/v3` (`OS_AUTH_URL`).
    pub auth_url: Option<String>,
    /// Password authentication (`OS_USERNAME`, `OS_PASSWORD`,
    /// `OS_PROJECT_NAME`, `OS_USER_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_NAME`).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub project_name: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_domain_name: Option<String>,
    /// Application credentials (`OS_APPLICATION_CREDENTIAL_ID`,
    /// `OS_APPLICATION_CREDENTIAL_SECRET`), instead of a password.
    pub application_credential_id: Option<String>,
    pub application_credential_secret_file: Option<PathBuf>,
    /// `OS_REGION_NAME`.
    pub region: Option<String>,
    /// `public` (default), `internal` or `admin` endpoints.
    pub interface: Option<String>,
    /// The network servers join (a Neutron network's name or id); empty:
    /// the project's only network.
    pub network: Option<String>,
    /// Only Glance images whose name starts with this are offered when
    /// `vm.images` is empty.
    pub image_prefix: Option<String>,
}
