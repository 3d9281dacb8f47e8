//! A real PXE node for integration tests: QEMU (TCG, no root) running the
//! iPXE option ROM, network-booting from an HTTP server on the host's loopback.
//!
//! QEMU's user-mode network ("slirp") plays the DHCP server and hands out the
//! boot file name `http://10.0.2.100/boot.ipxe`. `restrict=on` keeps the guest
//! off every network except one guest forward: each TCP connection the guest
//! opens to `10.0.2.100:80` makes QEMU run a small forwarder (a Python 3
//! script written into the node's temp dir) whose stdin/stdout is that
//! connection and which pumps it to a new TCP connection to
//! `127.0.0.1:<http_port>`. (A plain `guestfwd=…-tcp:127.0.0.1:PORT` would
//! carry only one connection; the `cmd:` form carries every one.)
//!
//! The node's serial console (iPXE's messages) and QEMU's own stderr go to
//! `qemu.log` in the temp dir; read them with [`PxeNode::log`].
//!
//! [`shell_command`] is the same node for something else to start and stop,
//! such as a simulated BMC's chassis (`IpmiSim::start_node`).
//!
//! # Required Debian packages (bookworm)
//!
//! `apt-get install -y --no-install-recommends qemu-system-x86 ipxe-qemu python3-minimal`
//!
//! * `qemu-system-x86` — `qemu-system-x86_64` (it pulls in `seabios`);
//! * `ipxe-qemu` — `/usr/lib/ipxe/qemu/efi-virtio.rom`, which `virtio-net-pci`
//!   loads by default (QEMU searches `/usr/lib/ipxe/qemu`), so no `romfile=`;
//! * `python3-minimal` — `/usr/bin/python3` for the forwarder (std library
//!   only: `socket`, `threading`, `os`). Any `python3` on `PATH` is used if
//!   `/usr/bin/python3` is missing.
//!
//! No KVM and no root are needed.
//!
//! # How the node stops
//!
//! Debian's iPXE build (1.0.0+git-20190125) has **no `poweroff` command**
//! ("poweroff: command not found"). Instead, when the iPXE script ends with
//! `exit` (or fails), iPXE hands back to SeaBIOS, which finds no other boot
//! device and, with `-boot reboot-timeout=0`, reboots at once; `-no-reboot`
//! turns that reboot into QEMU exiting with status 0. So a node whose last
//! script says `exit` disappears by itself within a second or two; see
//! [`PxeNode::wait_exit`]. [`Drop`] kills QEMU in every case.

// A test-support API: not every test uses every part.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The address the guest uses for the HTTP server (`http://10.0.2.100/...`).
pub const GUEST_SERVER_ADDR: &str = "10.0.2.100";

/// The boot file name QEMU's DHCP server hands to the node.
pub const BOOT_FILE_URL: &str = "http://10.0.2.100/boot.ipxe";

/// The QEMU binary that is run.
pub const QEMU: &str = "qemu-system-x86_64";

/// The forwarder QEMU runs for each guest connection: argv[1] is the host
/// port; with an argv[2], each request line the guest sends (`GET /boot.ipxe`)
/// is appended to that file. stdin/stdout (and stderr) are QEMU's end of the
/// guest connection, so the script must never print anything itself.
const FORWARDER_PY: &str = r#"import os, socket, sys, threading
try:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
except Exception:
    os._exit(1)
def note(chunk):
    # A chunk that starts a request (iPXE may keep a connection open).
    if len(sys.argv) < 3:
        return
    try:
        line = chunk.split(b"\r\n", 1)[0].decode("ascii", "replace")
        if line.startswith(("GET ", "POST ", "HEAD ")):
            with open(sys.argv[2], "a") as f:
                f.write(line.rsplit(" ", 1)[0] + "\n")
    except Exception:
        pass
def up():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            note(b)
            s.sendall(b)
    except Exception:
        pass
    try:
        s.shutdown(socket.SHUT_WR)
    except Exception:
        pass
threading.Thread(target=up, daemon=True).start()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        while b:
            b = b[os.write(1, b):]
except Exception:
    pass
os._exit(0)
"#;

/// One QEMU node network-booting with iPXE. QEMU is killed on drop.
pub struct PxeNode {
    child: Option<Child>,
    log_path: PathBuf,
    started: Instant,
    // Dropped last: holds the forwarder script and the log.
    dir: tempfile::TempDir,
}

