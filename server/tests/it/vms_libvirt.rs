//! The libvirt backend against a real, private libvirtd (support/libvirt.rs):
//! QEMU without KVM, a DHCP network, a pool the backend makes itself. The
//! base image is iPXE (Debian's `ipxe`) as a qcow2: it boots from the disk
//! and asks for an address by DHCP, so an address shows in the leases
//! without an operating system. It ignores the ACPI power button, so
//! `stop` ends with the hard stop.

use std::process::Command;
use std::time::{Duration, Instant};

use bootler_domain::vms::backend::{VmBackend, VmError, VmSpec, VmState, VmStatus};
use bootler_domain::vms::libvirt::LibvirtBackend;

use crate::support::libvirt::{Libvirtd, NETWORK, NETWORK_PREFIX, POOL};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootlerTestKey alice@laptop";

async fn libvirtd() -> Libvirtd {
    tokio::task::spawn_blocking(Libvirtd::start).await.unwrap()
}

fn spec(name: &str, image: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        hostname: "web".into(),
        vcpus: 2,
        memory_mib: 128,
        disk_gib: 1,
        flavor: "tiny".into(),
        image: image.into(),
        ssh_key: KEY.into(),
        owner: "alice".into(),
    }
}

fn backend(libvirtd: &Libvirtd) -> LibvirtBackend {
    LibvirtBackend::new(libvirtd.config(), libvirtd.pool_path())
        .with_stop_grace(Duration::from_secs(2))
}

