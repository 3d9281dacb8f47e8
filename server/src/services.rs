//! Builds the domain services from the configuration: one place where a
//! config enum picks the implementation of each driver trait.

use std::sync::Arc;
use std::time::Duration;

use bootler_domain::accounts::{Accounts, Settings};
use bootler_domain::config::{DirectoryKind, MailKind};
use bootler_domain::directory::{Builtin, SharedDirectory};
use bootler_domain::mail::{Outbox, SharedMailer};
use bootler_domain::{Config, Db};

pub fn directory(config: &Config, db: &Db) -> SharedDirectory {
    match config.directory.kind {
        DirectoryKind::Builtin => Arc::new(Builtin::new(db.clone())),
    }
}

pub fn mailer(config: &Config) -> SharedMailer {
    match config.mail.kind {
        MailKind::Outbox => Arc::new(Outbox::new(config.outbox_dir(), config.mail.from.clone())),
    }
}

pub fn accounts(config: &Config, db: &Db) -> Accounts {
    Accounts::new(
        db.clone(),
        directory(config, db),
        mailer(config),
        Settings {
            allowed_domains: config.accounts.allowed_domains.clone(),
            password_min_length: config.accounts.password_min_length,
            confirmation_ttl: Duration::from_secs(config.accounts.confirmation_ttl_hours * 3600),
            base_url: config.base_url(),
        },
    )
}