impl PxeNode {
    /// Starts QEMU with one virtio NIC of MAC `mac` (`52:54:00:12:34:56`
    /// form) that PXE-boots `http://10.0.2.100/boot.ipxe`, every connection
    /// to `10.0.2.100:80` being carried to `127.0.0.1:http_port`.
    ///
    /// Panics if the temp dir cannot be made or QEMU cannot be started (with
    /// the packages to install in the message).
    pub fn boot(mac: &str, http_port: u16) -> PxeNode {
        Self::try_boot(mac, http_port).unwrap_or_else(|e| {
            panic!(
                "cannot start the PXE node ({QEMU}): {e}; it needs the Debian packages \
                 qemu-system-x86 ipxe-qemu python3-minimal"
            )
        })
    }

    /// As [`PxeNode::boot`], returning the error instead of panicking.
    pub fn try_boot(mac: &str, http_port: u16) -> io::Result<PxeNode> {
        Self::try_boot_with(mac, http_port, 256)
    }

    /// As [`PxeNode::boot`], with `memory_mb` of memory (an installer
    /// needs about 1 GiB).
    pub fn boot_with(mac: &str, http_port: u16, memory_mb: u32) -> PxeNode {
        Self::try_boot_with(mac, http_port, memory_mb)
            .unwrap_or_else(|e| panic!("cannot start the PXE node ({QEMU}): {e}"))
    }

    fn try_boot_with(mac: &str, http_port: u16, memory_mb: u32) -> io::Result<PxeNode> {
        let dir = tempfile::Builder::new().prefix("pxe-node-").tempdir()?;
        let script = dir.path().join("forward.py");
        fs::write(&script, FORWARDER_PY)?;
        let log_path = dir.path().join("qemu.log");
        let log = File::create(&log_path)?;

        let mut cmd = Command::new(QEMU);
        cmd.args(qemu_args(
            mac,
            &forwarder_cmd(&script, http_port),
            memory_mb,
        ))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        let started = Instant::now();
        let child = cmd.spawn()?;
        Ok(PxeNode {
            child: Some(child),
            log_path,
            started,
            dir,
        })
    }

    /// Everything QEMU printed so far: the serial console (SeaBIOS and iPXE
    /// messages, with `\r` and ANSI colour codes) and QEMU's own errors.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The node's temp dir (forwarder script and `qemu.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Time since QEMU was spawned.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// QEMU's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// QEMU's exit status if it has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for QEMU to exit by itself (e.g. after the iPXE
    /// script says `exit`); `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `timeout` until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills QEMU (if still running) and removes the temp dir.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for PxeNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `<python3> '<script>' <port>`, as run by QEMU through `/bin/sh -c`.
fn forwarder_cmd(script: &Path, port: u16) -> String {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    format!(
        "{python} {} {port}",
        shell_quote(&script.display().to_string())
    )
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The file [`shell_command`]'s node notes its HTTP requests in.
pub const REQUESTS_LOG: &str = "requests.log";

/// The same node as a shell command, for something else to start and stop
/// (a BMC's chassis, see `IpmiSim::start_node`): `exec <qemu> <args>`, so
/// the shell's pid becomes QEMU's. The forwarder is written into `dir`,
/// and every HTTP request line the node sends (`GET /boot.ipxe`, …) is
/// appended to `dir/requests.log` (see [`requests`]). The console goes to
/// the command's stdout.
pub fn shell_command(mac: &str, http_port: u16, dir: &Path) -> io::Result<String> {
    let script = dir.join("forward.py");
    fs::write(&script, FORWARDER_PY)?;
    let forwarder = format!(
        "{} {}",
        forwarder_cmd(&script, http_port),
        shell_quote(&dir.join(REQUESTS_LOG).display().to_string())
    );
    let args: Vec<String> = qemu_args(mac, &forwarder, 256)
        .iter()
        .map(|arg| shell_quote(arg))
        .collect();
    Ok(format!("exec {QEMU} {}", args.join(" ")))
}

/// The request lines a [`shell_command`] node sent, oldest first, e.g.
/// `GET /boot/52-54-00-12-34-56?hostname=`.
pub fn requests(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(REQUESTS_LOG))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// QEMU's arguments. A comma inside an option value is written `,,`.
fn qemu_args(mac: &str, forwarder: &str, memory_mb: u32) -> Vec<String> {
    let netdev = format!(
        "user,id=n0,restrict=on,guestfwd=tcp:{GUEST_SERVER_ADDR}:80-cmd:{},bootfile={BOOT_FILE_URL}",
        forwarder.replace(',', ",,")
    );
    let memory = memory_mb.to_string();
    [
        "-accel",
        "tcg",
        "-m",
        &memory,
        "-nographic",
        "-no-reboot",
        // Boot the NIC only; on failure/`exit` reboot at once, which
        // -no-reboot turns into QEMU exiting.
        "-boot",
        "strict=on,reboot-timeout=0",
        "-netdev",
        &netdev,
        "-device",
        &format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