/// Waits until `status` satisfies `done`, up to `within`.
async fn wait_status(
    backend: &LibvirtBackend,
    id: &str,
    within: Duration,
    done: impl Fn(&VmStatus) -> bool,
) -> VmStatus {
    let deadline = Instant::now() + within;
    loop {
        let status = backend.status(id).await.unwrap();
        if done(&status) || Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One file of an ISO image, read with `isoinfo` (its Joliet names).
fn iso_file(image: &std::path::Path, name: &str) -> String {
    let out = Command::new("isoinfo")
        .args(["-J", "-x", name, "-i"])
        .arg(image)
        .output()
        .expect("isoinfo (Debian package genisoimage)");
    assert!(out.status.success(), "isoinfo: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_vm_is_made_runs_stops_starts_and_is_destroyed() {
    let libvirtd = libvirtd().await;
    let base = libvirtd.ipxe_image();
    let backend = backend(&libvirtd);
    let name = "bootler-1-web";
    let id = backend
        .create(&spec(name, &base.to_string_lossy()))
        .await
        .unwrap_or_else(|e| panic!("create: {e}\n{}", libvirtd.logs()));
    assert_eq!(id.len(), 36, "a UUID: {id}");

    // The pool was made where asked, and holds the disk and the seed.
    let pool = libvirtd.virsh(&["pool-dumpxml", POOL]);
    let pool_path = libvirtd.pool_path();
    assert!(
        pool.contains(&format!("<path>{}</path>", pool_path.display())),
        "{pool}"
    );
    assert!(
        libvirtd
            .virsh(&["pool-info", POOL])
            .contains("Autostart:      yes")
    );
    let mut volumes = libvirtd.volumes(POOL);
    volumes.sort();
    assert_eq!(
        volumes,
        [format!("{name}-seed.iso"), format!("{name}.qcow2")]
    );
    let disk = pool_path.join(format!("{name}.qcow2"));
    let seed = pool_path.join(format!("{name}-seed.iso"));
    let vol = libvirtd.virsh(&["vol-dumpxml", "--pool", POOL, &format!("{name}.qcow2")]);
    assert!(
        vol.contains("<capacity unit='bytes'>1073741824</capacity>"),
        "{vol}"
    );
    assert!(
        vol.contains(&format!(
            "<backingStore>\n    <path>{}</path>\n    <format type='qcow2'/>",
            base.display()
        )),
        "{vol}"
    );

    // The domain as asked.
    let xml = libvirtd.virsh(&["dumpxml", &id]);
    for expected in [
        format!("<name>{name}</name>"),
        format!("<uuid>{id}</uuid>"),
        "<domain type='qemu'".to_string(),
        "<vcpu placement='static'>2</vcpu>".to_string(),
        "<memory unit='KiB'>131072</memory>".to_string(),
        "<bootler:owner>alice</bootler:owner>".to_string(),
        "<bootler:hostname>web</bootler:hostname>".to_string(),
        format!("<source file='{}'", disk.display()),
        "<target dev='vda' bus='virtio'/>".to_string(),
        // The running domain shows the disk's backing chain.
        format!("<source file='{}'/>", base.display()),
        format!("<source file='{}'", seed.display()),
        "<target dev='sda' bus='scsi'/>".to_string(),
        format!("<source network='{NETWORK}'"),
        "<model type='virtio'/>".to_string(),
        "<serial type='pty'>".to_string(),
    ] {
        assert!(xml.contains(&expected), "{expected} not in\n{xml}");
    }
    let backing = &xml[xml.find("<backingStore type='file'").expect(&xml)..];
    assert!(backing.contains(&format!("<source file='{}'/>", base.display())));
    let cdrom = &xml[xml.find("device='cdrom'").unwrap()..];
    assert!(cdrom[..cdrom.find("</disk>").unwrap()].contains(&seed.display().to_string()));

    // The seed, read back through libvirt (a stream, as it went in).
    let copy = tempfile::NamedTempFile::new().unwrap();
    libvirtd.virsh(&[
        "vol-download",
        "--pool",
        POOL,
        &format!("{name}-seed.iso"),
        &copy.path().to_string_lossy(),
    ]);
    assert_eq!(
        iso_file(copy.path(), "/meta-data"),
        format!("instance-id: \"{name}\"\nlocal-hostname: \"web\"\n")
    );
    assert_eq!(
        iso_file(copy.path(), "/user-data"),
        format!("#cloud-config\nhostname: \"web\"\nssh_authorized_keys:\n  - \"{KEY}\"\n")
    );
    let label = Command::new("isoinfo")
        .args(["-d", "-i"])
        .arg(copy.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&label.stdout).contains("Volume id: cidata"));

    // Running, and iPXE's DHCP gives it an address from the leases.
    let status = wait_status(&backend, &id, Duration::from_secs(30), |s| {
        !s.addresses.is_empty()
    })
    .await;
    assert_eq!(status.state, VmState::Running, "{status:?}");
    assert!(
        status.addresses.len() == 1 && status.addresses[0].starts_with(NETWORK_PREFIX),
        "no DHCP lease within 30 s: {status:?}\n{}",
        libvirtd.logs()
    );
    let metadata = backend.metadata(&id).await.unwrap().unwrap();
    assert_eq!(
        (metadata.owner.as_str(), metadata.pool.as_str()),
        ("alice", POOL)
    );

    let capacity = backend.capacity().await.unwrap();
    assert!(capacity.max_host_cores.unwrap() >= 1);
    assert!(
        capacity
            .description
            .contains(&format!("at {}", libvirtd.uri)),
        "{}",
        capacity.description
    );

    // iPXE ignores the power button: stopped hard after the grace time.
    backend.stop(&id).await.unwrap();
    let status = backend.status(&id).await.unwrap();
    assert_eq!(
        status,
        VmStatus {
            state: VmState::Stopped,
            addresses: vec![],
            fault: None
        }
    );
    assert!(libvirtd.virsh(&["domstate", &id]).contains("shut off"));

    backend.start(&id).await.unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Running);
    assert!(libvirtd.virsh(&["domstate", &id]).contains("running"));

    backend.destroy(&id).await.unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Missing);
    assert_eq!(libvirtd.domains(), Vec::<String>::new());
    assert_eq!(libvirtd.volumes(POOL), Vec::<String>::new());
    assert!(!disk.exists() && !seed.exists());
    // The base image is untouched.
    assert!(base.exists());
    backend.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn failures_are_sentences_and_leave_nothing_behind() {
    let mut libvirtd = libvirtd().await;
    let backend = backend(&libvirtd);

    // No such base image: refused before anything is made.
    for image in [
        libvirtd.images().join("missing.qcow2"),
        "/nonexistent/bootler/base.qcow2".into(),
    ] {
        let image = image.to_string_lossy().into_owned();
        match backend.create(&spec("bootler-2-web", &image)).await {
            Err(VmError::Refused(message)) => assert_eq!(
                message,
                format!("The base image {image} does not exist on the hypervisor host.")
            ),
            other => panic!("{image}: {other:?}"),
        }
    }
    assert_eq!(libvirtd.domains(), Vec::<String>::new());
    // Not even the transient pool made to look into the image's folder.
    let pools = libvirtd.pools();
    assert!(pools.iter().all(|p| p == POOL), "{pools:?}");
    assert_eq!(libvirtd.volumes(POOL), Vec::<String>::new());

    // Failures after the disk and the seed were made: libvirt refuses
    // the domain (more vCPUs than QEMU's machine takes), or QEMU cannot
    // start it (more memory than the host can map). All removed.
    let base = libvirtd.ipxe_image();
    let mut too_many_vcpus = spec("bootler-3-web", &base.to_string_lossy());
    too_many_vcpus.vcpus = 4096;
    let mut too_much_memory = spec("bootler-4-web", &base.to_string_lossy());
    too_much_memory.memory_mib = 1 << 30;
    for (spec, expected) in [
        (
            too_many_vcpus,
            "Bootler could not define the VM bootler-3-web",
        ),
        (too_much_memory, "The VM bootler-4-web did not start"),
    ] {
        match backend.create(&spec).await {
            Err(VmError::Refused(message)) => {
                assert!(message.starts_with(expected), "{message}");
            }
            other => panic!("{}: {other:?}", spec.name),
        }
        assert_eq!(libvirtd.domains(), Vec::<String>::new());
        assert!(libvirtd.pools().contains(&POOL.to_string()));
        assert_eq!(libvirtd.volumes(POOL), Vec::<String>::new());
        let left: Vec<_> = std::fs::read_dir(libvirtd.pool_path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    // A VM that was never there.
    let status = backend
        .status("6f1c1c3e-0000-4000-8000-000000000000")
        .await
        .unwrap();
    assert_eq!(status.state, VmState::Missing);

    // libvirtd crashes: the backend's connection is dead, and libvirt
    // "does not answer" (worth trying again), until it is back; then the
    // same backend works again on a new connection.
    libvirtd.kill_libvirtd();
    let down = format!("libvirt at {} does not answer: ", libvirtd.uri);
    for _ in 0..2 {
        match backend.capacity().await {
            Err(VmError::Unavailable(message)) => {
                assert!(message.starts_with(&down), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    match backend.create(&spec("bootler-5-web", "/i.qcow2")).await {
        Err(VmError::Unavailable(message)) => assert!(message.starts_with(&down), "{message}"),
        other => panic!("{other:?}"),
    }
    libvirtd.restart_libvirtd();
    assert!(
        backend
            .capacity()
            .await
            .unwrap()
            .description
            .starts_with("libvirt 9.")
    );
    let status = backend
        .status("6f1c1c3e-0000-4000-8000-000000000000")
        .await
        .unwrap();
    assert_eq!(status.state, VmState::Missing);
}
