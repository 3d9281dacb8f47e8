//! Where credentials live: the built-in table (default) or LDAP. Bootler is
//! the only writer. Chosen by `directory.kind` at start.

mod builtin;
mod ldap;

use std::sync::Arc;

use async_trait::async_trait;

pub use builtin::Builtin;
pub use ldap::Ldap;

/// What the directory stores about a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
}

/// A group of people, named in pool access as `@name`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub name: String,
    /// Usernames, sorted.
    pub members: Vec<String>,
}

/// Whether `name` can name a group: 1–64 letters, digits, `.`, `_` or `-`,
/// starting with a letter or digit.
pub fn valid_group_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory cannot be reached or timed out: try again later.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The directory refused the change (for example a schema violation).
    #[error("the directory refused the change: {0}")]
    Rejected(String),
    /// Bootler's own fault (a broken hash, a database error).
    #[error("directory error: {0}")]
    Internal(String),
}

#[async_trait]
pub trait Directory: Send + Sync {
    /// `builtin` or `ldap`.
    fn kind(&self) -> &'static str;

    /// Hashes a password into the form this directory stores, so a pending
    /// registration keeps no clear password until its entry is created.
    fn hash_password(&self, password: &str) -> Result<String, DirectoryError>;

    /// Checks a password against a hash from [`Directory::hash_password`]
    /// (a pending registration's). `None` spends the same time and fails.
    async fn verify_hash(&self, password: &str, hash: Option<&str>) -> bool;

    /// Creates the entry with a hash from [`Directory::hash_password`].
    /// Idempotent: creating an entry that exists updates it.
    async fn create(&self, entry: &Entry, password_hash: &str) -> Result<(), DirectoryError>;

    /// Whether `password` is the entry's password. `Ok(false)` for a wrong
    /// password or an unknown entry alike.
    async fn verify(&self, entry: &Entry, password: &str) -> Result<bool, DirectoryError>;

    /// Replaces the entry's password.
    async fn set_password(&self, entry: &Entry, password: &str) -> Result<(), DirectoryError>;

    /// Brings the entry's descriptive attributes (name, address) up to date.
    async fn update(&self, entry: &Entry) -> Result<(), DirectoryError>;

    /// Marks the entry disabled (`false`) or enabled again, so that other
    /// services reading the directory (the VPN, SSH logins) refuse it too.
    /// Idempotent.
    async fn set_enabled(&self, entry: &Entry, enabled: bool) -> Result<(), DirectoryError>;

    /// The names of the groups `username` belongs to, sorted.
    async fn groups_of(&self, username: &str) -> Result<Vec<String>, DirectoryError>;

    /// Every group with its members, by name.
    async fn groups(&self) -> Result<Vec<Group>, DirectoryError>;

    /// Replaces a group's members (user ids; none: the group is gone).
    /// `Rejected` where the groups are kept elsewhere (LDAP).
    async fn set_group(&self, name: &str, members: &[i64]) -> Result<(), DirectoryError>;
}

pub type SharedDirectory = Arc<dyn Directory>;
