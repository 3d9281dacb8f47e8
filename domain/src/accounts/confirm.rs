//! Confirming an address: the link from the mail activates the account and
//! creates its directory entry. Single use, expiring.

use chrono::{DateTime, Utc};

use super::{AccountError, Accounts, Status, User, UserRow, select_user};
use crate::secret;

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: i64,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl Accounts {
    pub async fn confirm(&self, token: &str, now: DateTime<Utc>) -> Result<User, AccountError> {
        let hash = secret::token_hash(token.trim());
        let token_row: Option<TokenRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT user_id, expires_at, used_at FROM email_tokens \
                 WHERE token_hash = $1 AND purpose = 'confirm'",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })?;
        let Some(token_row) = token_row else {
            return Err(AccountError::BadLink(
                "This confirmation link is not valid. Check that the whole link was copied, or register again.".into(),
            ));
        };
        if token_row.used_at.is_some() {
            return Err(already_used());
        }
        if token_row.expires_at <= now {
            return Err(AccountError::BadLink(
                "This confirmation link has expired. Register again, or ask for a new link on the sign-in page.".into(),
            ));
        }
        let row: Option<UserRow> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(select_user!("WHERE id = $1"))
                .bind(token_row.user_id)
                .fetch_optional(pool)
                .await
        })?;
        let Some((user, pending_hash)) = row.map(UserRow::into_user) else {
            return Err(already_used());
        };
        let (Status::Pending, Some(pending_hash)) = (user.status, pending_hash) else {
            return Err(already_used());
        };

        // The directory first: if it is down, nothing changes and the same
        // link works later. Creating the entry is idempotent.
        self.directory.create(&user.entry(), &pending_hash).await?;

        crate::with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Consumes the link atomically: of two clicks, one wins.
            let used = sqlx::query(
                "UPDATE email_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
            )
            .bind(now)
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used != 1 {
                return Err(already_used());
            }
            sqlx::query(
                "UPDATE users SET status = 'active', activated_at = $1, pending_password_hash = NULL \
                 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now)
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, AccountError>(())
        })?;
        tracing::info!(username = %user.username, directory = self.directory.kind(), "account confirmed");
        Ok(User {
            status: Status::Active,
            activated_at: Some(now),
            ..user
        })
    }
}

fn already_used() -> AccountError {
    AccountError::BadLink(
        "This link was already used: the account is active. Sign in with your username and password.".into(),
    )
}
