//! A real BMC for tests: OpenIPMI's `ipmi_sim` on a free loopback UDP port,
//! with one administrator (`admin` / `secret`), one user who may only
//! read (`viewer` / `viewing`), and a `chassis_control`
//! script that plays the node: it keeps the power state in a file and
//! writes every call, with its time, to a log the tests read.
//!
//! ipmi_sim calls the script as `<script> get power` (answer `power:0|1`),
//! `<script> get boot` (answer `boot:<device>`), `<script> set power 0|1`,
//! `<script> set shutdown 1` (soft off), `<script> set reset 1` and
//! `<script> set boot <device>` (`pxe`, `disk`, `cdrom`, `bios`, `default`).
//!
//! [`IpmiSim::start_node`] makes the chassis a machine instead (the
//! simulated lab, as `scripts/lab.sh` runs it): "power on" starts a command
//! (a QEMU PXE node, see `support/pxe.rs`), "power off" and "soft off" kill
//! it, and the power state is whether it runs.
//!
//! Every test starts its own simulator, in a process group of its own that
//! holds what it starts (the chassis script, a machine; QEMU's network
//! forwarders run in sessions of their own and end with their connection
//! when QEMU does). The group is killed on drop, and a watchdog shell
//! kills it when the test process is gone, however it ended. Cross-checks
//! use the real `ipmitool`, not Bootler's code.

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootler_domain::power::ipmi::IpmiSettings;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "secret";
/// A second user whose role stops at "user": may read, may not act.
pub const VIEWER: &str = "viewer";
pub const VIEWER_PASSWORD: &str = "viewing";

pub struct IpmiSim {
    pub port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
    dir: tempfile::TempDir,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`{name}` is not installed: install the Debian packages openipmi ipmitool \
         (scripts/setup.sh test)"
    );
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

/// The chassis: `power` and `boot` files next to the script, `calls.log`
/// with one line per call. A soft shutdown is an operating system that
/// obeys: the power goes off.
///
/// With `node.sh` next to it, the chassis is a machine: power on runs
/// `node.sh` in the background (no stdin, output appended to `node.log`,
/// its pid in `node.pid`), power off, soft off and reset kill it (reset
/// starts it again), and the power is on while it runs. It counts as
/// running only while that pid is alive, not a zombie, and in the
/// simulator's process group (so a reused pid is never taken for it).
/// ipmi_sim waits for the script (it reads its output to the end), so the
/// node must hold none of its descriptors: `node.log` replaces stdout.
const CHASSIS_SCRIPT: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "$(date +%s.%N) $*" >> "$d/calls.log"
group_of() { # pid: its process group, if it runs and is no zombie
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  set -- $st
  [ "$1" != Z ] || return 1
  echo "$3"
}
node_pid() { # the node's pid, while it runs
  pid=$(cat "$d/node.pid" 2>/dev/null) || return 1
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  [ "$(group_of "$pid")" = "$(group_of $$)" ] || return 1
  echo "$pid"
}
node_on() {
  node_pid >/dev/null && return 0
  echo "===== $(date +%s.%N): powered on by the BMC =====" >> "$d/node.log"
  bash "$d/node.sh" </dev/null >>"$d/node.log" 2>&1 &
  echo $! > "$d/node.pid"
}
node_off() {
  pid=$(node_pid) || return 0
  kill -TERM "$pid" 2>/dev/null
  i=0
  while [ $i -lt 30 ] && node_pid >/dev/null; do sleep 0.1; i=$((i + 1)); done
  node_pid >/dev/null && kill -KILL "$pid" 2>/dev/null
  echo "===== $(date +%s.%N): $1 =====" >> "$d/node.log"
}
op=$1
shift
case "$op" in
get)
  for what in "$@"; do
    case "$what" in
      power)
        if [ -f "$d/node.sh" ]; then
          if node_pid >/dev/null; then echo power:1; else echo power:0; fi
        else
          echo "power:$(cat "$d/power" 2>/dev/null || echo 0)"
        fi
        ;;
      boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)" ;;
    esac
  done
  ;;
set)
  while [ $# -ge 2 ]; do
    if [ -f "$d/node.sh" ]; then
      case "$1" in
        power) if [ "$2" = 1 ]; then node_on; else node_off "powered off by the BMC"; fi ;;
        shutdown) [ "$2" = 1 ] && node_off "soft off (the node obeys at once)" ;;
        reset) [ "$2" = 1 ] && { node_off "reset by the BMC"; node_on; } ;;
        boot) echo "$2" > "$d/boot" ;;
      esac
    else
      case "$1" in
        power) echo "$2" > "$d/power" ;;
        shutdown) echo 0 > "$d/power" ;;
        boot) echo "$2" > "$d/boot" ;;
      esac
    fi
    shift 2
  done
  ;;
