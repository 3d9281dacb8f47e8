//! Builds the domain services from the configuration: one place where a
//! config enum picks the implementation of each driver trait.

use std::sync::Arc;
use std::time::Duration;

use bootler_domain::accounts::{Accounts, Settings};
use bootler_domain::config::{DirectoryKind, MailKind, SmtpTlsMode};
use bootler_domain::directory::{Builtin, Ldap, SharedDirectory};
use bootler_domain::hosts::power::Pace;
use bootler_domain::hosts::{BootSettings, Hosts, Network};
use bootler_domain::jobs::kinds::power::PowerJob;
use bootler_domain::jobs::kinds::vm::VmJob;
use bootler_domain::jobs::{self, Events, Jobs};
use bootler_domain::mail::{Outbox, SharedMailer, Smtp, SmtpSettings, SmtpTls};
use bootler_domain::power::sealed::SecretBox;
use bootler_domain::templates::{Sandbox, WorkerLimits};
use bootler_domain::vms::backend::VmBackend;
use bootler_domain::vms::config::BackendKind;
use bootler_domain::vms::instances::{Instances, VmRules};
use bootler_domain::vms::libvirt::LibvirtBackend;
use bootler_domain::vms::openstack::OpenStackBackend;
use bootler_domain::{Config, Db};

/// Bootler's VMs and their limits.
pub fn instances(config: &Config, db: &Db) -> Instances {
    Instances::new(db.clone(), VmRules::from_config(&config.vm))
}

pub fn directory(config: &Config, db: &Db) -> SharedDirectory {
    match config.directory.kind {
        DirectoryKind::Builtin => Arc::new(Builtin::new(db.clone())),
        // Checked by `Config::load`; the password file is read at each bind.
        DirectoryKind::Ldap => Arc::new(Ldap::new(config.ldap.clone())),
    }
}

pub fn mailer(config: &Config) -> anyhow::Result<SharedMailer> {
    Ok(match config.mail.kind {
        MailKind::Outbox => Arc::new(Outbox::new(config.outbox_dir(), config.mail.from.clone())),
        MailKind::Smtp => {
            let smtp = &config.mail.smtp;
            let tls = match smtp.tls {
                SmtpTlsMode::StartTls => SmtpTls::StartTls,
                SmtpTlsMode::Tls => SmtpTls::Tls,
                SmtpTlsMode::None => SmtpTls::None,
            };
            let default_port = if tls == SmtpTls::Tls { 465 } else { 587 };
            Arc::new(Smtp::new(
                SmtpSettings {
                    host: smtp.host.clone(),
                    port: smtp.port.unwrap_or(default_port),
                    tls,
                    username: smtp.username.clone(),
                    password: smtp.password()?,
                    timeout: Duration::from_secs(smtp.timeout_seconds),
                },
                config.mail.from.clone(),
            )?)
        }
    })
}

pub fn accounts(config: &Config, db: &Db) -> anyhow::Result<Accounts> {
    Ok(Accounts::new(
        db.clone(),
        directory(config, db),
        mailer(config)?,
        Settings {
            allowed_domains: config.accounts.allowed_domains.clone(),
            password_min_length: config.accounts.password_min_length,
            confirmation_ttl: Duration::from_secs(config.accounts.confirmation_ttl_hours * 3600),
            base_url: config.base_url(),
            vpn_at_registration: config.vpn.access == bootler_domain::vpn::VpnAccess::On,
        },
    ))
}

/// The VPN: sign-ins, sessions, the server's configuration, profiles.
pub fn vpn(config: &Config, db: &Db, accounts: &Accounts) -> bootler_domain::vpn::Vpn {
    bootler_domain::vpn::Vpn::new(
        db.clone(),
        accounts.clone(),
        config.vpn.clone(),
        &config.base_url(),
    )
}

/// The key sealing secrets at rest (BMC passwords): read, or created,
/// when the first one is sealed.
pub fn secrets(config: &Config) -> SecretBox {
    SecretBox::at(&config.power_key_file())
}

