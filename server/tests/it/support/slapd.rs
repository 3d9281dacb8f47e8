//! A real OpenLDAP for tests: Debian's `slapd` with a private `cn=config`
//! built by `slapadd -n0 -F <dir>` in a temporary folder, serving
//! `dc=lab,dc=test` on a free loopback port as a child process.
//!
//! Every test starts its own server (some stop and restart theirs). It is
//! killed on drop, and a watchdog shell kills it when the test process is
//! gone, however it ended. Checks use the real `ldapsearch` and
//! `ldapwhoami`, not Bootler's code.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bootler_domain::config::LdapConfig;

pub const SUFFIX: &str = "dc=lab,dc=test";
pub const PEOPLE: &str = "ou=people,dc=lab,dc=test";
/// A posixGroup (no members yet) for `ldap.disabled_group_dn`.
pub const DISABLED_GROUP: &str = "cn=disabled,ou=groups,dc=lab,dc=test";
/// The ppolicy overlay's default policy, with `Slapd::start_with_ppolicy`.
pub const DEFAULT_POLICY: &str = "cn=default,ou=policies,dc=lab,dc=test";
/// The root DN: bypasses every ACL; the checks read with it.
pub const ADMIN_DN: &str = "cn=admin,dc=lab,dc=test";
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// Bootler's service account, with exactly the rights docs/ldap.md asks for.
pub const SERVICE_DN: &str = "cn=bootler,dc=lab,dc=test";
pub const SERVICE_PASSWORD: &str = "bootler service secret";
/// Searches by the service account stop after this many entries, so the
/// tests see Bootler cope with answers cut short (slapd's default is 500).
pub const SERVICE_SIZE_LIMIT: usize = 3;

/// Where the test CA, the server certificate and its key are, for TLS.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Slapd {
    pub port: u16,
    /// `ldaps://127.0.0.1:<tls_port>/` when started with TLS.
    pub tls_port: Option<u16>,
    pub url: String,
    child: Option<Child>,
    watchdog: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`{name}` is not installed: run scripts/setup.sh test (Debian packages slapd, ldap-utils)"
    );
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian keeps slapd's backends as modules; other builds link them in.
fn module_dir() -> Option<&'static str> {
    ["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"]
        .into_iter()
        .find(|dir| {
            Path::new(dir).join("back_mdb.la").exists()
                || Path::new(dir).join("back_mdb.so").exists()
        })
}

fn schema(name: &str) -> PathBuf {
    for dir in ["/etc/ldap/schema", "/etc/openldap/schema"] {
        let path = Path::new(dir).join(format!("{name}.ldif"));
        if path.exists() {
            return path;
        }
    }
    panic!("schema {name}.ldif not found (is slapd installed?)");
}

fn config_ldif(dir: &Path, tls: Option<&Tls>, ppolicy: bool) -> String {
    let modules = match module_dir() {
        Some(path) => format!(
            "dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
             olcModulePath: {path}\nolcModuleLoad: back_mdb\n{}\n",
            if ppolicy {
                "olcModuleLoad: ppolicy\n"
            } else {
                ""
            }
        ),
        None => String::new(),
    };
    let overlay = if ppolicy {
        format!(
            "\ndn: olcOverlay={{0}}ppolicy,olcDatabase={{1}}mdb,cn=config\n\
             objectClass: olcOverlayConfig\nobjectClass: olcPPolicyConfig\n\
             olcOverlay: {{0}}ppolicy\nolcPPolicyDefault: {DEFAULT_POLICY}\n"
        )
    } else {
        String::new()
    };
    let tls = match tls {
        Some(tls) => format!(
            "olcTLSCACertificateFile: {}\nolcTLSCertificateFile: {}\nolcTLSCertificateKeyFile: {}\n",
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display()
        ),
        None => String::new(),
    };
    let schemas: String = ["core", "cosine", "inetorgperson", "nis"]
        .iter()
        .map(|name| format!("include: file://{}\n", schema(name).display()))
        .collect();
    format!(
        "dn: cn=config\n\
         objectClass: olcGlobal\n\
         cn: config\n\
         olcPidFile: {pid}\n\
         {tls}\n\
         {modules}\
         dn: cn=schema,cn=config\n\
         objectClass: olcSchemaConfig\n\
         cn: schema\n\n\
         {schemas}\n\
         dn: olcDatabase={{-1}}frontend,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\n\
         olcDatabase: {{-1}}frontend\n\n\
         dn: olcDatabase={{0}}config,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\n\
         olcAccess: {{0}}to * by * none\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\n\
         olcDatabase: {{1}}mdb\n\
         olcDbDirectory: {db}\n\
         olcSuffix: {SUFFIX}\n\
         olcRootDN: {ADMIN_DN}\n\
         olcRootPW: {ADMIN_PASSWORD}\n\
         olcDbNoSync: TRUE\n\
         olcDbIndex: objectClass eq\n\
         olcDbIndex: uid eq\n\
         olcDbIndex: uidNumber eq\n\
         olcAccess: {{0}}to attrs=userPassword by dn.exact=\"{SERVICE_DN}\" write by self write by anonymous auth by * none\n\
         olcAccess: {{1}}to dn.subtree=\"{PEOPLE}\" by dn.exact=\"{SERVICE_DN}\" write by * read\n\
         olcAccess: {{2}}to dn.subtree=\"ou=groups,{SUFFIX}\" by dn.exact=\"{SERVICE_DN}\" write by * read\n\
         olcAccess: {{3}}to * by * read\n\
         olcLimits: dn.exact=\"{SERVICE_DN}\" size={SERVICE_SIZE_LIMIT}\n\
         {overlay}",
        pid = dir.join("slapd.pid").display(),
        db = dir.join("db").display(),
    )
}