esac
exit 0
"#;

/// What `node.sh` runs first: it lets go of every descriptor it inherited
/// from ipmi_sim and the chassis script besides stdin, stdout and stderr
/// (ipmi_sim's sockets, say), then runs the node's command.
const NODE_PRELUDE: &str = r#"#!/bin/bash
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case $fd in 0|1|2|255) ;; *) [ -e "/proc/$$/fd/$fd" ] && eval "exec $fd>&-" ;; esac
done
"#;

impl IpmiSim {
    /// Starts a simulator with the chassis powered off and waits until
    /// `ipmitool` gets an answer from it.
    pub fn start() -> IpmiSim {
        IpmiSim::launch(None::<fn(&Path) -> String>)
    }

    /// Starts a simulator whose chassis is a machine, powered off: "power
    /// on" runs the shell command `node` returns (with bash, in the
    /// background, from the simulator's folder, its output appended to
    /// `node.log`); "power off" and "soft off" kill it (SIGTERM, SIGKILL
    /// after 3 s); the power is on while it runs. `node` gets the
    /// simulator's folder, for the machine's own files. The command should
    /// `exec` the machine, so that the pid the chassis keeps is the
    /// machine's.
    pub fn start_node(node: impl FnOnce(&Path) -> String) -> IpmiSim {
        IpmiSim::launch(Some(node))
    }

