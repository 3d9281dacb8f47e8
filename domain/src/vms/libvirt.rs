//! The libvirt backend: VMs as libvirt domains on one host, local
//! (`qemu:///system`) or remote (`qemu+ssh://…`), with their disks in a
//! libvirt storage pool.
//!
//! A VM is three things: a qcow2 disk that is copy-on-write over the
//! image (`<name>.qcow2`), a cloud-init NoCloud seed (`<name>-seed.iso`,
//! see [`crate::vms::seed`]) uploaded through libvirt (so a remote host
//! needs nothing else), both in the pool `storage_pool`, and a persistent
//! domain named after the VM whose `<metadata>` holds Bootler's record of
//! it (namespace [`METADATA_URI`]: name, hostname, owner, flavor, image,
//! pool, disk and seed volumes, creation time). Bootler's id for the VM is
//! the domain's UUID.
//!
//! libvirt's calls block, so each runs in `spawn_blocking`. One connection
//! is kept and shared; when it has died the next call opens a new one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::{Error as VirtError, ErrorNumber};
use virt::network::Network;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

use crate::vms::backend::{Capacity, VmBackend, VmError, VmSpec, VmState, VmStatus};
use crate::vms::config::LibvirtConfig;
use crate::vms::seed::seed_iso;

/// The XML namespace of Bootler's `<metadata>` element in a domain.
pub const METADATA_URI: &str = "urn:bootler:vm:1";
/// The prefix the element is written with (`<bootler:vm …>`).
const METADATA_PREFIX: &str = "bootler";
const GIB: u64 = 1 << 30;

/// How long `stop` waits for the guest to obey the ACPI power button.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct LibvirtBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: LibvirtConfig,
    /// Where a missing storage pool is made.
    pool_path: PathBuf,
    /// How long `stop` waits, in milliseconds.
    stop_grace_ms: AtomicU64,
    connection: Mutex<Option<Conn>>,
    /// Defining the pool and looking at image folders, one at a time.
    pools: Mutex<()>,
}

/// A connection reference, closed when dropped (virt's `Connect` is not).
struct Conn(Connect);

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

impl std::ops::Deref for Conn {
    type Target = Connect;

    fn deref(&self) -> &Connect {
        &self.0
    }
}

/// Bootler's record of a VM in the domain's `<metadata>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmMetadata {
    pub name: String,
    pub hostname: String,
    pub owner: String,
    pub flavor: String,
    pub image: String,
    pub pool: String,
    pub disk: String,
    pub seed: String,
    /// RFC 3339.
    pub created: String,
}

impl VmMetadata {
    const FIELDS: [&'static str; 9] = [
        "name", "hostname", "owner", "flavor", "image", "pool", "disk", "seed", "created",
    ];

    fn values(&self) -> [&str; 9] {
        [
            &self.name,
            &self.hostname,
            &self.owner,
            &self.flavor,
            &self.image,
            &self.pool,
            &self.disk,
            &self.seed,
            &self.created,
        ]
    }

    /// The `<metadata>` child element.
    pub fn to_xml(&self) -> String {
        let mut xml = format!("<{METADATA_PREFIX}:vm xmlns:{METADATA_PREFIX}='{METADATA_URI}'>");
        for (field, value) in Self::FIELDS.iter().zip(self.values()) {
            xml.push_str(&format!(
                "<{METADATA_PREFIX}:{field}>{}</{METADATA_PREFIX}:{field}>",
                escape(value)
            ));
        }
        xml.push_str(&format!("</{METADATA_PREFIX}:vm>"));
        xml
    }

    /// Reads what libvirt gives back for [`METADATA_URI`] (it writes the
    /// element with or without the prefix).
    pub fn from_xml(xml: &str) -> Option<VmMetadata> {
        let field = |name: &str| element_text(xml, name).unwrap_or_default();
        let metadata = VmMetadata {
            name: field("name"),
            hostname: field("hostname"),
            owner: field("owner"),
            flavor: field("flavor"),
            image: field("image"),
            pool: field("pool"),
            disk: field("disk"),
            seed: field("seed"),
            created: field("created"),
        };
        (!metadata.name.is_empty()).then_some(metadata)
    }
}

impl LibvirtBackend {
    /// `default_pool_path`: where the storage pool is made when it is
    /// missing and `config.pool_path` is not set.
    pub fn new(config: LibvirtConfig, default_pool_path: PathBuf) -> LibvirtBackend {
        // libvirt prints every error on stderr unless told otherwise; the
        // errors reach people through `VmError`.
        virt::error::clear_error_callback();
        let pool_path = config.pool_path.clone().unwrap_or(default_pool_path);
        LibvirtBackend {
            inner: Arc::new(Inner {
                config,
                pool_path,
                stop_grace_ms: AtomicU64::new(STOP_GRACE.as_millis() as u64),
                connection: Mutex::new(None),
                pools: Mutex::new(()),
            }),
        }
    }

    /// How long `stop` waits for the guest to power off before it is
    /// stopped hard (default 10 s).
    pub fn with_stop_grace(self, grace: Duration) -> LibvirtBackend {
        let millis = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.inner.stop_grace_ms.store(millis, Ordering::Relaxed);
        self
    }

    /// Bootler's record in the domain with this UUID (`None` when the
    /// domain is gone or has none).
    pub async fn metadata(&self, id: &str) -> Result<Option<VmMetadata>, VmError> {
        let id = id.to_string();
        self.blocking(true, move |inner, conn| {
            let Some(domain) = inner.lookup(conn, &id)? else {
                return Ok(None);
            };
            Ok(read_metadata(&domain))
        })
        .await
    }

    /// Runs `f` with the connection in `spawn_blocking`. When it fails
    /// and the connection turns out to be dead (libvirtd restarted, the
    /// SSH link broke), the error is `Unavailable`, the connection is
    /// dropped, and a call that may be repeated (`again`) is tried once
    /// more on a new connection.
    async fn blocking<T, F>(&self, again: bool, f: F) -> Result<T, VmError>
    where
        T: Send + 'static,
        F: Fn(&Inner, &Conn) -> Result<T, VmError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut tries = if again { 2 } else { 1 };
            loop {
                tries -= 1;
                let conn = inner.connect()?;
                let result = f(&inner, &conn);
                let Err(error) = result else {
                    return result;
                };
                if conn.is_alive().unwrap_or(false) {
                    return Err(error);
                }
                inner.forget_connection();
                if tries == 0 {
                    return Err(match error {
                        VmError::Refused(message) => VmError::Unavailable(message),
                        unavailable => unavailable,
                    });
                }
                tracing::info!(uri = %inner.uri(), %error, "the connection to libvirt broke; trying again on a new one");
            }
        })
        .await
        .map_err(|e| {
            VmError::Unavailable(format!("The call to libvirt stopped unexpectedly: {e}"))
        })?
    }
}