fn base_ldif(ppolicy: bool) -> String {
    let policy = if ppolicy {
        format!(
            "\ndn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n\n\
             dn: {DEFAULT_POLICY}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\n\
             cn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 1000\n"
        )
    } else {
        String::new()
    };
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: lab\no: Lab\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {DISABLED_GROUP}\nobjectClass: posixGroup\ncn: disabled\ngidNumber: 9999\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: bootler\nuserPassword: {SERVICE_PASSWORD}\n{policy}"
    )
}

/// One entry of `ldapsearch -LLL` output: its DN and its values.
#[derive(Debug, Clone)]
pub struct LdifEntry {
    pub dn: String,
    pub attrs: Vec<(String, String)>,
}

impl LdifEntry {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of `name`.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name} of {}: {all:?}", self.dn);
        all[0]
    }
}

/// Parses `ldapsearch -LLL -o ldif-wrap=no` output (`attr:: base64` too).
pub fn parse_ldif(text: &str) -> Vec<LdifEntry> {
    let mut entries = Vec::new();
    for block in text.split("\n\n") {
        let mut entry: Option<LdifEntry> = None;
        for line in block
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (name, value) = if let Some((name, value)) = line.split_once(":: ") {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .unwrap();
                (name, String::from_utf8(raw).unwrap())
            } else {
                let (name, value) = line.split_once(':').unwrap();
                (name, value.trim_start().to_string())
            };
            if name == "dn" {
                entry = Some(LdifEntry {
                    dn: value,
                    attrs: Vec::new(),
                });
            } else if let Some(entry) = entry.as_mut() {
                entry.attrs.push((name.to_string(), value));
            }
        }
        entries.extend(entry);
    }
    entries
}

impl Slapd {
    /// A new server with an empty `ou=people` and Bootler's service account.
    pub fn start() -> Slapd {
        Slapd::start_inner(None, false)
    }

    /// The same with the ppolicy overlay and a default policy that honours
    /// `pwdAccountLockedTime` (OpenLDAP's own account lock).
    pub fn start_with_ppolicy() -> Slapd {
        Slapd::start_inner(None, true)
    }

    /// The same, also speaking TLS (StartTLS on `url`, and `ldaps://` on
    /// `tls_port`) with a certificate for 127.0.0.1 from a test CA.
    pub fn start_with_tls(tls: &Tls) -> Slapd {
        Slapd::start_inner(Some(tls), false)
    }

