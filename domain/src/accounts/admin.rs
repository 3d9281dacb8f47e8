//! What administrators do with accounts: find them, disable and enable them,
//! promote and demote them, approve or delete pending registrations.
//! Nobody acts on their own account here, so there is always an admin left.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AccountError, Accounts, Role, Status, User, UserRow, select_user};

/// A page of the user list.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Part of a username, name or e-mail address (case-insensitive).
    pub search: String,
    pub status: Option<Status>,
    pub role: Option<Role>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserList {
    pub users: Vec<User>,
    /// How many match, over all pages.
    pub total: i64,
}

/// Longest page of users.
pub const MAX_PAGE: i64 = 200;

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "pending" => Some(Status::Pending),
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// `%text%` for LIKE, with `%`, `_` and `\` taken literally.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) fn require_admin(actor: &User) -> Result<(), AccountError> {
    if actor.role == Role::Admin && actor.status == Status::Active {
        Ok(())
    } else {
        Err(AccountError::Forbidden(
            "Only administrators manage accounts.".into(),
        ))
    }
}

fn not_yourself(actor: &User, target: &User, what: &str) -> Result<(), AccountError> {
    if actor.id == target.id {
        Err(AccountError::Forbidden(format!(
            "You cannot {what} your own account; ask another administrator."
        )))
    } else {
        Ok(())
    }
}