impl Inner {
    fn uri(&self) -> &str {
        &self.config.uri
    }

    fn cached(&self) -> MutexGuard<'_, Option<Conn>> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shared connection (opened, or opened again, when needed).
    fn connect(&self) -> Result<Conn, VmError> {
        let mut cached = self.cached();
        if let Some(conn) = cached.as_ref() {
            if conn.is_alive().unwrap_or(false) {
                return Ok(Conn(conn.0.clone()));
            }
            *cached = None;
        }
        if self.uri().contains('\0') {
            return Err(VmError::Refused(format!(
                "{:?} is not a libvirt URI (vm.libvirt.uri).",
                self.uri()
            )));
        }
        let conn = Connect::open(Some(self.uri())).map_err(|e| {
            VmError::Unavailable(format!(
                "libvirt at {} does not answer: {}",
                self.uri(),
                e.message()
            ))
        })?;
        let shared = Conn(conn.clone());
        *cached = Some(Conn(conn));
        Ok(shared)
    }

    fn forget_connection(&self) {
        *self.cached() = None;
    }

    fn unavailable(&self, e: &VirtError) -> VmError {
        VmError::Unavailable(format!(
            "libvirt at {} does not answer: {}",
            self.uri(),
            e.message()
        ))
    }

    /// A libvirt error as a sentence: `what` says what failed.
    fn error(&self, what: &str, e: &VirtError) -> VmError {
        if is_transient(e) {
            self.unavailable(e)
        } else {
            VmError::Refused(format!(
                "{what} (libvirt at {}): {}",
                self.uri(),
                e.message()
            ))
        }
    }

    /// The domain with this UUID, or `None` when there is none.
    fn lookup(&self, conn: &Connect, id: &str) -> Result<Option<Domain>, VmError> {
        // (virt panics on a NUL in a string it passes on.)
        if id.contains('\0') {
            return Ok(None);
        }
        match Domain::lookup_by_uuid_string(conn, id) {
            Ok(domain) => Ok(Some(domain)),
            // Not a UUID at all: no such domain either.
            Err(e) if matches!(e.code(), ErrorNumber::NoDomain | ErrorNumber::InvalidArg) => {
                Ok(None)
            }
            Err(e) => Err(self.error("Bootler could not look the VM up", &e)),
        }
    }

    fn existing(&self, conn: &Connect, id: &str) -> Result<Domain, VmError> {
        self.lookup(conn, id)?.ok_or_else(|| {
            VmError::Refused(format!(
                "The VM {id} does not exist on libvirt at {} (any more).",
                self.uri()
            ))
        })
    }

    /// The storage pool, defined (a `dir` pool at `pool_path`), built,
    /// started and set to start with the host when it is missing.
    fn ensure_pool(&self, conn: &Connect) -> Result<StoragePool, VmError> {
        let _one_at_a_time = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let name = &self.config.storage_pool;
        let pool = match StoragePool::lookup_by_name(conn, name) {
            Ok(pool) => pool,
            Err(e) if e.code() == ErrorNumber::NoStoragePool => {
                let xml = format!(
                    "<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>",
                    escape(name),
                    escape(&self.pool_path.to_string_lossy())
                );
                match StoragePool::define_xml(conn, &xml, 0) {
                    Ok(pool) => {
                        tracing::info!(pool = %name, path = %self.pool_path.display(), "defined the libvirt storage pool");
                        pool.build(0).map_err(|e| {
                            let _ = pool.undefine();
                            self.error(
                                &format!(
                                    "Bootler could not make the folder {} of the storage pool {name}",
                                    self.pool_path.display()
                                ),
                                &e,
                            )
                        })?;
                        let _ = pool.set_autostart(true);
                        pool
                    }
                    // Someone else defined it meanwhile.
                    Err(define) => StoragePool::lookup_by_name(conn, name).map_err(|_| {
                        self.error(
                            &format!("Bootler could not define the storage pool {name}"),
                            &define,
                        )
                    })?,
                }
            }
            Err(e) => {
                return Err(self.error(
                    &format!("Bootler could not look up the storage pool {name}"),
                    &e,
                ));
            }
        };
        if !pool.is_active().unwrap_or(false) {
            pool.create(0).map_err(|e| {
                self.error(
                    &format!("Bootler could not start the storage pool {name}"),
                    &e,
                )
            })?;
        }
        Ok(pool)
    }

    /// Where the image is and in which format: a file on the host or a
    /// volume `pool/volume`.
    fn base_image(&self, conn: &Connect, image: &str) -> Result<BaseImage, VmError> {
        if image.starts_with('/') {
            return self.base_image_file(conn, image);
        }
        let Some((pool_name, volume)) = image.split_once('/') else {
            return Err(VmError::Refused(format!(
                "The image reference {image} is neither an absolute file path nor pool/volume."
            )));
        };
        let pool = match StoragePool::lookup_by_name(conn, pool_name) {
            Ok(pool) => pool,
            Err(e) if e.code() == ErrorNumber::NoStoragePool => {
                return Err(VmError::Refused(format!(
                    "The storage pool {pool_name} of the image {image} does not exist on libvirt at {}.",
                    self.uri()
                )));
            }
            Err(e) => return Err(self.error("Bootler could not look the image up", &e)),
        };
        if !pool.is_active().unwrap_or(false) {
            return Err(VmError::Refused(format!(
                "The storage pool {pool_name} of the image {image} is not running on libvirt at {}.",
                self.uri()
            )));
        }
        let _ = pool.refresh(0);
        match StorageVol::lookup_by_name(&pool, volume) {
            Ok(vol) => self.base_from_volume(image, &vol),
            Err(e) if e.code() == ErrorNumber::NoStorageVolume => Err(VmError::Refused(format!(
                "The base image volume {volume} does not exist in the storage pool {pool_name} on libvirt at {}.",
                self.uri()
            ))),
            Err(e) => Err(self.error("Bootler could not look the image up", &e)),
        }
    }

