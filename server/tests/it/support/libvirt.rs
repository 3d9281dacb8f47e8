//! A real libvirtd for tests, private to the test: Debian's monolithic
//! `libvirtd` (with `virtlogd`) as root, in namespaces of its own made by
//! `unshare`, so that tests running at the same time and the machine's own
//! libvirt (if any) never meet:
//!
//! - a mount namespace in which libvirt's fixed folders (`/etc/libvirt`,
//!   `/run/libvirt`, `/var/lib/libvirt`, `/var/log/libvirt`,
//!   `/var/cache/libvirt`) are this test's folders, bind-mounted from a
//!   temporary folder (a privileged libvirtd has no option to move them;
//!   the empty mount points are made on the host if missing). When the
//!   machine has no `libvirt-qemu` user (libvirtd refuses to start without
//!   the user it was built for), `/etc/passwd` and `/etc/group` are copies
//!   that add it, in the namespace only. The sockets are in the temporary
//!   folder (`unix_sock_dir`), which the tests reach from outside:
//!   `qemu:///system?socket=<dir>/sock/libvirt-sock`; the daemons' pid
//!   files are there too (by default they are `/run/libvirtd.pid` and
//!   `/run/virtlogd.pid`, which would clash).
//! - a network namespace: the VM network's bridge, its dnsmasq and the
//!   guests' taps exist in there alone (only loopback besides).
//! - a PID namespace whose first process is the shell that starts
//!   virtlogd and libvirtd: when it dies the kernel kills everything in the
//!   namespace, QEMU and dnsmasq included, however they daemonized.
//!
//! libvirt's QEMU driver is told (`qemu.conf`) to run QEMU as root, without
//! a security driver, cgroups or per-domain mount namespaces, so it needs
//! nothing from the host beyond the packages.
//!
//! The VM network `bootler-test` has DHCP (dnsmasq) on a bridge; it is an
//! `open` network rather than `nat`: libvirt 9 sets NAT up with `iptables`,
//! which is not needed otherwise, and in a namespace with no way out NAT
//! has nothing to reach anyway. Guests get addresses from its DHCP and
//! libvirt reads them from its leases, as on a real host.
//!
//! Dropping the [`Libvirtd`] kills `unshare` (`--kill-child` takes the
//! namespace's first process, and with it the namespace, along); a
//! watchdog shell does the same when the test process is gone, however it
//! ended.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootler_domain::vms::config::LibvirtConfig;

/// The network VMs join.
pub const NETWORK: &str = "bootler-test";
/// Its prefix: guests get addresses in `192.168.150.0/24`.
pub const NETWORK_PREFIX: &str = "192.168.150.";
/// The storage pool the backend makes.
pub const POOL: &str = "bootler";

/// The Debian packages these tests need.
pub const PACKAGES: &str = "libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
    qemu-system-x86 qemu-utils dnsmasq-base ipxe genisoimage";