/// How power-ons are paced per pool.
pub fn pace(config: &Config) -> Pace {
    Pace {
        per_window: config.power.starts_per_window.max(1),
        window: chrono::Duration::seconds(config.power.starts_window_seconds.max(1) as i64),
    }
}

/// What talks to BMCs and sends Wake-on-LAN: the power jobs, the state
/// poll and the connection test.
pub fn power(config: &Config, db: &Db, events: &Events, secrets: &SecretBox) -> PowerJob {
    PowerJob {
        db: db.clone(),
        events: events.clone(),
        secrets: secrets.clone(),
        ipmi_timeout: Duration::from_millis(config.power.ipmi_timeout_ms.max(1)),
        ipmi_retries: config.power.ipmi_retries,
        confirm: Duration::from_secs(config.power.confirm_seconds),
    }
}

/// The VM backend `vm.backend` names.
pub fn vm_backend(config: &Config) -> anyhow::Result<Arc<dyn VmBackend>> {
    Ok(match config.vm.backend {
        BackendKind::Libvirt => Arc::new(LibvirtBackend::new(
            config.vm.libvirt.clone(),
            config.data_dir.join("vms"),
        )),
        BackendKind::Openstack => Arc::new(
            OpenStackBackend::new(&config.vm.openstack)
                .map_err(|e| anyhow::anyhow!("vm.openstack: {e}"))?,
        ),
    })
}

/// What builds, changes and reconciles VMs.
pub fn vms(
    config: &Config,
    db: &Db,
    events: &Events,
    instances: &Instances,
) -> anyhow::Result<VmJob> {
    Ok(VmJob {
        db: db.clone(),
        events: events.clone(),
        instances: instances.clone(),
        backend: vm_backend(config)?,
        create_timeout: Duration::from_secs(config.vm.create_timeout_seconds.max(1)),
        poll: Duration::from_secs(2),
    })
}

/// The job queue with every kind this build knows.
pub fn jobs(config: &Config, db: &Db, events: Events, secrets: &SecretBox, vms: VmJob) -> Jobs {
    Jobs::new(
        db.clone(),
        jobs::kinds::builtin()
            .with(power(config, db, &events, secrets))
            .with(vms),
        events,
        jobs::Settings::from_config(&config.jobs),
    )
}

/// The host registry and the boot endpoints' rules.
pub fn hosts(config: &Config, db: &Db, events: Events) -> anyhow::Result<Hosts> {
    let allowed_networks = config
        .boot
        .allowed_networks
        .iter()
        .map(|n| Network::parse(n).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Hosts::new(
        db.clone(),
        BootSettings {
            base_url: config.boot_base_url(),
            allowed_networks,
            discovery_per_minute: config.boot.discovery_per_minute,
            max_discovered: config.boot.max_discovered,
            install_timeout: std::time::Duration::from_secs(
                u64::from(config.boot.install_timeout_minutes.max(1)) * 60,
            ),
            max_hosts_per_user: config.leases.max_hosts_per_user,
            lease_reminders: {
                let mut hours = config.leases.reminder_hours.clone();
                hours.sort_unstable_by(|a, b| b.cmp(a));
                hours.dedup();
                hours
                    .into_iter()
                    .map(|h| chrono::Duration::hours(i64::from(h)))
                    .collect()
            },
        },
        events,
    )
    .with_sandbox(sandbox(config)?)
    .with_directory(directory(config, db)))
}

/// Where templates render: worker processes of this very program.
pub fn sandbox(config: &Config) -> anyhow::Result<Sandbox> {
    let program = match &config.boot.render_program {
        Some(program) => program.clone(),
        None => std::env::current_exe().map_err(|err| {
            anyhow::anyhow!("cannot find the bootler program for render workers: {err}")
        })?,
    };
    Ok(Sandbox::workers(
        program,
        config.boot.render_workers,
        WorkerLimits {
            memory_bytes: config.boot.render_memory_mb * 1024 * 1024,
            time: std::time::Duration::from_millis(config.boot.render_timeout_ms),
        },
    ))
}