    /// A file on the hypervisor host. libvirt knows a file's format only
    /// as a volume of a pool: the pool over its folder, or a transient one
    /// made for the look and removed after it.
    fn base_image_file(&self, conn: &Connect, path: &str) -> Result<BaseImage, VmError> {
        let missing = || {
            VmError::Refused(format!(
                "The base image {path} does not exist on the hypervisor host."
            ))
        };
        if let Ok(vol) = StorageVol::lookup_by_path(conn, path) {
            return self.base_from_volume(path, &vol);
        }
        let dir = Path::new(path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .ok_or_else(missing)?;
        let _one_at_a_time = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let look = |pool: &StoragePool| -> Result<BaseImage, VmError> {
            let _ = pool.refresh(0);
            match StorageVol::lookup_by_path(conn, path) {
                Ok(vol) => self.base_from_volume(path, &vol),
                Err(e) if is_transient(&e) => Err(self.unavailable(&e)),
                Err(_) => Err(missing()),
            }
        };
        if let Ok(pool) = StoragePool::lookup_by_target_path(conn, &dir) {
            if !pool.is_active().unwrap_or(false) {
                return Err(VmError::Refused(format!(
                    "The base image {path} is in the folder of the storage pool {}, which is not running on libvirt at {}.",
                    pool.get_name().unwrap_or_default(),
                    self.uri()
                )));
            }
            return look(&pool);
        }
        let mut suffix = [0u8; 4];
        let _ = getrandom::fill(&mut suffix);
        let name = format!(
            "bootler-image-{}-{}",
            &hex::encode(Sha256::digest(dir.as_bytes()))[..12],
            hex::encode(suffix)
        );
        let xml = format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            escape(&dir)
        );
        let pool = match StoragePool::create_xml(conn, &xml, 0) {
            Ok(pool) => pool,
            Err(e) if is_transient(&e) => return Err(self.unavailable(&e)),
            // The folder is missing, or another pool took it meanwhile.
            Err(_) => {
                return match StoragePool::lookup_by_target_path(conn, &dir) {
                    Ok(pool) => look(&pool),
                    Err(_) => Err(missing()),
                };
            }
        };
        let found = look(&pool);
        // A transient pool is gone once stopped (the files stay).
        let _ = pool.destroy();
        found
    }

    fn base_from_volume(&self, image: &str, vol: &StorageVol) -> Result<BaseImage, VmError> {
        let read =
            |e: VirtError| self.error(&format!("Bootler could not read the image {image}"), &e);
        let path = vol.get_path().map_err(read)?;
        let xml = vol.get_xml_desc(0).map_err(read)?;
        let capacity = vol.get_info().map(|info| info.capacity).ok();
        let format = section(&xml, "target")
            .and_then(|target| attribute(target, "format", "type"))
            .unwrap_or_else(|| "raw".into());
        let format = match format.as_str() {
            // An ISO image is read as it is.
            "iso" | "none" | "" => "raw".to_string(),
            "dir" => {
                return Err(VmError::Refused(format!(
                    "The base image {image} is a folder, not a disk image."
                )));
            }
            other => other.to_string(),
        };
        Ok(BaseImage {
            path,
            format,
            capacity,
        })
    }

    fn create(&self, conn: &Connect, spec: &VmSpec) -> Result<String, VmError> {
        check_spec(spec, &self.config)?;
        match Domain::lookup_by_name(conn, &spec.name) {
            Ok(_) => {
                return Err(VmError::Refused(format!(
                    "A VM named {} already exists on libvirt at {}.",
                    spec.name,
                    self.uri()
                )));
            }
            Err(e) if e.code() == ErrorNumber::NoDomain => {}
            Err(e) => return Err(self.error("Bootler could not look the VM up", &e)),
        }
        let network = &self.config.network;
        match Network::lookup_by_name(conn, network) {
            Ok(net) if net.is_active().unwrap_or(false) => {}
            Ok(_) => {
                return Err(VmError::Refused(format!(
                    "The network {network} is not running on libvirt at {}; an administrator can start it (virsh net-start {network}).",
                    self.uri()
                )));
            }
            Err(e) if e.code() == ErrorNumber::NoNetwork => {
                return Err(VmError::Refused(format!(
                    "The network {network} does not exist on libvirt at {}.",
                    self.uri()
                )));
            }
            Err(e) => return Err(self.error("Bootler could not look the network up", &e)),
        }
        let base = self.base_image(conn, &spec.image)?;
        let disk_bytes = spec.disk_gib.saturating_mul(GIB);
        if let Some(needed) = base.capacity
            && needed > disk_bytes
        {
            return Err(VmError::Refused(format!(
                "The image {} needs a disk of at least {} GiB; the flavor {} has {} GiB.",
                spec.image,
                needed.div_ceil(GIB),
                spec.flavor,
                spec.disk_gib
            )));
        }
        let pool = self.ensure_pool(conn)?;
        let mut made = Made::default();
        let result = self.build(conn, spec, &pool, &base, &mut made);
        if result.is_err() {
            self.undo(made);
        }
        result
    }