pub struct Libvirtd {
    /// `qemu:///system?socket=…`
    pub uri: String,
    dir: tempfile::TempDir,
    /// `unshare`.
    child: Option<Child>,
    /// The namespaces' first process (the shell), `unshare`'s child.
    init: Option<u32>,
    watchdog: Option<Child>,
    /// `nsenter`s that started libvirtd again.
    restarts: Vec<Child>,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("`{name}` is not installed: the libvirt tests need the Debian packages {PACKAGES}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

const QEMU_CONF: &str = r#"# A private libvirtd for tests: QEMU as root, nothing from the host.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
"#;

impl Libvirtd {
    /// Starts virtlogd and libvirtd in namespaces of their own and waits
    /// until libvirtd answers; then defines and starts the network
    /// [`NETWORK`]. Blocks (a few seconds).
    pub fn start() -> Libvirtd {
        for name in [
            "libvirtd",
            "virtlogd",
            "virsh",
            "unshare",
            "nsenter",
            "dnsmasq",
            "qemu-img",
            "qemu-system-x86_64",
        ] {
            tool(name);
        }
        assert!(
            is_root(),
            "a private libvirtd needs root (namespaces, bridges, QEMU as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("bootler-libvirt-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in [
            "etc", "run", "lib", "log", "cache", "sock", "pool", "images",
        ] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("etc/qemu.conf"), QEMU_CONF).unwrap();
        std::fs::write(
            d.join("libvirtd.conf"),
            format!(
                "unix_sock_dir = \"{sock}\"\n\
                 unix_sock_rw_perms = \"0700\"\n\
                 unix_sock_ro_perms = \"0700\"\n\
                 unix_sock_admin_perms = \"0700\"\n\
                 auth_unix_rw = \"none\"\n\
                 auth_unix_ro = \"none\"\n\
                 log_outputs = \"3:file:{log}\"\n",
                sock = d.join("sock").display(),
                log = d.join("libvirtd.log").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("virtlogd.conf"),
            format!(
                "log_outputs = \"3:file:{}\"\n",
                d.join("virtlogd.log").display()
            ),
        )
        .unwrap();

        // The mount points, on the host (empty folders, if missing).
        let binds = [
            ("etc", "/etc/libvirt"),
            ("run", "/run/libvirt"),
            ("lib", "/var/lib/libvirt"),
            ("log", "/var/log/libvirt"),
            ("cache", "/var/cache/libvirt"),
        ];
        let mut script = String::from("set -e\n");
        for (from, to) in binds {
            std::fs::create_dir_all(to).unwrap();
            script.push_str(&format!(
                "mount --bind '{}' '{to}'\n",
                d.join(from).display()
            ));
        }
        if !user_exists("libvirt-qemu") {
            let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
            passwd.push_str(
                "libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n",
            );
            let mut group = std::fs::read_to_string("/etc/group").unwrap();
            group.push_str("libvirt-qemu:x:64055:\n");
            if !group.lines().any(|l| l.starts_with("kvm:")) {
                group.push_str("kvm:x:64056:\n");
            }
            std::fs::write(d.join("passwd"), passwd).unwrap();
            std::fs::write(d.join("group"), group).unwrap();
            for file in ["passwd", "group"] {
                script.push_str(&format!(
                    "mount --bind '{}' /etc/{file}\n",
                    d.join(file).display()
                ));
            }
        }
        // The shell stays the namespace's first process: it reaps what
        // ends, and when it dies everything in the namespace dies.
        script.push_str(&format!(
            "ip link set lo up 2>/dev/null || true\n\
             virtlogd -f '{d}/virtlogd.conf' -p '{d}/virtlogd.pid' &\n\
             libvirtd --config '{d}/libvirtd.conf' -p '{d}/libvirtd.pid' &\n\
             wait\n",
            d = d.display()
        ));
        let out = std::fs::File::create(d.join("namespace.log")).unwrap();
        let child = Command::new(tool("unshare"))
            .args([
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                "-c",
            ])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start unshare");
        let uri = format!(
            "qemu:///system?socket={}",
            d.join("sock/libvirt-sock").display()
        );
        let unshare = child.id();
        let mut libvirtd = Libvirtd {
            uri,
            dir,
            child: Some(child),
            init: None,
            watchdog: None,
            restarts: Vec::new(),
        };
        libvirtd.init = child_of(unshare);
        libvirtd.watchdog = libvirtd.spawn_watchdog(unshare);
        libvirtd.wait_ready();
        libvirtd.define_network();
        libvirtd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("libvirtd's namespace ended with {status}:\n{}", self.logs());
            }
            if self.dir.path().join("sock/libvirt-sock").exists()
                && self.try_virsh(&["version"]).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "libvirtd did not answer within 30 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn define_network(&self) {
        let xml = self.dir.path().join("network.xml");
        std::fs::write(
            &xml,
            format!(
                "<network>\
                   <name>{NETWORK}</name>\
                   <forward mode='open'/>\
                   <bridge name='virbr-bt0' stp='off' delay='0'/>\
                   <ip address='{NETWORK_PREFIX}1' netmask='255.255.255.0'>\
                     <dhcp><range start='{NETWORK_PREFIX}10' end='{NETWORK_PREFIX}200'/></dhcp>\
                   </ip>\
                 </network>"
            ),
        )
        .unwrap();
        self.virsh(&["net-define", &xml.to_string_lossy()]);
        self.virsh(&["net-start", NETWORK]);
    }

    /// Kills the namespaces' first process (and so the namespaces), then
    /// `unshare`, once the test process is gone, or its folder is. Drop
    /// kills the watchdog before it reaps anything, so the pids still name
    /// them then.
    fn spawn_watchdog(&self, unshare: u32) -> Option<Child> {
        let init = self.init.map(|pid| pid.to_string()).unwrap_or_default();
        let script = format!(
            "while kill -0 {me} 2>/dev/null && [ -d '{dir}' ]; do sleep 1; done; \
             kill -9 {init} {unshare} 2>/dev/null; sleep 1; rm -rf '{dir}'",
            me = std::process::id(),
            dir = self.dir.path().display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    /// Kills libvirtd (SIGKILL, as a crash would); virtlogd, dnsmasq and
    /// QEMU go on.
    pub fn kill_libvirtd(&self) {
        let pid = self
            .in_namespace("libvirtd")
            .unwrap_or_else(|| panic!("libvirtd does not run:\n{}", self.logs()));
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.in_namespace("libvirtd").is_some() {
            assert!(Instant::now() < deadline, "libvirtd did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts libvirtd again, in the same namespaces, and waits until it
    /// answers.
    pub fn restart_libvirtd(&mut self) {
        let init = self
            .init
            .expect("the namespaces' first process")
            .to_string();
        let d = self.dir.path();
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("namespace.log"))
            .unwrap();
        let child = Command::new(tool("nsenter"))
            .args(["--target", &init, "--mount", "--net", "--pid", "--"])
            .arg(tool("libvirtd"))
            .arg("--config")
            .arg(d.join("libvirtd.conf"))
            .arg("-p")
            .arg(d.join("libvirtd.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("nsenter");
        self.restarts.push(child);
        self.wait_ready();
    }

    /// A process of the namespaces by its name (`comm`), alive.
    fn in_namespace(&self, name: &str) -> Option<u32> {
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let ours = ns(&self.init?.to_string())?;
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let alive = stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'));
                alive
                    && stat.contains(&format!("({name})"))
                    && ns(&pid.to_string()).as_ref() == Some(&ours)
            })
    }

    /// The backend's settings for this daemon: the network above, the pool
    /// [`POOL`] (made by the backend under [`Libvirtd::pool_path`]), QEMU
    /// without KVM.
    pub fn config(&self) -> LibvirtConfig {
        LibvirtConfig {
            uri: self.uri.clone(),
            network: NETWORK.into(),
            storage_pool: POOL.into(),
            pool_path: None,
            domain_type: "qemu".into(),
        }
    }

    /// Where the storage pool goes.
    pub fn pool_path(&self) -> PathBuf {
        self.dir.path().join("pool")
    }

    /// A folder for base images.
    pub fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// A bootable qcow2 base image (iPXE, from Debian's `ipxe`: it boots
    /// from the disk and asks for an address by DHCP on every NIC).
    pub fn ipxe_image(&self) -> PathBuf {
        let iso = Path::new("/usr/lib/ipxe/ipxe.iso");
        assert!(
            iso.exists(),
            "{} is missing: install the Debian package ipxe",
            iso.display()
        );
        let image = self.images().join("ipxe.qcow2");
        let out = Command::new(tool("qemu-img"))
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(iso)
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "qemu-img convert: {out:?}");
        image
    }

    pub fn try_virsh(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(tool("virsh"))
            .args(["-q", "-c", &self.uri])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `virsh -c <uri> <args>`; its output, or a panic with it.
    pub fn virsh(&self, args: &[&str]) -> String {
        self.try_virsh(args)
            .unwrap_or_else(|e| panic!("virsh {args:?} failed: {e}\n{}", self.logs()))
    }

    /// Every domain's name, defined or running.
    pub fn domains(&self) -> Vec<String> {
        words(&self.virsh(&["list", "--all", "--name"]))
    }

    /// The volumes in a pool (none when the pool does not exist).
    pub fn volumes(&self, pool: &str) -> Vec<String> {
        match self.try_virsh(&["vol-list", "--pool", pool]) {
            Ok(out) => out
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every storage pool's name.
    pub fn pools(&self) -> Vec<String> {
        words(&self.virsh(&["pool-list", "--all", "--name"]))
    }

    /// libvirtd's and virtlogd's logs, QEMU's logs, and what the namespace's
    /// shell printed: for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        let mut out = String::new();
        let mut files = vec![
            d.join("namespace.log"),
            d.join("libvirtd.log"),
            d.join("virtlogd.log"),
        ];
        if let Ok(entries) = std::fs::read_dir(d.join("log/qemu")) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // libvirtd reports every network device it cannot query.
            let text: Vec<&str> = text.lines().filter(|l| !l.contains("ethtool")).collect();
            let tail = &text[text.len().saturating_sub(40)..];
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                file.display(),
                tail.join("\n")
            ));
        }
        out
    }
}

/// The child of `parent` (waits up to 5 s for it to appear).
fn child_of(parent: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid …`; comm may hold spaces.
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) {
                return Some(pid);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // The namespaces' first process: the kernel kills (and reaps)
        // everything in them before it is gone, and `unshare` reaps it and
        // ends. Killing `unshare` first would work too (`--kill-child`),
        // but would leave the first process to an init that may not reap.
        if let Some(init) = self.init.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &init.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // They end with the libvirtd they started.
        for mut nsenter in self.restarts.drain(..) {
            let _ = nsenter.kill();
            let _ = nsenter.wait();
        }
    }
}
