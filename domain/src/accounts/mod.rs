//! People and their accounts: registration with an institutional address,
//! confirmation by mail, sign-in. The directory holds the credentials; the
//! database holds everything else.

pub mod validate;

mod admin;
mod api_tokens;
mod confirm;
mod groups;
mod login;
mod password;
mod profile;
mod register;
mod session;
#[cfg(test)]
mod tests;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Db;
use crate::directory::{DirectoryError, Entry, SharedDirectory};
use crate::mail::{MailError, SharedMailer};

pub use admin::{UserList, UserQuery};
pub use api_tokens::{ApiToken, TOKEN_PREFIX};
pub use profile::{MAX_SSH_KEYS, SshKey};
pub use register::{NewUser, Registration};
pub use session::{COOKIE, NewSession, SESSION_TTL, Session, token_from_cookies};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Active,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: Status,
    pub vpn_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn entry(&self) -> Entry {
        Entry {
            user_id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
        }
    }
}

/// A row of `users` as the database returns it.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    username: String,
    email: String,
    display_name: String,
    role: String,
    status: String,
    vpn_enabled: bool,
    created_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
    pending_password_hash: Option<String>,
}

/// `SELECT <user columns> FROM users <rest>` as one static string.
macro_rules! select_user {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, email, display_name, role, status, vpn_enabled, created_at, activated_at, pending_password_hash FROM users ",
            $rest
        )
    };
}
pub(crate) use select_user;

impl UserRow {
    fn into_user(self) -> (User, Option<String>) {
        let role = if self.role == "admin" {
            Role::Admin
        } else {
            Role::User
        };
        let status = match self.status.as_str() {
            "active" => Status::Active,
            "disabled" => Status::Disabled,
            _ => Status::Pending,
        };
        (
            User {
                id: self.id,
                username: self.username,
                email: self.email,
                display_name: self.display_name,
                role,
                status,
                vpn_enabled: self.vpn_enabled,
                created_at: self.created_at,
                activated_at: self.activated_at,
            },
            self.pending_password_hash,
        )
    }
}

/// One problem with one form field, for showing beside the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Some fields are invalid; each error names its field.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Invalid(Vec<FieldError>),
    /// Taken username or address.
    #[error("{message}")]
    Taken {
        field: &'static str,
        message: String,
    },
    /// A confirmation or reset link that is unknown, used or expired.
    #[error("{0}")]
    BadLink(String),
    /// Wrong username or password (never says which).
    #[error("Wrong username or password.")]
    WrongCredentials,
    /// Too many failed sign-ins: wait.
    #[error("Too many failed sign-ins. Try again in {retry_after_seconds} s.")]
    RateLimited { retry_after_seconds: i64 },
    /// Right password, but the account cannot sign in (yet).
    #[error("{0}")]
    NotActive(String),
    /// No such account (admin actions name accounts).
    #[error("{0}")]
    NotFound(String),
    /// Not allowed for this caller (not an admin, or an admin acting on
    /// their own account).
    #[error("{0}")]
    Forbidden(String),
    /// The account is not in a state where this makes sense.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

/// The account rules from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub allowed_domains: Vec<String>,
    pub password_min_length: usize,
    pub confirmation_ttl: Duration,
    /// Where links in mails point, without a trailing slash.
    pub base_url: String,
    /// Whether new accounts may use the VPN at once (`vpn.access = "on"`)
    /// or after an administrator's approval.
    pub vpn_at_registration: bool,
}

/// The accounts service: everything about people, independent of HTTP.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) db: Db,
    pub(crate) directory: SharedDirectory,
    pub(crate) mailer: SharedMailer,
    pub(crate) settings: Arc<Settings>,
}

impl Accounts {
    /// Where Bootler's mail goes (lease notices use it too).
    pub fn mailer(&self) -> &SharedMailer {
        &self.mailer
    }

    pub fn new(
        db: Db,
        directory: SharedDirectory,
        mailer: SharedMailer,
        settings: Settings,
    ) -> Accounts {
        Accounts {
            db,
            directory,
            mailer,
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn directory_kind(&self) -> &'static str {
        self.directory.kind()
    }

    /// Looks a user up by username or (case-insensitively) e-mail address.
    pub async fn find(&self, login: &str) -> Result<Option<User>, AccountError> {
        Ok(self.find_row(login).await?.map(|(user, _)| user))
    }

    pub(crate) async fn find_row(
        &self,
        login: &str,
    ) -> Result<Option<(User, Option<String>)>, AccountError> {
        let login = login.trim();
        let email = validate::email(login).unwrap_or_default();
        let row: Option<UserRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_user!("WHERE username = $1 OR email = $2"))
                .bind(login)
                .bind(&email)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(UserRow::into_user))
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, AccountError> {
        let row: Option<UserRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_user!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|r| r.into_user().0))
    }

    /// The account with this id if it is active (may sign in).
    pub(crate) async fn active_user(&self, id: i64) -> Result<Option<User>, AccountError> {
        Ok(self
            .get(id)
            .await?
            .filter(|user| user.status == Status::Active))
    }

    /// Number of accounts with the admin role (any status).
    pub async fn count_admins(&self) -> Result<i64, AccountError> {
        const SQL: &str = "SELECT COUNT(*) FROM users WHERE role = 'admin'";
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(SQL).fetch_one(pool).await
        })?)
    }
}