    /// The volumes and the domain; what was made is in `made` for undoing.
    fn build(
        &self,
        conn: &Connect,
        spec: &VmSpec,
        pool: &StoragePool,
        base: &BaseImage,
        made: &mut Made,
    ) -> Result<String, VmError> {
        let pool_name = self.config.storage_pool.clone();
        let disk_name = format!("{}.qcow2", spec.name);
        let seed_name = format!("{}-seed.iso", spec.name);
        // Volumes of this name with no domain are left from an attempt
        // that did not finish (the names are Bootler's): remove them.
        let _ = pool.refresh(0);
        for name in [&disk_name, &seed_name] {
            if let Ok(vol) = StorageVol::lookup_by_name(pool, name) {
                tracing::warn!(volume = %name, pool = %pool_name, "removing a volume left from an earlier attempt");
                vol.delete(0).map_err(|e| {
                    self.error(
                        &format!("Bootler could not remove the old volume {name} from the storage pool {pool_name}"),
                        &e,
                    )
                })?;
            }
        }

        let disk_xml = format!(
            "<volume type='file'><name>{}</name><capacity unit='bytes'>{}</capacity>\
             <target><format type='qcow2'/></target>\
             <backingStore><path>{}</path><format type='{}'/></backingStore></volume>",
            escape(&disk_name),
            spec.disk_gib.saturating_mul(GIB),
            escape(&base.path),
            escape(&base.format)
        );
        let disk = StorageVol::create_xml(pool, &disk_xml, 0).map_err(|e| {
            if e.code() == ErrorNumber::SystemError {
                VmError::Refused(format!(
                    "The base image {} cannot be used on the hypervisor host: {}",
                    spec.image,
                    e.message()
                ))
            } else {
                self.error(&format!("Bootler could not make the disk {disk_name}"), &e)
            }
        })?;
        let disk_path = disk
            .get_path()
            .map_err(|e| self.error("Bootler could not read the new disk", &e))?;
        made.disk = Some(disk);

        let iso = seed_iso(&meta_data(spec), &user_data(spec)).map_err(VmError::Refused)?;
        let seed_xml = format!(
            "<volume type='file'><name>{}</name><capacity unit='bytes'>{}</capacity>\
             <target><format type='raw'/></target></volume>",
            escape(&seed_name),
            iso.len()
        );
        let seed = StorageVol::create_xml(pool, &seed_xml, 0)
            .map_err(|e| self.error(&format!("Bootler could not make the seed {seed_name}"), &e))?;
        let seed_path = seed
            .get_path()
            .map_err(|e| self.error("Bootler could not read the new seed volume", &e))?;
        made.seed = Some(seed.clone());
        self.upload(conn, &seed, &iso).map_err(|e| {
            self.error(
                &format!("Bootler could not upload the seed {seed_name}"),
                &e,
            )
        })?;

        let metadata = VmMetadata {
            name: spec.name.clone(),
            hostname: spec.hostname.clone(),
            owner: spec.owner.clone(),
            flavor: spec.flavor.clone(),
            image: spec.image.clone(),
            pool: pool_name,
            disk: disk_name,
            seed: seed_name,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let xml = domain_xml(spec, &self.config, &metadata, &disk_path, &seed_path);
        let domain = Domain::define_xml(conn, &xml).map_err(|e| {
            self.error(
                &format!("Bootler could not define the VM {}", spec.name),
                &e,
            )
        })?;
        made.domain = Some(domain.clone());
        domain
            .create()
            .map_err(|e| self.error(&format!("The VM {} did not start", spec.name), &e))?;
        domain
            .get_uuid_string()
            .map_err(|e| self.error("Bootler could not read the new VM's UUID", &e))
    }

    /// Writes `data` into the volume through a libvirt stream (works the
    /// same on a remote host).
    fn upload(&self, conn: &Connect, vol: &StorageVol, data: &[u8]) -> Result<(), VirtError> {
        let stream = Stream::new(conn, 0)?;
        if let Err(e) = vol.upload(&stream, 0, data.len() as u64, 0) {
            let _ = stream.abort();
            return Err(e);
        }
        let mut sent = 0;
        while sent < data.len() {
            match stream.send(&data[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) => {
                    let _ = stream.abort();
                    return Err(e);
                }
            }
        }
        stream.finish()
    }

    /// Removes what a failed create made (domain, then volumes).
    fn undo(&self, made: Made) {
        if let Some(domain) = made.domain {
            if domain.is_active().unwrap_or(false) {
                let _ = domain.destroy();
            }
            if let Err(e) = undefine(&domain) {
                tracing::warn!(error = %e, "could not undefine a VM that failed to be created");
            }
        }
        for vol in [made.seed, made.disk].into_iter().flatten() {
            if let Err(e) = vol.delete(0) {
                tracing::warn!(error = %e, "could not remove a volume of a VM that failed to be created");
            }
        }
    }

    fn status(&self, conn: &Connect, id: &str) -> Result<VmStatus, VmError> {
        let Some(domain) = self.lookup(conn, id)? else {
            return Ok(VmStatus {
                state: VmState::Missing,
                addresses: Vec::new(),
                fault: None,
            });
        };
        let (state, reason) = match domain.get_state() {
            Ok(state) => state,
            Err(e) if e.code() == ErrorNumber::NoDomain => {
                return Ok(VmStatus {
                    state: VmState::Missing,
                    addresses: Vec::new(),
                    fault: None,
                });
            }
            Err(e) => return Err(self.error("Bootler could not read the VM's state", &e)),
        };
        let (state, fault) = vm_state(state, reason);
        let addresses = if matches!(state, VmState::Running) {
            addresses(&domain)
        } else {
            Vec::new()
        };
        Ok(VmStatus {
            state,
            addresses,
            fault,
        })
    }

    fn start(&self, conn: &Connect, id: &str) -> Result<(), VmError> {
        let domain = self.existing(conn, id)?;
        let (state, _) = domain
            .get_state()
            .map_err(|e| self.error("Bootler could not read the VM's state", &e))?;
        let started = match state {
            sys::VIR_DOMAIN_PAUSED => domain.resume().map(|_| ()),
            sys::VIR_DOMAIN_PMSUSPENDED => domain.pm_wakeup(0).map(|_| ()),
            sys::VIR_DOMAIN_SHUTOFF | sys::VIR_DOMAIN_CRASHED | sys::VIR_DOMAIN_NOSTATE => {
                domain.create().map(|_| ())
            }
            _ => Ok(()),
        };
        match started {
            Ok(()) => Ok(()),
            // Started meanwhile.
            Err(e)
                if e.code() == ErrorNumber::OperationInvalid
                    && domain.is_active().unwrap_or(false) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error("The VM did not start", &e)),
        }
    }

