//! What people change about themselves: their display name and their SSH
//! public keys (which go onto their nodes and VMs).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AccountError, Accounts, FieldError, User, validate};
use crate::ssh_key;

/// How many keys one person may keep.
pub const MAX_SSH_KEYS: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SshKey {
    pub id: i64,
    pub name: String,
    pub algorithm: String,
    /// `algorithm base64`, one line of `authorized_keys`.
    pub public_key: String,
    pub fingerprint: String,
    pub bits: i32,
    pub created_at: DateTime<Utc>,
}

fn invalid(field: &'static str, message: String) -> AccountError {
    AccountError::Invalid(vec![FieldError { field, message }])
}

impl Accounts {
    /// Renames the person, in the database and in the directory entry
    /// (`cn`, `sn`). The directory first: if it is down nothing changes.
    pub async fn set_display_name(&self, user: &User, name: &str) -> Result<User, AccountError> {
        validate::display_name(name).map_err(|m| invalid("display_name", m))?;
        let name = name.trim().to_string();
        let updated = User {
            display_name: name.clone(),
            ..user.clone()
        };
        if updated.status == super::Status::Active {
            self.directory.update(&updated.entry()).await?;
        }
        crate::with_pool!(&self.db, pool => {
            sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
                .bind(&name)
                .bind(user.id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        crate::changes::announce(&self.db, crate::changes::Change::People).await;
        tracing::info!(username = %user.username, "display name changed");
        Ok(updated)
    }

    /// Adds a public key. `name` defaults to the key's comment.
    pub async fn add_ssh_key(
        &self,
        user: &User,
        name: Option<&str>,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<SshKey, AccountError> {
        let parsed = ssh_key::parse(key).map_err(|m| invalid("public_key", m))?;
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None if !parsed.comment.is_empty() => parsed.comment.clone(),
            None => format!("{} key", parsed.algorithm),
        };
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "A key name has at most 100 characters and no control characters.".into(),
            ));
        }
        // The count and the insert in one statement: two pastes at once
        // cannot pass the limit together.
        let inserted: Option<SshKey> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "INSERT INTO ssh_keys (user_id, name, algorithm, public_key, fingerprint, bits, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE (SELECT COUNT(*) FROM ssh_keys WHERE user_id = $1) < $8 \
                 RETURNING id, name, algorithm, public_key, fingerprint, bits, created_at",
            )
            .bind(user.id)
            .bind(&name)
            .bind(&parsed.algorithm)
            .bind(parsed.openssh())
            .bind(&parsed.fingerprint)
            .bind(parsed.bits as i32)
            .bind(now)
            .bind(MAX_SSH_KEYS)
            .fetch_optional(pool)
            .await
        })
        .map_err(|err| match crate::db::unique_violation(&err) {
            Some(_) => invalid(
                "public_key",
                format!("You already added this key ({}).", parsed.fingerprint),
            ),
            None => AccountError::Database(err),
        })?;
        let key = inserted.ok_or_else(|| {
            invalid(
                "public_key",
                format!(
                    "You have {MAX_SSH_KEYS} keys already; remove one you no longer use first."
                ),
            )
        })?;
        crate::changes::announce(&self.db, crate::changes::Change::People).await;
        tracing::info!(username = %user.username, fingerprint = %key.fingerprint, "SSH key added");
        Ok(key)
    }

    pub async fn list_ssh_keys(&self, user: &User) -> Result<Vec<SshKey>, AccountError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, algorithm, public_key, fingerprint, bits, created_at \
                 FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, id",
            )
            .bind(user.id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Removes one of `user`'s keys; `false` if there is no such key.
    pub async fn delete_ssh_key(&self, user: &User, id: i64) -> Result<bool, AccountError> {
        let done = crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            crate::changes::announce(&self.db, crate::changes::Change::People).await;
        }
        Ok(done == 1)
    }
}