    fn launch(node: Option<impl FnOnce(&Path) -> String>) -> IpmiSim {
        let sim_bin = tool("ipmi_sim");
        tool("ipmitool");
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let script = dir.path().join("chassis.sh");
        std::fs::write(&script, CHASSIS_SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("power"), "0\n").unwrap();
        if let Some(node) = node {
            let command = node(dir.path());
            std::fs::write(
                dir.path().join("node.sh"),
                format!("{NODE_PRELUDE}{command}\n"),
            )
            .unwrap();
        }
        // `name` picks the folder under the state directory; `guid` is
        // needed for RMCP+ (RAKP signs it). The user line's last fields
        // are the IPMI 1.5 authentication types the user may use.
        let lan_conf = format!(
            "name \"bootler\"\n\
             startlan 1\n\
             \x20 addr 127.0.0.1 {port}\n\
             \x20 priv_limit admin\n\
             \x20 allowed_auths_callback none md2 md5 straight\n\
             \x20 allowed_auths_user none md2 md5 straight\n\
             \x20 allowed_auths_operator none md2 md5 straight\n\
             \x20 allowed_auths_admin none md2 md5 straight\n\
             \x20 guid a123456789abcdefa123456789abcdef\n\
             endlan\n\
             chassis_control \"{script}\"\n\
             user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight\n\
             user 3 true \"{VIEWER}\" \"{VIEWER_PASSWORD}\" user 10 none md2 md5 straight\n",
            script = script.display()
        );
        std::fs::write(dir.path().join("lan.conf"), lan_conf).unwrap();
        // Without `mc_setbmc` ipmi_sim exits at once ("No bmc_ipmb
        // specified or configured"), with status 1 and nothing on stderr
        // when -n is given.
        std::fs::write(
            dir.path().join("sim.emu"),
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let log = std::fs::File::create(dir.path().join("ipmi_sim.log")).unwrap();
        // -n: no console on stdin/stdout (with stdin not a terminal,
        // ipmi_sim would abort in epoll). Its own process group (id: its
        // pid) holds whatever its chassis script starts, to kill at the end.
        let child = Command::new(sim_bin)
            .process_group(0)
            .current_dir(dir.path())
            .arg("-c")
            .arg(dir.path().join("lan.conf"))
            .arg("-f")
            .arg(dir.path().join("sim.emu"))
            .arg("-s")
            .arg(dir.path().join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ipmi_sim");
        let mut sim = IpmiSim {
            port,
            child: None,
            watchdog: None,
            dir,
        };
        sim.watchdog = sim.spawn_watchdog(child.id());
        sim.child = Some(child);
        sim.wait_ready();
        // Forget the start-up's calls: tests read what they caused.
        std::fs::write(sim.dir.path().join("calls.log"), "").unwrap();
        sim
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "ipmi_sim exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("ipmi_sim.log"))
                        .unwrap_or_default()
                );
            }
            let out = self.ipmitool_output(&["chassis", "power", "status"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ipmi_sim did not answer on UDP port {} within 20 s: {}",
                self.port,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills ipmi_sim's process group once the test process is gone (or
    /// the folder is). ipmi_sim is never reaped before [`Drop`] kills the
    /// watchdog, so its pid still names its group then.
    fn spawn_watchdog(&self, pid: u32) -> Option<Child> {
        let script = format!(
            "while kill -0 {me} 2>/dev/null && [ -d '{dir}' ]; do sleep 1; done; kill -9 -{pid} {pid} 2>/dev/null",
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

    /// Settings for Bootler's driver: RMCP+ with cipher suite 3, 1 s per
    /// attempt, two retries.
    pub fn settings(&self) -> IpmiSettings {
        IpmiSettings {
            address: "127.0.0.1".into(),
            port: self.port,
            username: USER.into(),
            password: PASSWORD.into(),
            cipher_suite: 3,
            lanplus: true,
            timeout: Duration::from_secs(1),
            retries: 2,
        }
    }

    /// Every call of the chassis script since start-up: (Unix time, the
    /// arguments), e.g. `(1795305700.17, "set power 1")`.
    pub fn log(&self) -> Vec<(f64, String)> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (time, args) = line.split_once(' ')?;
                Some((time.parse().ok()?, args.to_string()))
            })
            .collect()
    }

    /// The calls that changed something (`set …`), in order.
    pub fn sets(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .map(|(_, args)| args)
            .filter(|args| args.starts_with("set "))
            .collect()
    }

    /// Waits until the script was called with `args`, up to `within`;
    /// returns when.
    pub fn wait_for(&self, args: &str, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            if let Some((time, _)) = self.log().into_iter().find(|(_, a)| a == args) {
                return time;
            }
            assert!(
                Instant::now() < deadline,
                "ipmi_sim did not call `chassis.sh {args}` within {within:?}; calls: {:?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the simulated chassis is powered on (the script's file; for
    /// a machine, whether it runs).
    pub fn power(&self) -> bool {
        if self.is_node() {
            return self.node_pid().is_some();
        }
        std::fs::read_to_string(self.dir.path().join("power"))
            .unwrap_or_default()
            .trim()
            == "1"
    }

    /// The simulator's folder (`calls.log`, and a machine's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn is_node(&self) -> bool {
        self.dir.path().join("node.sh").exists()
    }

    /// The machine's pid while it runs ([`IpmiSim::start_node`]): alive,
    /// not a zombie, and in the simulator's process group, as the chassis
    /// script checks it.
    pub fn node_pid(&self) -> Option<u32> {
        let group = self.child.as_ref()?.id();
        let pid: u32 = std::fs::read_to_string(self.dir.path().join("node.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
        (fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str()))
            .then_some(pid)
    }

    /// What the machine printed (every run, with a line where the BMC
    /// powered it on or off).
    pub fn node_log(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.path().join("node.log")).unwrap_or_default(),
        )
        .into_owned()
    }

    /// Powers the simulated chassis on or off behind the BMC's back (not
    /// for a machine: start or stop it through the BMC).
    pub fn set_power(&self, on: bool) {
        assert!(!self.is_node(), "a machine is powered through its BMC");
        std::fs::write(
            self.dir.path().join("power"),
            if on { "1\n" } else { "0\n" },
        )
        .unwrap();
    }

    fn ipmitool_output(&self, args: &[&str]) -> std::process::Output {
        // `-C 3` names the cipher suite: without it ipmitool first asks
        // for the channel's cipher suites, which ipmi_sim does not answer,
        // and waits 10 s.
        Command::new(tool("ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "2"])
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", USER, "-P", PASSWORD])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool")
    }

    /// `ipmitool -I lanplus … <args>`; its output, or a panic with it.
    pub fn ipmitool(&self, args: &[&str]) -> String {
        let out = self.ipmitool_output(args);
        assert!(
            out.status.success(),
            "ipmitool {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What `ipmitool chassis power status` says: on (`true`) or off.
    pub fn ipmitool_power(&self) -> bool {
        let out = self.ipmitool(&["chassis", "power", "status"]);
        match out.trim() {
            "Chassis Power is on" => true,
            "Chassis Power is off" => false,
            other => panic!("unexpected ipmitool answer: {other}"),
        }
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group first (a machine, its helpers, a chassis
            // script that runs): ipmi_sim is not reaped yet, so its pid
            // still names the group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