    fn stop(&self, conn: &Connect, id: &str) -> Result<(), VmError> {
        let domain = self.existing(conn, id)?;
        if !domain.is_active().unwrap_or(false) {
            return Ok(());
        }
        let paused = matches!(
            domain.get_state(),
            Ok((sys::VIR_DOMAIN_PAUSED | sys::VIR_DOMAIN_PMSUSPENDED, _))
        );
        if !paused {
            let asked = match domain.shutdown_flags(sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) {
                Ok(_) => Ok(()),
                // Drivers without the ACPI choice pick their own way.
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorNumber::InvalidArg
                            | ErrorNumber::ArgumentUnsupported
                            | ErrorNumber::NoSupport
                    ) =>
                {
                    domain.shutdown().map(|_| ())
                }
                Err(e) => Err(e),
            };
            match asked {
                Ok(()) => {
                    let grace = Duration::from_millis(self.stop_grace_ms.load(Ordering::Relaxed));
                    let deadline = Instant::now() + grace;
                    while Instant::now() < deadline {
                        if !domain.is_active().unwrap_or(true) {
                            return Ok(());
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    tracing::info!(vm = %id, ?grace, "the VM did not power off in time; stopping it hard");
                }
                Err(e) if !domain.is_active().unwrap_or(true) => {
                    tracing::debug!(error = %e, "the VM stopped while being asked to");
                    return Ok(());
                }
                Err(e) if is_transient(&e) => return Err(self.unavailable(&e)),
                Err(e) => {
                    tracing::info!(vm = %id, error = %e, "the VM refused the power button; stopping it hard")
                }
            }
        }
        match domain.destroy() {
            Ok(()) => Ok(()),
            Err(_) if !domain.is_active().unwrap_or(true) => Ok(()),
            Err(e) => Err(self.error("Bootler could not stop the VM", &e)),
        }
    }

    fn destroy(&self, conn: &Connect, id: &str) -> Result<(), VmError> {
        let Some(domain) = self.lookup(conn, id)? else {
            return Ok(());
        };
        let name = domain.get_name().unwrap_or_default();
        let metadata = read_metadata(&domain);
        if domain.is_active().unwrap_or(false)
            && let Err(e) = domain.destroy()
            && domain.is_active().unwrap_or(true)
        {
            return Err(self.error("Bootler could not stop the VM", &e));
        }
        match undefine(&domain) {
            Ok(()) => {}
            Err(e) if e.code() == ErrorNumber::NoDomain => {}
            Err(e) => return Err(self.error("Bootler could not remove the VM", &e)),
        }
        // Its volumes, as its record names them (or as Bootler names them).
        let (pool_name, volumes) = match metadata {
            Some(m) => (m.pool, vec![m.disk, m.seed]),
            None => (
                self.config.storage_pool.clone(),
                vec![format!("{name}.qcow2"), format!("{name}-seed.iso")],
            ),
        };
        let pool = match StoragePool::lookup_by_name(conn, &pool_name) {
            Ok(pool) => pool,
            Err(e) if e.code() == ErrorNumber::NoStoragePool => return Ok(()),
            Err(e) => return Err(self.error("Bootler could not find the VM's storage pool", &e)),
        };
        for volume in volumes.iter().filter(|v| !v.is_empty()) {
            match StorageVol::lookup_by_name(&pool, volume) {
                Ok(vol) => vol.delete(0).map_err(|e| {
                    self.error(
                        &format!("Bootler could not remove the volume {volume} from the storage pool {pool_name}"),
                        &e,
                    )
                })?,
                Err(e) if e.code() == ErrorNumber::NoStorageVolume => {}
                Err(e) => return Err(self.error("Bootler could not find the VM's volumes", &e)),
            }
        }
        Ok(())
    }

    /// Removes the volumes Bootler made for a VM named `name` whose domain
    /// is gone; a domain of that name still there keeps them.
    fn forget(&self, conn: &Connect, name: &str) -> Result<(), VmError> {
        if Domain::lookup_by_name(conn, name).is_ok() {
            return Ok(());
        }
        let pool_name = self.config.storage_pool.clone();
        let pool = match StoragePool::lookup_by_name(conn, &pool_name) {
            Ok(pool) => pool,
            Err(e) if e.code() == ErrorNumber::NoStoragePool => return Ok(()),
            Err(e) => return Err(self.error("Bootler could not find its storage pool", &e)),
        };
        let _ = pool.refresh(0);
        for volume in [format!("{name}.qcow2"), format!("{name}-seed.iso")] {
            match StorageVol::lookup_by_name(&pool, &volume) {
                Ok(vol) => vol.delete(0).map_err(|e| {
                    self.error(
                        &format!("Bootler could not remove the volume {volume} from the storage pool {pool_name}"),
                        &e,
                    )
                })?,
                Err(e) if e.code() == ErrorNumber::NoStorageVolume => {}
                Err(e) => return Err(self.error("Bootler could not find the VM's volumes", &e)),
            }
        }
        Ok(())
    }

    fn capacity(&self, conn: &Connect) -> Result<Capacity, VmError> {
        let node = conn
            .get_node_info()
            .map_err(|e| self.error("Bootler could not read the host's size", &e))?;
        let version = conn
            .get_lib_version()
            .map(|v| format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000))
            .unwrap_or_else(|_| "(unknown version)".into());
        let host = conn.get_hostname().unwrap_or_default();
        let memory_mib = node.memory / 1024;
        Ok(Capacity {
            max_host_cores: Some(node.cpus),
            total_cores: Some(node.cpus),
            total_memory_mib: Some(memory_mib),
            description: format!(
                "libvirt {version} at {}{}: {} CPUs, {} MiB memory",
                self.uri(),
                if host.is_empty() {
                    String::new()
                } else {
                    format!(" on {host}")
                },
                node.cpus,
                memory_mib
            ),
        })
    }
}

struct BaseImage {
    path: String,
    /// libvirt's name for its format (`qcow2`, `raw`).
    format: String,
    /// Its virtual size in bytes, when libvirt knows it.
    capacity: Option<u64>,
}

/// What create made so far.
#[derive(Default)]
struct Made {
    disk: Option<StorageVol>,
    seed: Option<StorageVol>,
    domain: Option<Domain>,
}

#[async_trait]
impl VmBackend for LibvirtBackend {
    fn kind(&self) -> &'static str {
        "libvirt"
    }

    async fn create(&self, spec: &VmSpec) -> Result<String, VmError> {
        let spec = spec.clone();
        self.blocking(false, move |inner, conn| inner.create(conn, &spec))
            .await
    }

    async fn status(&self, id: &str) -> Result<VmStatus, VmError> {
        let id = id.to_string();
        self.blocking(true, move |inner, conn| inner.status(conn, &id))
            .await
    }

    async fn start(&self, id: &str) -> Result<(), VmError> {
        let id = id.to_string();
        self.blocking(true, move |inner, conn| inner.start(conn, &id))
            .await
    }

    async fn stop(&self, id: &str) -> Result<(), VmError> {
        let id = id.to_string();
        self.blocking(true, move |inner, conn| inner.stop(conn, &id))
            .await
    }

    async fn destroy(&self, id: &str) -> Result<(), VmError> {
        let id = id.to_string();
        self.blocking(true, move |inner, conn| inner.destroy(conn, &id))
            .await
    }

    async fn capacity(&self) -> Result<Capacity, VmError> {
        self.blocking(true, |inner, conn| inner.capacity(conn))
            .await
    }

    async fn forget(&self, name: &str) -> Result<(), VmError> {
        let name = name.to_string();
        self.blocking(true, move |inner, conn| inner.forget(conn, &name))
            .await
    }
}

/// Whether trying again later may help: the connection or the daemon.
fn is_transient(e: &VirtError) -> bool {
    matches!(
        e.code(),
        ErrorNumber::NoConnect
            | ErrorNumber::InvalidConn
            | ErrorNumber::Rpc
            | ErrorNumber::OperationTimeout
            | ErrorNumber::ResourceBusy
            | ErrorNumber::AgentUnresponsive
            | ErrorNumber::NoServer
            | ErrorNumber::AuthUnavailable
    )
}

/// Undefines a domain with whatever it may carry (managed save image,
/// snapshots, checkpoints, NVRAM); drivers that know none of these flags
/// get a plain undefine.
fn undefine(domain: &Domain) -> Result<(), VirtError> {
    let flags = sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        | sys::VIR_DOMAIN_UNDEFINE_NVRAM;
    match domain.undefine_flags(flags) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.code(),
                ErrorNumber::InvalidArg | ErrorNumber::ArgumentUnsupported | ErrorNumber::NoSupport
            ) =>
        {
            domain.undefine()
        }
        Err(e) => Err(e),
    }
}

fn read_metadata(domain: &Domain) -> Option<VmMetadata> {
    domain
        .get_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(METADATA_URI),
            0,
        )
        .ok()
        .and_then(|xml| VmMetadata::from_xml(&xml))
}

/// Bootler's state for a libvirt state and its reason.
fn vm_state(state: sys::virDomainState, reason: i32) -> (VmState, Option<String>) {
    match state {
        sys::VIR_DOMAIN_RUNNING | sys::VIR_DOMAIN_BLOCKED | sys::VIR_DOMAIN_SHUTDOWN => {
            (VmState::Running, None)
        }
        sys::VIR_DOMAIN_PAUSED | sys::VIR_DOMAIN_PMSUSPENDED => (VmState::Stopped, None),
        sys::VIR_DOMAIN_SHUTOFF => match u32::try_from(reason) {
            Ok(sys::VIR_DOMAIN_SHUTOFF_CRASHED) => {
                (VmState::Error, Some("The VM crashed (libvirt).".into()))
            }
            Ok(sys::VIR_DOMAIN_SHUTOFF_FAILED) => (
                VmState::Error,
                Some("The VM failed to start (libvirt).".into()),
            ),
            _ => (VmState::Stopped, None),
        },
        sys::VIR_DOMAIN_CRASHED => (VmState::Error, Some("The VM crashed (libvirt).".into())),
        // NOSTATE: being set up.
        _ => (VmState::Building, None),
    }
}

