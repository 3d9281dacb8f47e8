//! The templates Bootler ships, ready to use: boot from the local disk,
//! Debian/Ubuntu (debian-installer and preseed), Rocky/Alma (kickstart),
//! and Clonezilla save/restore. Each reads its settings from the host's
//! variables (`vars.*`), with defaults for all but the ones that cannot
//! have one (the Clonezilla repository and image).
//!
//! The bodies live in `defaults/`; their rendering for a fixed host is
//! snapshot-tested against `defaults/<file>.expected`
//! (`BOOTLER_UPDATE_SNAPSHOTS=1` rewrites the snapshots).

use super::Kind;

/// A template that comes with Bootler.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    pub name: &'static str,
    pub kind: Kind,
    /// One sentence for the user: what it does, which vars it reads.
    pub description: &'static str,
    pub body: &'static str,
}

pub const SHIPPED: &[Shipped] = &[
    Shipped {
        name: "local-boot",
        kind: Kind::System,
        description: "Boots the host from its local disk (iPXE exit, back to the firmware's next boot device); reads no vars.",
        body: include_str!("defaults/local-boot.ipxe"),
    },
    Shipped {
        name: "debian-netboot",
        kind: Kind::System,
        description: "Debian netboot installer, unattended; its kernel and initrd come from Bootler's image store (vars: release = bookworm, boot_image = debian-12-amd64 for bookworm, installer_url = a folder with linux and initrd.gz instead of the store, mirror = http://deb.debian.org/debian, domain = from DHCP, nameservers = from DHCP, kernel_args = none, console = \"console=ttyS0,115200n8 console=tty0\"); pair with debian-preseed.",
        body: include_str!("defaults/debian-netboot.ipxe"),
    },
    Shipped {
        name: "ubuntu-netboot",
        kind: Kind::System,
        description: "Ubuntu 20.04 debian-installer netboot (legacy-images; 22.04 and later use autoinstall instead), unattended; its kernel and initrd come from Bootler's image store (vars: release = focal, boot_image = ubuntu-20.04-amd64, installer_url = a folder with linux and initrd.gz instead of the store, mirror = http://archive.ubuntu.com/ubuntu, domain = from DHCP, nameservers = from DHCP, kernel_args = none, console = \"console=ttyS0,115200n8 console=tty0\"); pair with debian-preseed.",
        body: include_str!("defaults/ubuntu-netboot.ipxe"),
    },
    Shipped {
        name: "debian-preseed",
        kind: Kind::Unattended,
        description: "Preseed for debian-netboot or ubuntu-netboot that erases the disk, creates the holder's account with their SSH keys, passwordless sudo and no password, and reports done (vars: disk = /dev/sda, mirror = the one the installer was booted with, proxy = none, locale = en_US.UTF-8, keymap = us, timezone = Etc/UTC, domain = from DHCP, packages = none, a list or a space-separated string).",
        body: include_str!("defaults/debian-preseed.cfg"),
    },
    Shipped {
        name: "rocky-netboot",
        kind: Kind::System,
        description: "Rocky Linux or AlmaLinux netboot installer, unattended; its kernel and initrd come from Bootler's image store (vars: boot_image = rocky-<release>-x86_64 with vmlinuz and initrd.img, installer_url = such a folder elsewhere, nameservers = from DHCP, kernel_args = none, release = 9, mirror = http://dl.rockylinux.org/pub/rocky or http://repo.almalinux.org/almalinux for Alma (http: iPXE builds without TLS fetch it too), console = \"console=ttyS0,115200n8 console=tty0\"); pair with rocky-kickstart.",
        body: include_str!("defaults/rocky-netboot.ipxe"),
    },
    Shipped {
        name: "rocky-kickstart",
        kind: Kind::Unattended,
        description: "Kickstart for rocky-netboot that erases the disk, installs a minimal system, creates the holder's account with their SSH keys, passwordless sudo and no password, and reports done (vars: release = 9, mirror = http://dl.rockylinux.org/pub/rocky, disk = sda, locale = en_US.UTF-8, keymap = us, timezone = Etc/UTC, packages = none, a list or a space-separated string).",
        body: include_str!("defaults/rocky-kickstart.cfg"),
    },
    Shipped {
        name: "clonezilla-save",
        kind: Kind::System,
        description: "Saves the host's disk as a Clonezilla image, reports done and reboots (vars: repository and image are required, e.g. repository = nfs://10.0.0.5/srv/images; disk = sda, boot_image = clonezilla, the image in Bootler's store with vmlinuz, initrd.img and filesystem.squashfs, or clonezilla_url = such a folder elsewhere).",
        body: include_str!("defaults/clonezilla-save.ipxe"),
    },
    Shipped {
        name: "clonezilla-restore",
        kind: Kind::System,
        description: "Restores a Clonezilla image onto the host's disk, reports done and reboots (vars: repository and image are required, e.g. repository = nfs://10.0.0.5/srv/images; disk = sda, boot_image = clonezilla, the image in Bootler's store with vmlinuz, initrd.img and filesystem.squashfs, or clonezilla_url = such a folder elsewhere).",
        body: include_str!("defaults/clonezilla-restore.ipxe"),
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use super::super::*;
    use super::{SHIPPED, Shipped};

    const KEYS: [&str; 2] = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII54pw2MuYAO5C89/IFd+pI5pTYu/7/YyrVEv+lKk3xa",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7vbqajDhA+6P8ksY9Vs4QZKq1u1Hn8lz3Xb0Y4H1m ana@laptop",
    ];

    /// `context()` of the thesis tests, with the Clonezilla vars and a
    /// second key.
    fn context() -> RenderContext {
        RenderContext {
            host: HostContext {
                id: 7,
                name: "node7".into(),
                interface: "eth1".into(),
                mac: "52:54:00:12:34:56".into(),
                ip: "10.10.0.7".into(),
            },
            mac: MacContext {
                mac_address: "52-54-00-12-34-56".into(),
            },
            vars: serde_json::json!({
                "disk": "vda",
                "user": "gsd",
                "repository": "nfs://10.0.0.5/srv/images",
                "image": "lab-2026",
            }),
            base_url: "http://bootler.lab".into(),
            email: "ana@uminho.pt".into(),
            user: UserContext {
                username: "ana".into(),
                display_name: "Ana Silva".into(),
                email: "ana@uminho.pt".into(),
            },
            ssh_keys: KEYS.iter().map(|k| k.to_string()).collect(),
            unattended_url: "http://bootler.lab/boot/52-54-00-12-34-56/unattended".into(),
            done_url: "http://bootler.lab/boot/52-54-00-12-34-56/done".into(),
        }
    }

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/templates/defaults")
    }

    /// The file a shipped template's body is in, under `defaults/`.
    fn file_name(shipped: &Shipped) -> String {
        let extension = match shipped.kind {
            Kind::System => "ipxe",
            Kind::Unattended => "cfg",
        };
        format!("{}.{extension}", shipped.name)
    }

    fn shipped(name: &str) -> &'static Shipped {
        SHIPPED
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no shipped template {name}"))
    }

    fn rendered(name: &str) -> String {
        let template = shipped(name);
        render(template.name, template.body, &context(), Limits::default()).unwrap()
    }

    #[test]
    fn every_shipped_template_renders_as_its_snapshot() {
        for template in SHIPPED {
            let file = file_name(template);
            // The body is the file (include_str!), not a stale copy.
            let on_disk = std::fs::read_to_string(dir().join(&file)).unwrap();
            assert_eq!(on_disk, template.body, "{file}");
            let output = rendered(template.name);
            let expected_path = dir().join(format!("{file}.expected"));
            if std::env::var_os("BOOTLER_UPDATE_SNAPSHOTS").is_some() {
                std::fs::write(&expected_path, &output).unwrap();
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap();
            assert_eq!(output, expected, "{file}");
            assert!(!output.contains("{{"), "{file}: unrendered placeholders");
            assert!(!output.contains("{%"), "{file}: unrendered tags");
            assert!(output.ends_with('\n'), "{file}: no final newline");
        }
    }

    #[test]
    fn names_are_unique_valid_and_described() {
        let mut names = HashSet::new();
        for template in SHIPPED {
            assert!(names.insert(template.name), "{} twice", template.name);
            // The rule of store.rs's check_name.
            let mut chars = template.name.chars();
            assert!(template.name.len() <= 64, "{}", template.name);
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{}",
                template.name
            );
            assert!(
                template.body.len() <= MAX_BODY,
                "{} is too long",
                template.name
            );
            let description = template.description;
            assert!(
                description.ends_with('.') && !description.contains('\n'),
                "{}: {description}",
                template.name
            );
            if template.body.contains("vars.") {
                assert!(
                    description.contains("vars:"),
                    "{}: the description names no vars",
                    template.name
                );
            }
        }
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn every_body_compiles() {
        for template in SHIPPED {
            check_syntax(template.name, template.body).unwrap();
        }
    }

    #[test]
    fn system_templates_are_ipxe_scripts_that_boot_what_they_load() {
        for template in SHIPPED.iter().filter(|t| t.kind == Kind::System) {
            let output = rendered(template.name);
            // iPXE wants the magic followed by whitespace.
            assert!(output.starts_with("#!ipxe\n"), "{}", template.name);
            for line in output.lines().skip(1) {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                // iPXE ends a command at these tokens and a comment at a
                // token starting with '#': none may hide in an argument.
                for (i, token) in tokens.iter().enumerate() {
                    assert!(
                        !["&&", "||", ";"].contains(token),
                        "{}: {line}",
                        template.name
                    );
                    assert!(
                        i == 0 || !token.starts_with('#'),
                        "{}: {line}",
                        template.name
                    );
                }
                assert!(!line.ends_with('\\'), "{}: {line}", template.name);
            }
            if template.name == "local-boot" {
                assert!(output.lines().any(|l| l == "exit"));
                continue;
            }
            // kernel …/K initrd=I …, initrd …/I, boot: the initrd= name
            // (needed by EFI) is the basename of the loaded initrd.
            let kernel = output
                .lines()
                .find(|l| l.starts_with("kernel "))
                .unwrap_or_else(|| panic!("{}: no kernel line", template.name));
            let initrd = output
                .lines()
                .find(|l| l.starts_with("initrd "))
                .unwrap_or_else(|| panic!("{}: no initrd line", template.name));
            let initrd_name = initrd.rsplit('/').next().unwrap();
            assert!(
                kernel.contains(&format!(" initrd={initrd_name} ")),
                "{}: {kernel}",
                template.name
            );
            assert_eq!(output.lines().last(), Some("boot"), "{}", template.name);
            // Quotes come in pairs (kernel parameters with spaces).
            assert_eq!(kernel.matches('"').count() % 2, 0, "{}", template.name);
        }
    }

    #[test]
    fn installers_fetch_their_answers_and_everything_reports_done() {
        let ctx = context();
        for name in ["debian-netboot", "ubuntu-netboot"] {
            assert!(
                rendered(name).contains(&format!(" url={} ", ctx.unattended_url)),
                "{name}"
            );
        }
        assert!(rendered("rocky-netboot").contains(&format!(" inst.ks={} ", ctx.unattended_url)));
        for template in SHIPPED.iter().filter(|t| t.kind == Kind::Unattended) {
            assert!(
                rendered(template.name).contains(&ctx.done_url),
                "{}",
                template.name
            );
        }
        for name in ["clonezilla-save", "clonezilla-restore"] {
            let output = rendered(name);
            assert!(
                output.contains(&format!(
                    "ocs_postrun=\"wget -q -O /dev/null {}\" ocs_postrun1=\"reboot\"",
                    ctx.done_url
                )),
                "{name}"
            );
            assert!(
                output.contains("ocs_repository=\"nfs://10.0.0.5/srv/images\""),
                "{name}"
            );
            assert!(output.contains(" lab-2026 vda\""), "{name}");
        }
    }

    #[test]
    fn the_holders_keys_are_installed() {
        let preseed = rendered("debian-preseed");
        let kickstart = rendered("rocky-kickstart");
        for key in KEYS {
            assert!(preseed.contains(&format!("echo '{key}' >> ")), "{key}");
            assert!(
                kickstart.contains(&format!("sshkey --username=ana \"{key}\"\n")),
                "{key}"
            );
        }
        // Quotes in a key (authorized_keys options) stay inside the quoting.
        let mut ctx = context();
        ctx.ssh_keys = vec![r#"from="10.0.0.0/8" ssh-ed25519 AAAA it's me"#.into()];
        let template = shipped("debian-preseed");
        let preseed = render(template.name, template.body, &ctx, Limits::default()).unwrap();
        assert!(preseed.contains(r#"echo 'from="10.0.0.0/8" ssh-ed25519 AAAA it'\''s me' >> "#));
        let template = shipped("rocky-kickstart");
        let kickstart = render(template.name, template.body, &ctx, Limits::default()).unwrap();
        assert!(
            kickstart.contains(
                r#"sshkey --username=ana "from=\"10.0.0.0/8\" ssh-ed25519 AAAA it's me""#
            )
        );
    }

    #[test]
    fn vars_change_what_they_should() {
        let mut ctx = context();
        ctx.vars = serde_json::json!({
            "disk": "/dev/nvme0n1",
            "mirror": "https://ftp.pt.debian.org/debian/",
            "release": "trixie",
            "proxy": "http://proxy.lab:3128",
            "packages": "htop vim",
            "domain": "lab",
        });
        ctx.host.interface = String::new();
        let render_with = |name: &str, ctx: &RenderContext| {
            let template = shipped(name);
            render(template.name, template.body, ctx, Limits::default()).unwrap()
        };
        let netboot = render_with("debian-netboot", &ctx);
        // The installer from the image store, named after the release…
        assert!(
            netboot.contains("\nset base http://bootler.lab/images/debian-13-amd64\n"),
            "{netboot}"
        );
        assert!(!netboot.contains("get_nameservers"), "{netboot}");
        // …or another image, or from elsewhere; what an isolated lab needs
        // goes on the kernel's command line.
        let mut isolated = ctx.clone();
        isolated.vars["boot_image"] = serde_json::json!("debian-13-amd64-custom");
        isolated.vars["nameservers"] = serde_json::json!("10.0.0.53 10.0.0.54");
        isolated.vars["kernel_args"] = serde_json::json!("netcfg/dhcp_timeout=60");
        let custom = render_with("debian-netboot", &isolated);
        assert!(
            custom.contains("\nset base http://bootler.lab/images/debian-13-amd64-custom\n"),
            "{custom}"
        );
        assert!(
            custom.contains(
                " netcfg/get_nameservers=\"10.0.0.53 10.0.0.54\" netcfg/dhcp_timeout=60 --- "
            ),
            "{custom}"
        );
        isolated.vars["installer_url"] = serde_json::json!(
            "https://ftp.pt.debian.org/debian/dists/trixie/main/installer-amd64/current/images/netboot/debian-installer/amd64/"
        );
        let mirrored = render_with("debian-netboot", &isolated);
        assert!(mirrored.contains("set base https://ftp.pt.debian.org/debian/dists/trixie/main/installer-amd64/current/images/netboot/debian-installer/amd64\n"), "{mirrored}");
        assert!(
            netboot.contains(" netcfg/choose_interface=auto "),
            "{netboot}"
        );
        assert!(netboot.contains(" domain=lab "), "{netboot}");
        assert!(netboot.contains(" mirror/protocol=https mirror/https/hostname=ftp.pt.debian.org mirror/https/directory=/debian "), "{netboot}");
        let preseed = render_with("debian-preseed", &ctx);
        for line in [
            "d-i partman-auto/disk string /dev/nvme0n1",
            "d-i grub-installer/bootdev string /dev/nvme0n1",
            "d-i mirror/protocol string https",
            "d-i mirror/https/hostname string ftp.pt.debian.org",
            "d-i mirror/https/directory string /debian",
            "d-i mirror/http/proxy string http://proxy.lab:3128",
            "d-i pkgsel/include string openssh-server sudo htop vim",
            "d-i netcfg/get_domain string lab",
            "d-i netcfg/choose_interface select auto",
        ] {
            assert!(preseed.lines().any(|l| l == line), "{line}\n{preseed}");
        }
        // packages may also be a list.
        ctx.vars["packages"] = serde_json::json!(["htop", "vim"]);
        ctx.vars["mirror"] = serde_json::json!("https://repo.almalinux.org/almalinux/");
        ctx.vars["release"] = serde_json::json!("9.5");
        let netboot = render_with("rocky-netboot", &ctx);
        assert!(
            netboot
                .contains("\nset repo https://repo.almalinux.org/almalinux/9.5/BaseOS/x86_64/os\n"),
            "{netboot}"
        );
        assert!(
            netboot.contains("\nset base http://bootler.lab/images/rocky-9.5-x86_64\n"),
            "{netboot}"
        );
        let kickstart = render_with("rocky-kickstart", &ctx);
        let preseed_with_list = render_with("debian-preseed", &ctx);
        assert!(
            preseed_with_list
                .contains("\nd-i pkgsel/include string openssh-server sudo htop vim\n")
        );
        for line in [
            "ignoredisk --only-use=nvme0n1",
            "htop",
            "vim",
            "url --url=\"https://repo.almalinux.org/almalinux/9.5/BaseOS/x86_64/os\"",
        ] {
            assert!(kickstart.lines().any(|l| l == line), "{line}\n{kickstart}");
        }
    }

    /// Without `vars.repository` (or `vars.image`) the Clonezilla templates
    /// do not render, and the error names the line that needs it.
    #[test]
    fn clonezilla_needs_a_repository_and_an_image() {
        for name in ["clonezilla-save", "clonezilla-restore"] {
            let template = shipped(name);
            for var in ["repository", "image"] {
                let mut ctx = context();
                ctx.vars.as_object_mut().unwrap().remove(var);
                let err =
                    render(template.name, template.body, &ctx, Limits::default()).expect_err(name);
                let line = template
                    .body
                    .lines()
                    .position(|l| l.contains(&format!("vars.{var}")))
                    .unwrap()
                    + 1;
                assert_eq!(err.template, name);
                assert_eq!(err.line, Some(line), "{name} without {var}: {err}");
                assert!(err.reason.starts_with("undefined value"), "{err}");
            }
        }
    }

    /// `debconf-set-selections --checkonly` accepts `preseed` without a
    /// word (an unknown type is only a warning: none is allowed either).
    fn assert_debconf_accepts(preseed: &str) {
        let mut child = Command::new("debconf-set-selections")
            .arg("--checkonly")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("debconf-set-selections (Debian package debconf) is needed by this test");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(preseed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}\n{preseed}");
        assert!(stderr.trim().is_empty(), "{stderr}\n{preseed}");
    }

    /// The preseed parses as debconf selections (debconf's own parser, the
    /// one d-i's follows), with and without the optional vars. Needs the
    /// `debconf` package.
    #[test]
    fn the_preseed_passes_debconf_set_selections() {
        let preseed = rendered("debian-preseed");
        assert_debconf_accepts(&preseed);
        let mut ctx = context();
        ctx.vars = serde_json::json!({
            "mirror": "https://ftp.pt.debian.org/debian",
            "proxy": "http://proxy.lab:3128",
            "domain": "lab",
            "packages": ["htop"],
            "locale": "pt_PT.UTF-8",
            "keymap": "pt",
            "timezone": "Europe/Lisbon",
        });
        let template = shipped("debian-preseed");
        assert_debconf_accepts(
            &render(template.name, template.body, &ctx, Limits::default()).unwrap(),
        );
        // The late command is one logical line that ends with the call.
        let late = preseed
            .split("d-i preseed/late_command string \\\n")
            .nth(1)
            .unwrap();
        let late: Vec<&str> = late.lines().collect();
        let last = late.iter().position(|l| !l.ends_with('\\')).unwrap();
        assert!(
            late[last]
                .trim_start()
                .starts_with("wget -q -O /dev/null '"),
            "{}",
            late[last]
        );
        assert!(late[..last].iter().all(|l| l.ends_with(" && \\")));
    }
}
