//! Self-registration with an institutional address, and accounts an
//! administrator creates directly.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AccountError, Accounts, FieldError, Role, User, UserRow, validate};
use crate::mail::Mail;
use crate::secret;

/// What a person types into the registration form.
#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub password: String,
    /// The repeated password of the form; the API may leave it out.
    #[serde(default)]
    pub password_confirm: Option<String>,
}

/// An account an administrator creates, active at once.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub password: String,
    pub role: Role,
}

impl Accounts {
    /// Registers a pending account and mails its confirmation link.
    pub async fn register(
        &self,
        form: Registration,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        let mut errors = Vec::new();
        let mut check = |field, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError { field, message });
            }
        };
        let username = form.username.trim().to_string();
        check("username", validate::username(&username));
        check("display_name", validate::display_name(&form.display_name));
        let email = match validate::email(&form.email) {
            Ok(email) => {
                check(
                    "email",
                    validate::email_domain_allowed(&email, &self.settings.allowed_domains),
                );
                email
            }
            Err(message) => {
                check("email", Err(message));
                String::new()
            }
        };
        check(
            "password",
            validate::password(&form.password, self.settings.password_min_length),
        );
        if let Some(confirm) = &form.password_confirm
            && confirm != &form.password
        {
            check("password_confirm", Err("The two passwords differ.".into()));
        }
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }

        let password_hash = self.hash_for_directory(form.password).await?;
        let token = secret::new_token().map_err(|e| AccountError::Internal(e.to_string()))?;
        let expires_at = now
            + chrono::Duration::from_std(self.settings.confirmation_ttl)
                .map_err(|e| AccountError::Internal(e.to_string()))?;
        let display_name = form.display_name.trim().to_string();

        let row: UserRow = crate::with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // A pending registration whose links have all expired frees its
            // username and address.
            sqlx::query(
                "DELETE FROM users WHERE status = 'pending' AND (username = $1 OR email = $2) \
                 AND NOT EXISTS (SELECT 1 FROM email_tokens t WHERE t.user_id = users.id \
                 AND t.purpose = 'confirm' AND t.used_at IS NULL AND t.expires_at > $3)",
            )
            .bind(&username)
            .bind(&email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query_as::<_, UserRow>(
                "INSERT INTO users (username, email, display_name, pending_password_hash, created_at, vpn_enabled) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 RETURNING id, username, email, display_name, role, status, vpn_enabled, created_at, activated_at, pending_password_hash",
            )
            .bind(&username)
            .bind(&email)
            .bind(&display_name)
            .bind(&password_hash)
            .bind(now)
            .bind(self.settings.vpn_at_registration)
            .fetch_one(&mut *tx)
            .await
            .map_err(taken)?;
            sqlx::query(
                "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, 'confirm', $3, $4)",
            )
            .bind(secret::token_hash(&token))
            .bind(inserted.id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, AccountError>(inserted)
        })?;
        let (user, _) = row.into_user();
        tracing::info!(username = %user.username, "registration pending confirmation");
        self.mailer
            .send(&self.confirmation_mail(&user, &token))
            .await?;
        Ok(user)
    }

    /// Sends a new confirmation link to a pending account with this address
    /// (at most one a minute). Says nothing either way (no enumeration).
    pub async fn resend_confirmation(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let Ok(email) = validate::email(email) else {
            return Ok(());
        };
        let Some(user) = self.find(&email).await? else {
            return Ok(());
        };
        if user.status != super::Status::Pending
            || self.mailed_recently(user.id, "confirm", now).await?
        {
            return Ok(());
        }
        let expires_at = now
            + chrono::Duration::from_std(self.settings.confirmation_ttl)
                .map_err(|e| AccountError::Internal(e.to_string()))?;
        let token = self
            .new_email_token(user.id, "confirm", now, expires_at)
            .await?;
        self.mailer
            .send(&self.confirmation_mail(&user, &token))
            .await?;
        Ok(())
    }

    fn confirmation_mail(&self, user: &User, token: &str) -> Mail {
        let hours = self.settings.confirmation_ttl.as_secs() / 3600;
        Mail {
            to: user.email.clone(),
            subject: "Confirm your Bootler account".into(),
            text: format!(
                "Hello {name},\n\n\
                 someone, probably you, registered the account “{username}” on Bootler\n\
                 with this address. To confirm it, open this link within {hours} hours:\n\n\
                 {base}/confirm/{token}\n\n\
                 If it was not you, ignore this mail: the account stays inactive.\n",
                name = user.display_name,
                username = user.username,
                base = self.settings.base_url,
            ),
        }
    }

    /// The directory hashes on a blocking thread (argon2 is slow on purpose).
    pub(crate) async fn hash_for_directory(
        &self,
        password: String,
    ) -> Result<String, AccountError> {
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || directory.hash_password(&password))
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))?
            .map_err(AccountError::from)
    }

    /// Creates an active account directly (`bootler user add`). The e-mail
    /// domain is not checked: an administrator may add anyone.
    pub async fn create_user(
        &self,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        let mut errors = Vec::new();
        let username = new.username.trim().to_string();
        if let Err(message) = validate::username(&username) {
            errors.push(FieldError {
                field: "username",
                message,
            });
        }
        if let Err(message) = validate::display_name(&new.display_name) {
            errors.push(FieldError {
                field: "display_name",
                message,
            });
        }
        let email = validate::email(&new.email).unwrap_or_else(|message| {
            errors.push(FieldError {
                field: "email",
                message,
            });
            String::new()
        });
        if let Err(message) = validate::password(&new.password, self.settings.password_min_length) {
            errors.push(FieldError {
                field: "password",
                message,
            });
        }
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let password_hash = self.hash_for_directory(new.password).await?;
        let role = match new.role {
            Role::Admin => "admin",
            Role::User => "user",
        };
        let row: UserRow = crate::with_pool!(&self.db, pool => {
            sqlx::query_as::<_, UserRow>(
                "INSERT INTO users (username, email, display_name, role, status, created_at, activated_at, vpn_enabled) \
                 VALUES ($1, $2, $3, $4, 'active', $5, $5, $6) \
                 RETURNING id, username, email, display_name, role, status, vpn_enabled, created_at, activated_at, pending_password_hash",
            )
            .bind(&username)
            .bind(&email)
            .bind(new.display_name.trim())
            .bind(role)
            .bind(now)
            .bind(self.settings.vpn_at_registration)
            .fetch_one(pool)
            .await
            .map_err(taken)
        })?;
        let (user, _) = row.into_user();
        if let Err(err) = self.directory.create(&user.entry(), &password_hash).await {
            // Nothing half-created: without its directory entry the account goes.
            let _ = crate::with_pool!(&self.db, pool => {
                sqlx::query("DELETE FROM users WHERE id = $1").bind(user.id).execute(pool).await.map(|_| ())
            });
            return Err(err.into());
        }
        tracing::info!(username = %user.username, role, "account created");
        Ok(user)
    }
}

/// Maps a unique violation on `users` to the field it concerns.
fn taken(err: sqlx::Error) -> AccountError {
    match crate::db::unique_violation(&err) {
        Some(what) if what.contains("email") => AccountError::Taken {
            field: "email",
            message: "This e-mail address already has an account: sign in, or reset the password."
                .into(),
        },
        Some(_) => AccountError::Taken {
            field: "username",
            message: "This username is taken; choose another.".into(),
        },
        None => AccountError::Database(err),
    }
}