/// Its addresses: the network's DHCP leases, else the guest agent (if it
/// runs); no loopback or link-local ones.
fn addresses(domain: &Domain) -> Vec<String> {
    let mut found = Vec::new();
    for source in [
        sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
        sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    ] {
        if let Ok(interfaces) = domain.interface_addresses(source, 0) {
            for interface in interfaces {
                for address in interface.addrs {
                    let Ok(ip) = address.addr.parse::<std::net::IpAddr>() else {
                        continue;
                    };
                    let local = match ip {
                        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
                        std::net::IpAddr::V6(v6) => {
                            v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80
                        }
                    };
                    if !local && !found.contains(&address.addr) {
                        found.push(address.addr);
                    }
                }
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found
}

/// What create refuses before asking libvirt anything.
fn check_spec(spec: &VmSpec, config: &LibvirtConfig) -> Result<(), VmError> {
    let refuse = |m: String| Err(VmError::Refused(m));
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 200
            && !s.starts_with(['.', '-'])
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !name_ok(&spec.name) {
        return refuse(format!(
            "{:?} cannot be a libvirt VM name (letters, digits, '-', '_' and '.').",
            spec.name
        ));
    }
    if !name_ok(&spec.hostname) {
        return refuse(format!("{:?} cannot be a host name.", spec.hostname));
    }
    for (what, value) in [
        ("owner", &spec.owner),
        ("image", &spec.image),
        ("flavor", &spec.flavor),
        ("SSH key", &spec.ssh_key),
    ] {
        if value.contains('\0') || (what != "SSH key" && value.contains('\n')) {
            return refuse(format!(
                "The {what} holds characters a VM cannot be made with."
            ));
        }
    }
    if spec.ssh_key.contains(['\n', '\r']) {
        return refuse("The SSH key must be a single line.".into());
    }
    if spec.vcpus == 0 || spec.memory_mib == 0 || spec.disk_gib == 0 {
        return refuse("A VM needs at least one vCPU, some memory and a disk.".into());
    }
    let kind = &config.domain_type;
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return refuse(format!(
            "{kind:?} is not a libvirt domain type (vm.libvirt.domain_type: kvm or qemu)."
        ));
    }
    for (what, value) in [
        ("vm.libvirt.network", &config.network),
        ("vm.libvirt.storage_pool", &config.storage_pool),
    ] {
        if value.is_empty() || value.contains(['\0', '/']) {
            return refuse(format!("{what} {value:?} is not a libvirt name."));
        }
    }
    Ok(())
}

/// cloud-init's `meta-data`.
fn meta_data(spec: &VmSpec) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        yaml_string(&spec.name),
        yaml_string(&spec.hostname)
    )
}

/// cloud-init's `user-data`: the host name (no FQDN) and the key.
fn user_data(spec: &VmSpec) -> String {
    format!(
        "#cloud-config\nhostname: {}\nssh_authorized_keys:\n  - {}\n",
        yaml_string(&spec.hostname),
        yaml_string(spec.ssh_key.trim())
    )
}

/// A YAML double-quoted scalar (a JSON string is one).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The domain: the disk (virtio), the seed (a SCSI CD-ROM, on any machine
/// type and architecture), one virtio NIC on the network, a serial
/// console, a guest agent channel and a virtio RNG.
fn domain_xml(
    spec: &VmSpec,
    config: &LibvirtConfig,
    metadata: &VmMetadata,
    disk_path: &str,
    seed_path: &str,
) -> String {
    let cpu = if config.domain_type == "kvm" {
        "<cpu mode='host-passthrough'/>"
    } else {
        ""
    };
    format!(
        "<domain type='{kind}'>\
           <name>{name}</name>\
           <metadata>{metadata}</metadata>\
           <memory unit='MiB'>{memory}</memory>\
           <vcpu placement='static'>{vcpus}</vcpu>\
           <os><type>hvm</type><boot dev='hd'/></os>\
           <features><acpi/><apic/></features>\
           {cpu}\
           <clock offset='utc'/>\
           <on_poweroff>destroy</on_poweroff>\
           <on_reboot>restart</on_reboot>\
           <on_crash>destroy</on_crash>\
           <devices>\
             <disk type='file' device='disk'>\
               <driver name='qemu' type='qcow2' discard='unmap'/>\
               <source file='{disk}'/>\
               <target dev='vda' bus='virtio'/>\
             </disk>\
             <controller type='scsi' index='0' model='virtio-scsi'/>\
             <disk type='file' device='cdrom'>\
               <driver name='qemu' type='raw'/>\
               <source file='{seed}'/>\
               <target dev='sda' bus='scsi'/>\
               <readonly/>\
             </disk>\
             <interface type='network'>\
               <source network='{network}'/>\
               <model type='virtio'/>\
             </interface>\
             <serial type='pty'><target port='0'/></serial>\
             <console type='pty'><target type='serial' port='0'/></console>\
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
           </devices>\
         </domain>",
        kind = escape(&config.domain_type),
        name = escape(&spec.name),
        metadata = metadata.to_xml(),
        memory = spec.memory_mib,
        vcpus = spec.vcpus,
        disk = escape(disk_path),
        seed = escape(seed_path),
        network = escape(&config.network),
    )
}

/// Text for XML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of the first element with this local name (any prefix),
/// e.g. `<owner>al&amp;ice</owner>` → `al&ice`.
fn element_text(xml: &str, local: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let tag_name = tag.split_whitespace().next().unwrap_or_default();
        let tag_local = tag_name.rsplit(':').next().unwrap_or_default();
        if tag_local == local && !tag.starts_with('/') {
            if tag.ends_with('/') {
                return Some(String::new());
            }
            let body = &rest[end + 1..];
            let close = body.find("</")?;
            return Some(unescape(&body[..close]));
        }
        rest = &rest[end + 1..];
    }
    None
}

/// The inside of the first `<name>…</name>` (no prefixes, no nesting of
/// the same name).
fn section<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let close = xml[open..].find(&format!("</{name}>"))?;
    Some(&xml[open..open + close])
}

