//! Changing a password (knowing the current one) and resetting a forgotten
//! one with a mailed, single-use link.

use chrono::{DateTime, Duration, Utc};

use super::{AccountError, Accounts, FieldError, Status, User, validate};
use crate::mail::Mail;
use crate::secret;

/// How long a reset link is valid.
pub const RESET_TTL: Duration = Duration::hours(1);
/// At most one reset (or confirmation) mail per account in this time.
pub const MAIL_INTERVAL: Duration = Duration::minutes(1);

impl Accounts {
    fn check_new_password(&self, new: &str, confirm: Option<&str>) -> Result<(), AccountError> {
        let mut errors = Vec::new();
        if let Err(message) = validate::password(new, self.settings.password_min_length) {
            errors.push(FieldError {
                field: "new_password",
                message,
            });
        }
        if let Some(confirm) = confirm
            && confirm != new
        {
            errors.push(FieldError {
                field: "new_password_confirm",
                message: "The two passwords differ.".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AccountError::Invalid(errors))
        }
    }

    /// Changes `user`'s password after checking the current one (with the
    /// sign-in rate limits).
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        confirm: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        self.check_new_password(new, confirm)?;
        match self
            .authenticate_limited(&user.username, current, None, now)
            .await
        {
            Ok(_) => {}
            Err(AccountError::WrongCredentials) => {
                return Err(AccountError::Invalid(vec![FieldError {
                    field: "current_password",
                    message: "This is not your current password.".into(),
                }]));
            }
            Err(err) => return Err(err),
        }
        self.directory.set_password(&user.entry(), new).await?;
        tracing::info!(username = %user.username, "password changed");
        Ok(())
    }

    /// Mails a reset link to the account with this username or address, if
    /// there is an active one. Says nothing either way (no enumeration).
    pub async fn request_reset(&self, login: &str, now: DateTime<Utc>) -> Result<(), AccountError> {
        let Some(user) = self.find(login).await? else {
            return Ok(());
        };
        if user.status != Status::Active || self.mailed_recently(user.id, "reset", now).await? {
            return Ok(());
        }
        let token = self
            .new_email_token(user.id, "reset", now, now + RESET_TTL)
            .await?;
        self.mailer
            .send(&Mail {
                to: user.email.clone(),
                subject: "Reset your Bootler password".into(),
                text: format!(
                    "Hello {name},\n\n\
                     someone, probably you, asked to reset the password of the Bootler account\n\
                     “{username}”. To choose a new password, open this link within an hour:\n\n\
                     {base}/reset/{token}\n\n\
                     If it was not you, ignore this mail: your password stays as it is.\n",
                    name = user.display_name,
                    username = user.username,
                    base = self.settings.base_url,
                ),
            })
            .await?;
        Ok(())
    }

    /// Sets a new password with a reset link; signs the account out everywhere.
    pub async fn reset_password(
        &self,
        token: &str,
        new: &str,
        confirm: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            user_id: i64,
            expires_at: DateTime<Utc>,
            used_at: Option<DateTime<Utc>>,
        }
        let hash = secret::token_hash(token.trim());
        let row: Option<Row> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT user_id, expires_at, used_at FROM email_tokens WHERE token_hash = $1 AND purpose = 'reset'",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })?;
        let bad = |m: &str| AccountError::BadLink(m.to_string());
        let Some(row) = row else {
            return Err(bad("This reset link is not valid. Ask for a new one."));
        };
        if row.used_at.is_some() {
            return Err(bad(
                "This reset link was already used. Ask for a new one if you need to.",
            ));
        }
        if row.expires_at <= now {
            return Err(bad("This reset link has expired. Ask for a new one."));
        }
        self.check_new_password(new, confirm)?;
        let Some(user) = self.active_user(row.user_id).await? else {
            return Err(bad(
                "This account cannot sign in; ask the lab's administrator.",
            ));
        };
        let used = crate::with_pool!(&self.db, pool => {
            sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(&hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if used != 1 {
            return Err(bad(
                "This reset link was already used. Ask for a new one if you need to.",
            ));
        }
        self.directory.set_password(&user.entry(), new).await?;
        crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user.id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        self.clear_failures(&user.username).await?;
        tracing::info!(username = %user.username, "password reset");
        Ok(user)
    }

    /// Stores a new single-use mail link for `user_id` and returns its secret.
    pub(crate) async fn new_email_token(
        &self,
        user_id: i64,
        purpose: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, AccountError> {
        let token = secret::new_token().map_err(|e| AccountError::Internal(e.to_string()))?;
        crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(secret::token_hash(&token))
            .bind(user_id)
            .bind(purpose)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(token)
    }

    /// Whether a mail of this purpose went to the account within [`MAIL_INTERVAL`].
    pub(crate) async fn mailed_recently(
        &self,
        user_id: i64,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AccountError> {
        let latest: Option<DateTime<Utc>> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT MAX(created_at) FROM email_tokens WHERE user_id = $1 AND purpose = $2",
            )
            .bind(user_id)
            .bind(purpose)
            .fetch_one(pool)
            .await
        })?;
        Ok(latest.is_some_and(|t| now - t < MAIL_INTERVAL))
    }
}
