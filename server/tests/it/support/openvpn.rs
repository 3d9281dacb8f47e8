//! A real OpenVPN server and client on loopback (Debian's `openvpn`).
//! The server runs the configuration `bootler vpn server-config` prints,
//! on `dev tun` with `ifconfig-noexec` (server mode refuses `dev null`);
//! the client runs the profile Bootler hands out, on `dev null` with
//! `ifconfig-noexec` and `route-noexec`. The keys come from `openssl` and
//! `openvpn --genkey`, made fresh for each test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The CA, the server's certificate and key, and the tls-crypt key.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub tls_crypt: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        let path = |name: &str| dir.join(name);
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Bootler test CA",
            ])
            .arg("-keyout")
            .arg(path("ca.key"))
            .arg("-out")
            .arg(path("ca.crt")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=vpn.lab.test",
            ])
            .arg("-keyout")
            .arg(path("server.key"))
            .arg("-out")
            .arg(path("server.csr")));
        std::fs::write(
            path("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(path("server.csr"))
            .arg("-CA")
            .arg(path("ca.crt"))
            .arg("-CAkey")
            .arg(path("ca.key"))
            .arg("-extfile")
            .arg(path("server.ext"))
            .arg("-out")
            .arg(path("server.crt")));
        run(Command::new("openvpn")
            .args(["--genkey", "tls-crypt"])
            .arg(path("tc.key")));
        Pki {
            ca: path("ca.crt"),
            cert: path("server.crt"),
            key: path("server.key"),
            tls_crypt: path("tc.key"),
        }
    }

    /// Bootler's `[vpn]` settings for these files, as environment variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BOOTLER_VPN__CA_FILE", self.ca.display().to_string()),
            ("BOOTLER_VPN__CERT_FILE", self.cert.display().to_string()),
            ("BOOTLER_VPN__KEY_FILE", self.key.display().to_string()),
            (
                "BOOTLER_VPN__TLS_CRYPT_KEY_FILE",
                self.tls_crypt.display().to_string(),
            ),
        ]
    }
}

/// An `openvpn` process and everything it printed.
pub struct OpenVpn {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl OpenVpn {
    fn spawn(mut cmd: Command) -> OpenVpn {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let kept = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    kept.lock().unwrap().push(line);
                }
            });
        }
        OpenVpn { child, log }
    }

    /// `openvpn --config <config>` as a server, on a tun device it does not
    /// configure. Waits until it is up.
    pub fn server(dir: &Path, config: &str) -> OpenVpn {
        let file = dir.join("server.conf");
        std::fs::write(&file, config).unwrap();
        let mut cmd = Command::new("openvpn");
        cmd.current_dir(dir)
            .arg("--config")
            .arg(&file)
            .args(["--ifconfig-noexec", "--route-noexec", "--tmp-dir"])
            .arg(dir);
        let server = OpenVpn::spawn(cmd);
        server.wait_for(
            &["Initialization Sequence Completed"],
            Duration::from_secs(30),
        );
        server
    }

    /// `openvpn --config <profile>` as a client with `username`/`password`,
    /// on `dev null`. Returns at once; see [`OpenVpn::outcome`].
    pub fn client(dir: &Path, profile: &Path, username: &str, password: &str) -> OpenVpn {
        let credentials = dir.join(format!("credentials-{username}"));
        std::fs::write(&credentials, format!("{username}\n{password}\n")).unwrap();
        let mut cmd = Command::new("openvpn");
        cmd.current_dir(dir)
            .arg("--config")
            .arg(profile)
            .args(["--dev", "null", "--ifconfig-noexec", "--route-noexec"])
            .args(["--auth-retry", "none", "--connect-retry-max", "1"])
            .arg("--auth-user-pass")
            .arg(&credentials);
        OpenVpn::spawn(cmd)
    }

    /// Whether the client got in (`true`) or was refused (`false`).
    pub fn outcome(&self) -> bool {
        let line = self.wait_for(
            &["Initialization Sequence Completed", "AUTH_FAILED"],
            Duration::from_secs(60),
        );
        line.contains("Initialization Sequence Completed")
    }

    /// The first line containing one of `needles`, waiting up to `limit`.
    pub fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().any(|n| l.contains(n)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "openvpn said none of {needles:?} in {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpenVpn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