/// An attribute of the first `<tag …>` in `xml`.
fn attribute(xml: &str, tag: &str, attr: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag} "))?;
    let end = xml[start..].find('>')? + start;
    let element = &xml[start..end];
    for quote in ['\'', '"'] {
        let key = format!("{attr}={quote}");
        if let Some(at) = element.find(&key) {
            let value = &element[at + key.len()..];
            let stop = value.find(quote)?;
            return Some(unescape(&value[..stop]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    //! Against libvirt's in-process test driver (`test:///default`): its
    //! state lives as long as a connection to it is open, and tests running
    //! at the same time share it, so every test uses names of its own. The
    //! test driver cannot upload volumes, so a whole `create` only runs
    //! against a real libvirtd (server/tests/it/vms_libvirt.rs); here it
    //! shows that a failed create leaves nothing behind.

    use super::*;

    const URI: &str = "test:///default";

    fn unique(prefix: &str) -> String {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).unwrap();
        format!("{prefix}-{}", hex::encode(bytes))
    }

    fn config(pool: &str) -> LibvirtConfig {
        LibvirtConfig {
            uri: URI.into(),
            network: "default".into(),
            storage_pool: pool.into(),
            pool_path: None,
            domain_type: "test".into(),
        }
    }

    fn backend(pool: &str) -> LibvirtBackend {
        LibvirtBackend::new(config(pool), PathBuf::from(format!("/{pool}")))
            .with_stop_grace(Duration::from_millis(500))
    }

    fn spec(name: &str, image: &str) -> VmSpec {
        VmSpec {
            name: name.into(),
            hostname: "web".into(),
            vcpus: 2,
            memory_mib: 512,
            disk_gib: 10,
            flavor: "small".into(),
            image: image.into(),
            ssh_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk alice@laptop".into(),
            owner: "alice".into(),
        }
    }

    /// A connection of the test's own, which also keeps the test driver's
    /// state alive for the test's length.
    fn open() -> Conn {
        virt::error::clear_error_callback();
        Conn(Connect::open(Some(URI)).unwrap())
    }

    fn volume(conn: &Connect, pool: &str, name: &str, gib: u64) {
        let pool = StoragePool::lookup_by_name(conn, pool).unwrap();
        StorageVol::create_xml(
            &pool,
            &format!(
                "<volume><name>{name}</name><capacity unit='GiB'>{gib}</capacity>\
                 <target><format type='qcow2'/></target></volume>"
            ),
            0,
        )
        .unwrap();
    }

    fn volumes(conn: &Connect, pool: &str) -> Vec<String> {
        StoragePool::lookup_by_name(conn, pool)
            .map(|p| p.list_volumes().unwrap())
            .unwrap_or_default()
    }

    fn refused(result: Result<impl std::fmt::Debug, VmError>) -> String {
        match result {
            Err(VmError::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn cloud_init_files() {
        let spec = spec("bootler-7-web", "/images/debian.qcow2");
        assert_eq!(
            meta_data(&spec),
            "instance-id: \"bootler-7-web\"\nlocal-hostname: \"web\"\n"
        );
        assert_eq!(
            user_data(&spec),
            "#cloud-config\nhostname: \"web\"\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk alice@laptop\"\n"
        );
    }

    #[test]
    fn metadata_round_trip_and_xml_helpers() {
        let metadata = VmMetadata {
            name: "bootler-7-web".into(),
            owner: "al&ice <'\">".into(),
            disk: "bootler-7-web.qcow2".into(),
            ..VmMetadata::default()
        };
        assert_eq!(
            VmMetadata::from_xml(&metadata.to_xml()),
            Some(metadata.clone())
        );
        // As libvirt gives it back: without the prefix.
        let plain = "<vm xmlns=\"urn:bootler:vm:1\">\n  <name>n</name>\n  <owner>a&amp;b</owner>\n  <seed/>\n</vm>";
        let read = VmMetadata::from_xml(plain).unwrap();
        assert_eq!(
            (read.name.as_str(), read.owner.as_str(), read.seed.as_str()),
            ("n", "a&b", "")
        );
        assert_eq!(VmMetadata::from_xml("<vm/>"), None);

        let vol = "<volume><backingStore><format type='raw'/></backingStore><target><path>/p</path><format type=\"qcow2\"/></target></volume>";
        let target = section(vol, "target").unwrap();
        assert_eq!(
            attribute(target, "format", "type").as_deref(),
            Some("qcow2")
        );
        assert_eq!(escape("a'b&<"), "a&apos;b&amp;&lt;");
    }

    #[test]
    fn states() {
        assert_eq!(vm_state(sys::VIR_DOMAIN_RUNNING, 1).0, VmState::Running);
        assert_eq!(vm_state(sys::VIR_DOMAIN_PAUSED, 1).0, VmState::Stopped);
        assert_eq!(vm_state(sys::VIR_DOMAIN_SHUTOFF, 1).0, VmState::Stopped);
        let (state, fault) = vm_state(
            sys::VIR_DOMAIN_SHUTOFF,
            sys::VIR_DOMAIN_SHUTOFF_CRASHED as i32,
        );
        assert_eq!(state, VmState::Error);
        assert!(fault.unwrap().contains("crashed"));
        assert_eq!(vm_state(sys::VIR_DOMAIN_NOSTATE, 0).0, VmState::Building);
    }

    #[test]
    fn specs_libvirt_cannot_take_are_refused_first() {
        let config = config("p");
        let mut bad = spec("bootler 7", "/i.qcow2");
        assert!(refused(check_spec(&bad, &config).map(|_| ())).contains("VM name"));
        bad = spec("bootler-7-web", "/i.qcow2");
        bad.ssh_key = "ssh-ed25519 AAAA\n  - ssh-rsa evil".into();
        assert!(refused(check_spec(&bad, &config).map(|_| ())).contains("single line"));
        bad = spec("bootler-7-web", "/i.qcow2");
        bad.vcpus = 0;
        assert!(check_spec(&bad, &config).is_err());
        assert!(check_spec(&spec("bootler-7-web", "/i.qcow2"), &config).is_ok());
    }

    /// The domain Bootler defines is valid to libvirt, and status, start,
    /// stop and destroy work on it; destroy removes its volumes.
    #[tokio::test]
    async fn lifecycle_of_a_defined_domain() {
        let conn = open();
        let pool = "default-pool";
        let name = unique("bootler-unit");
        let spec = spec(&name, "/images/base.qcow2");
        let metadata = VmMetadata {
            name: name.clone(),
            hostname: "web".into(),
            owner: "alice".into(),
            pool: pool.into(),
            disk: format!("{name}.qcow2"),
            seed: format!("{name}-seed.iso"),
            ..VmMetadata::default()
        };
        volume(&conn, pool, &metadata.disk, 1);
        volume(&conn, pool, &metadata.seed, 1);
        let xml = domain_xml(
            &spec,
            &config(pool),
            &metadata,
            &format!("/default-pool/{name}.qcow2"),
            &format!("/default-pool/{name}-seed.iso"),
        );
        let domain = Domain::define_xml(&conn, &xml).unwrap();
        let id = domain.get_uuid_string().unwrap();
        let defined = domain.get_xml_desc(0).unwrap();
        assert!(
            defined.contains("<vcpu placement='static'>2</vcpu>"),
            "{defined}"
        );
        assert!(
            defined.contains("<memory unit='KiB'>524288</memory>"),
            "{defined}"
        );
        assert!(
            defined.contains("<bootler:owner>alice</bootler:owner>"),
            "{defined}"
        );

        let backend = backend(pool);
        assert_eq!(backend.metadata(&id).await.unwrap(), Some(metadata.clone()));
        let status = backend.status(&id).await.unwrap();
        assert_eq!(
            (status.state, status.addresses.len()),
            (VmState::Stopped, 0)
        );

        backend.start(&id).await.unwrap();
        backend.start(&id).await.unwrap();
        let status = backend.status(&id).await.unwrap();
        assert_eq!(status.state, VmState::Running);
        // The test driver makes up an address for each NIC.
        assert!(
            status
                .addresses
                .iter()
                .any(|a| a.starts_with("192.168.122.")),
            "{status:?}"
        );

        backend.stop(&id).await.unwrap();
        assert_eq!(backend.status(&id).await.unwrap().state, VmState::Stopped);
        backend.stop(&id).await.unwrap();

        backend.start(&id).await.unwrap();
        backend.destroy(&id).await.unwrap();
        assert_eq!(backend.status(&id).await.unwrap().state, VmState::Missing);
        let left = volumes(&conn, pool);
        assert!(!left.iter().any(|v| v.starts_with(&name)), "{left:?}");
        // Gone already: still fine.
        backend.destroy(&id).await.unwrap();
        assert!(refused(backend.start(&id).await).contains("does not exist"));
    }

    #[tokio::test]
    async fn unknown_ids_are_missing() {
        let _conn = open();
        let backend = backend("default-pool");
        for id in ["00000000-1111-2222-3333-444444444444", "not-a-uuid"] {
            let status = backend.status(id).await.unwrap();
            assert_eq!(status.state, VmState::Missing);
            backend.destroy(id).await.unwrap();
            assert!(refused(backend.stop(id).await).contains("does not exist"));
        }
    }

    /// The test driver cannot upload the seed: create fails there, after
    /// making the pool, the disk and the seed volume, and removes both.
    #[tokio::test]
    async fn a_failed_create_leaves_nothing_behind() {
        let conn = open();
        let pool = unique("bootler-unit-pool");
        let base = unique("base");
        volume(&conn, "default-pool", &format!("{base}.qcow2"), 2);
        let backend = backend(&pool);
        let name = unique("bootler-unit");
        let message = refused(
            backend
                .create(&spec(&name, &format!("default-pool/{base}.qcow2")))
                .await,
        );
        assert!(message.contains("could not upload the seed"), "{message}");
        // The pool was made on the way (and is kept), empty.
        let made = StoragePool::lookup_by_name(&conn, &pool).unwrap();
        assert!(made.is_active().unwrap());
        assert!(made.get_autostart().unwrap());
        assert!(
            made.get_xml_desc(0)
                .unwrap()
                .contains(&format!("<path>/{pool}</path>"))
        );
        assert_eq!(volumes(&conn, &pool), Vec::<String>::new());
        assert!(Domain::lookup_by_name(&conn, &name).is_err());
    }

    #[tokio::test]
    async fn images_that_cannot_be_used_are_refused() {
        let conn = open();
        let backend = backend("default-pool");
        let name = unique("bootler-unit");
        let small = unique("small");
        volume(&conn, "default-pool", &format!("{small}.qcow2"), 20);
        for (image, expected) in [
            (
                "default-pool/nothing.qcow2".to_string(),
                "The base image volume nothing.qcow2 does not exist in the storage pool default-pool",
            ),
            (
                "nopool/x.qcow2".to_string(),
                "The storage pool nopool of the image nopool/x.qcow2 does not exist",
            ),
            (
                "debian.qcow2".to_string(),
                "neither an absolute file path nor pool/volume",
            ),
            (
                "/nonexistent/base.qcow2".to_string(),
                "The base image /nonexistent/base.qcow2 does not exist on the hypervisor host.",
            ),
            (
                format!("default-pool/{small}.qcow2"),
                "needs a disk of at least 20 GiB; the flavor small has 10 GiB",
            ),
        ] {
            let message = refused(backend.create(&spec(&name, &image)).await);
            assert!(message.contains(expected), "{image}: {message}");
        }
        assert!(Domain::lookup_by_name(&conn, &name).is_err());
        // The transient pool made to look at /nonexistent is gone.
        let pools = conn.list_all_storage_pools(0).unwrap();
        let names: Vec<String> = pools.iter().map(|p| p.get_name().unwrap()).collect();
        assert!(
            !names.iter().any(|n| n.starts_with("bootler-image-")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_network_or_a_taken_name_is_refused() {
        let conn = open();
        let pool = unique("bootler-unit-pool");
        let mut cfg = config(&pool);
        cfg.network = "nonet".into();
        let backend = LibvirtBackend::new(cfg, PathBuf::from("/x"));
        let message = refused(
            backend
                .create(&spec(&unique("bootler-unit"), "/i.qcow2"))
                .await,
        );
        assert!(
            message.contains("The network nonet does not exist"),
            "{message}"
        );

        // The test driver's own domain is called `test`.
        let backend = self::backend(&pool);
        let message = refused(backend.create(&spec("test", "/i.qcow2")).await);
        assert!(
            message.contains("A VM named test already exists"),
            "{message}"
        );
        // Nothing was made, not even the pool.
        assert!(StoragePool::lookup_by_name(&conn, &pool).is_err());
    }

    #[tokio::test]
    async fn capacity_of_the_test_host() {
        let _conn = open();
        let capacity = backend("default-pool").capacity().await.unwrap();
        assert_eq!(capacity.max_host_cores, Some(16));
        assert_eq!(capacity.total_memory_mib, Some(3072));
        assert!(
            capacity.description.starts_with("libvirt "),
            "{}",
            capacity.description
        );
        assert!(
            capacity.description.contains("at test:///default"),
            "{}",
            capacity.description
        );
    }

    #[tokio::test]
    async fn a_daemon_that_does_not_answer_is_unavailable() {
        let mut cfg = config("p");
        cfg.uri = "qemu:///system?socket=/nonexistent/libvirt-sock".into();
        let backend = LibvirtBackend::new(cfg, PathBuf::from("/x"));
        match backend.capacity().await {
            Err(VmError::Unavailable(message)) => assert!(
                message.starts_with(
                    "libvirt at qemu:///system?socket=/nonexistent/libvirt-sock does not answer: "
                ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            backend.status("00000000-1111-2222-3333-444444444444").await,
            Err(VmError::Unavailable(_))
        ));
    }
}