impl Accounts {
    /// Accounts matching `query`, newest first.
    pub async fn list_users(
        &self,
        actor: &User,
        query: &UserQuery,
    ) -> Result<UserList, AccountError> {
        require_admin(actor)?;
        let search = query.search.trim();
        let pattern = like_pattern(search);
        let status = query.status.map(Status::as_str).unwrap_or_default();
        let role = query.role.map(Role::as_str).unwrap_or_default();
        let limit = query.limit.clamp(1, MAX_PAGE);
        let offset = query.offset.max(0);
        let (rows, total): (Vec<UserRow>, i64) = crate::with_pool!(&self.db, pool => {
            let rows = sqlx::query_as(select_user!(
                "WHERE ($1 = '' OR LOWER(username) LIKE $2 ESCAPE '\\' \
                 OR LOWER(email) LIKE $2 ESCAPE '\\' OR LOWER(display_name) LIKE $2 ESCAPE '\\') \
                 AND ($3 = '' OR status = $3) AND ($4 = '' OR role = $4) \
                 ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
            ))
            .bind(search)
            .bind(&pattern)
            .bind(status)
            .bind(role)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users \
                 WHERE ($1 = '' OR LOWER(username) LIKE $2 ESCAPE '\\' \
                 OR LOWER(email) LIKE $2 ESCAPE '\\' OR LOWER(display_name) LIKE $2 ESCAPE '\\') \
                 AND ($3 = '' OR status = $3) AND ($4 = '' OR role = $4)",
            )
                .bind(search)
                .bind(&pattern)
                .bind(status)
                .bind(role)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        Ok(UserList {
            users: rows.into_iter().map(|r| r.into_user().0).collect(),
            total,
        })
    }

    /// The account named `username`, for an admin.
    pub async fn user_by_name(&self, actor: &User, username: &str) -> Result<User, AccountError> {
        require_admin(actor)?;
        Ok(self.named(username).await?.0)
    }

    async fn named(&self, username: &str) -> Result<(User, Option<String>), AccountError> {
        let row: Option<UserRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_user!("WHERE username = $1"))
                .bind(username.trim())
                .fetch_optional(pool)
                .await
        })?;
        row.map(UserRow::into_user).ok_or_else(|| {
            AccountError::NotFound(format!("There is no account named “{}”.", username.trim()))
        })
    }

    /// Disables (`enabled = false`) or re-enables an active account, in
    /// the directory first (so the VPN and anything else reading it agree)
    /// and then here. Disabling also ends the account's sessions; its API
    /// tokens stop working while it is disabled.
    pub async fn set_enabled(
        &self,
        actor: &User,
        username: &str,
        enabled: bool,
    ) -> Result<User, AccountError> {
        require_admin(actor)?;
        let (target, _) = self.named(username).await?;
        not_yourself(actor, &target, if enabled { "enable" } else { "disable" })?;
        let (from, to) = match (target.status, enabled) {
            (Status::Pending, _) => {
                return Err(AccountError::Conflict(format!(
                    "“{}” has not confirmed their address yet: approve or delete the registration instead.",
                    target.username
                )));
            }
            (Status::Active, true) | (Status::Disabled, false) => return Ok(target),
            (Status::Disabled, true) => (Status::Disabled, Status::Active),
            (Status::Active, false) => (Status::Active, Status::Disabled),
        };
        self.directory.set_enabled(&target.entry(), enabled).await?;
        crate::with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE users SET status = $1 WHERE id = $2 AND status = $3")
                .bind(to.as_str())
                .bind(target.id)
                .bind(from.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if !enabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(target.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        })?;
        tracing::info!(
            admin = %actor.username,
            username = %target.username,
            status = to.as_str(),
            "account status changed"
        );
        Ok(User {
            status: to,
            ..target
        })
    }

    /// Turns a person's VPN access on or off. The next sign-in to the VPN
    /// follows it; sessions already open are ended by the caller (through
    /// OpenVPN's management interface, where configured).
    pub async fn set_vpn(
        &self,
        actor: &User,
        username: &str,
        enabled: bool,
    ) -> Result<User, AccountError> {
        require_admin(actor)?;
        let (target, _) = self.named(username).await?;
        if target.vpn_enabled == enabled {
            return Ok(target);
        }
        crate::with_pool!(&self.db, pool => {
            sqlx::query("UPDATE users SET vpn_enabled = $1 WHERE id = $2")
                .bind(enabled)
                .bind(target.id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        tracing::info!(admin = %actor.username, username = %target.username, vpn = enabled, "VPN access changed");
        Ok(User {
            vpn_enabled: enabled,
            ..target
        })
    }

    /// Makes an account an administrator or a plain user.
    pub async fn set_role(
        &self,
        actor: &User,
        username: &str,
        role: Role,
    ) -> Result<User, AccountError> {
        require_admin(actor)?;
        let (target, _) = self.named(username).await?;
        if target.role == role {
            return Ok(target);
        }
        not_yourself(
            actor,
            &target,
            if role == Role::Admin {
                "promote"
            } else {
                "demote"
            },
        )?;
        crate::with_pool!(&self.db, pool => {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(target.id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        tracing::info!(admin = %actor.username, username = %target.username, role = role.as_str(), "account role changed");
        Ok(User { role, ..target })
    }

    /// Activates a pending registration without its confirmation link (the
    /// mail never arrived, say): creates the directory entry with the
    /// password chosen at registration. The link stops working.
    pub async fn approve(
        &self,
        actor: &User,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        require_admin(actor)?;
        let (target, pending_hash) = self.named(username).await?;
        let (Status::Pending, Some(pending_hash)) = (target.status, pending_hash) else {
            return Err(AccountError::Conflict(format!(
                "“{}” is not a pending registration (it is {}).",
                target.username,
                target.status.as_str()
            )));
        };
        self.directory
            .create(&target.entry(), &pending_hash)
            .await?;
        crate::with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE users SET status = 'active', activated_at = $1, pending_password_hash = NULL \
                 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = 'confirm' AND used_at IS NULL",
            )
            .bind(now)
            .bind(target.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })?;
        tracing::info!(admin = %actor.username, username = %target.username, "registration approved");
        Ok(User {
            status: Status::Active,
            activated_at: Some(now),
            ..target
        })
    }

    /// Deletes a pending registration (a typo in the address, a stranger):
    /// the username and address are free again. Only pending ones: active
    /// accounts are disabled, never deleted, so their history stays.
    pub async fn delete_pending(&self, actor: &User, username: &str) -> Result<(), AccountError> {
        require_admin(actor)?;
        let (target, _) = self.named(username).await?;
        let deleted = crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM users WHERE id = $1 AND status = 'pending'")
                .bind(target.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if deleted != 1 {
            return Err(AccountError::Conflict(format!(
                "Only pending registrations can be deleted; “{}” is {}: disable it instead.",
                target.username,
                target.status.as_str()
            )));
        }
        tracing::info!(admin = %actor.username, username = %target.username, "pending registration deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(super::like_pattern(" Ana "), "%ana%");
        assert_eq!(super::like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