    fn start_inner(tls: Option<&Tls>, ppolicy: bool) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("bootler-slapd-")
            .tempdir()
            .expect("temp dir");
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let config = dir.path().join("config.ldif");
        std::fs::write(&config, config_ldif(dir.path(), tls, ppolicy)).unwrap();
        run(
            Command::new(tool("slapadd"))
                .args(["-n0", "-F"])
                .arg(&config_dir)
                .arg("-l")
                .arg(&config),
            "slapadd -n0 (cn=config)",
        );
        let base = dir.path().join("base.ldif");
        std::fs::write(&base, base_ldif(ppolicy)).unwrap();
        run(
            Command::new(tool("slapadd"))
                .args(["-n1", "-F"])
                .arg(&config_dir)
                .arg("-l")
                .arg(&base),
            "slapadd -n1 (base entries)",
        );
        let port = free_port();
        let mut slapd = Slapd {
            port,
            tls_port: tls.map(|_| free_port()),
            url: format!("ldap://127.0.0.1:{port}/"),
            child: None,
            watchdog: None,
            dir,
        };
        slapd.run();
        slapd
    }

    fn urls(&self) -> String {
        match self.tls_port {
            Some(tls_port) => format!("{} ldaps://127.0.0.1:{tls_port}/", self.url),
            None => self.url.clone(),
        }
    }

    /// Starts the server process (again) on the same port and data and
    /// waits until it answers.
    fn run(&mut self) {
        assert!(self.child.is_none(), "slapd is already running");
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).unwrap();
        // Runs as whoever runs the tests (root included): every file is
        // ours, so slapd needs no -u/-g.
        let child = Command::new(tool("slapd"))
            .arg("-h")
            .arg(self.urls())
            .arg("-F")
            .arg(self.dir.path().join("config"))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start slapd");
        self.watchdog = self.spawn_watchdog(child.id());
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("slapd exited with {status}: {}", self.log());
            }
            let connected = TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.port).into(),
                Duration::from_millis(200),
            )
            .is_ok();
            if connected {
                let out = Command::new(tool("ldapsearch"))
                    .args(["-x", "-LLL", "-o", "nettimeout=2", "-H", &self.url])
                    .args(["-b", SUFFIX, "-s", "base", "dn"])
                    .output()
                    .expect("ldapsearch");
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not answer on port {} within 20 s: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Kills slapd when the test process is gone (or the folder is).
    fn spawn_watchdog(&self, pid: u32) -> Option<Child> {
        let script = format!(
            "while kill -0 {me} 2>/dev/null && [ -d '{dir}' ]; do sleep 1; done; kill -9 {pid} 2>/dev/null",
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

    /// Stops the server; the data stays for [`Slapd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Its watchdog too, so it never kills a process that reuses the pid.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // The port must be closed before the test goes on.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Bootler's `[ldap]` section for this server, as the service account.
    pub fn ldap_config(&self) -> LdapConfig {
        LdapConfig {
            url: Some(self.url.clone()),
            bind_dn: Some(SERVICE_DN.into()),
            bind_password: Some(SERVICE_PASSWORD.into()),
            users_dn: Some(PEOPLE.into()),
            timeout_seconds: 5,
            ..LdapConfig::default()
        }
    }

    /// `ldapsearch` as the root DN under `base` (subtree), parsed.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<LdifEntry> {
        let out = Command::new(tool("ldapsearch"))
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url])
            .args(["-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-b", base, filter])
            .args(attrs)
            .output()
            .expect("ldapsearch");
        // 32: the base does not exist, which is an empty answer here.
        assert!(
            out.status.success() || out.status.code() == Some(32),
            "ldapsearch -b {base} {filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_ldif(&String::from_utf8_lossy(&out.stdout))
    }

    /// The exit code of `ldapsearch` bound as `dn` (4: size limit exceeded).
    pub fn search_status(&self, dn: &str, password: &str, base: &str, filter: &str) -> i32 {
        Command::new(tool("ldapsearch"))
            .args(["-x", "-LLL", "-H", &self.url, "-D", dn, "-w", password])
            .args(["-b", base, filter, "1.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ldapsearch")
            .code()
            .unwrap_or(-1)
    }

    /// The entry `uid=<username>,ou=people,…` with all its attributes
    /// (userPassword included), if there is one.
    pub fn person(&self, username: &str) -> Option<LdifEntry> {
        let out = Command::new(tool("ldapsearch"))
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url])
            .args(["-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-s", "base", "-b"])
            .arg(format!("uid={username},{PEOPLE}"))
            .arg("(objectClass=*)")
            .output()
            .expect("ldapsearch");
        if out.status.code() == Some(32) {
            return None;
        }
        assert!(
            out.status.success(),
            "ldapsearch uid={username}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_ldif(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .next()
    }

    /// Whether `ldapwhoami` can bind as `dn` with `password`; the DN the
    /// server says we are, if so.
    pub fn whoami(&self, dn: &str, password: &str) -> Option<String> {
        let out = Command::new(tool("ldapwhoami"))
            .args(["-x", "-H", &self.url, "-D", dn, "-w", password])
            .output()
            .expect("ldapwhoami");
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Invalid credentials (49)"),
            "ldapwhoami -D {dn}: unexpected failure: {stderr}"
        );
        None
    }

    /// `ldapadd` as the root DN.
    pub fn add(&self, ldif: &str) {
        self.change("ldapadd", ldif);
    }

    /// `ldapmodify` as the root DN (`changetype:` records).
    pub fn modify(&self, ldif: &str) {
        self.change("ldapmodify", ldif);
    }

    fn change(&self, program: &str, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        run(
            Command::new(tool(program))
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-D",
                    ADMIN_DN,
                    "-w",
                    ADMIN_PASSWORD,
                    "-f",
                ])
                .arg(&path),
            program,
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Tls {
    /// A test CA and a certificate for 127.0.0.1 and localhost signed by it,
    /// made with the `openssl` command in `dir`.
    pub fn generate(dir: &Path) -> Tls {
        let openssl = tool("openssl");
        let ca_key = dir.join("ca.key");
        let ca = dir.join("ca.pem");
        let key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let cert = dir.join("server.pem");
        let ext = dir.join("server.ext");
        run(
            Command::new(&openssl)
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=Bootler test CA", "-keyout"])
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca),
            "openssl: CA",
        );
        run(
            Command::new(&openssl)
                .args([
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
            "openssl: server key",
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(
            Command::new(&openssl)
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .args(["-CAcreateserial", "-extfile"])
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
            "openssl: server certificate",
        );
        Tls { ca, cert, key }
    }
}
