//! Named API tokens: a user creates one, sees it once, and scripts send it
//! as `Authorization: Bearer …`. Only its hash is stored.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{AccountError, Accounts, FieldError, User};
use crate::secret;

/// Tokens start with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "bt_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn valid_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AccountError::Invalid(vec![FieldError {
            field: "name",
            message:
                "Give the token a name of 1 to 64 characters, such as the script that uses it."
                    .into(),
        }]));
    }
    Ok(name.to_string())
}

impl Accounts {
    /// Creates a token for `user`; the secret is returned this once.
    pub async fn create_token(
        &self,
        user: &User,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(ApiToken, String), AccountError> {
        let name = valid_name(name)?;
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            secret::new_token().map_err(|e| AccountError::Internal(e.to_string()))?
        );
        let token: ApiToken = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                 RETURNING id, name, created_at, last_used_at",
            )
            .bind(user.id)
            .bind(&name)
            .bind(secret::token_hash(&secret))
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| match crate::db::unique_violation(&err) {
            Some(_) => AccountError::Taken {
                field: "name",
                message: format!("You already have a token named “{name}”; revoke it or choose another name."),
            },
            None => AccountError::Database(err),
        })?;
        tracing::info!(username = %user.username, token = %token.name, "API token created");
        Ok((token, secret))
    }

    pub async fn list_tokens(&self, user: &User) -> Result<Vec<ApiToken>, AccountError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id",
            )
            .bind(user.id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Revokes one of `user`'s tokens; `false` if there is no such token.
    pub async fn revoke_token(&self, user: &User, id: i64) -> Result<bool, AccountError> {
        let done = crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// `user`'s token with this secret, without counting it as a use (for
    /// showing a token just created).
    pub async fn own_token(
        &self,
        user: &User,
        secret: &str,
    ) -> Result<Option<ApiToken>, AccountError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, name, created_at, last_used_at FROM api_tokens WHERE token_hash = $1 AND user_id = $2",
            )
            .bind(secret::token_hash(secret))
            .bind(user.id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// The active user a bearer token belongs to.
    pub async fn token_user(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, AccountError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            user_id: i64,
            last_used_at: Option<DateTime<Utc>>,
        }
        let hash = secret::token_hash(secret);
        let row: Option<Row> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, user_id, last_used_at FROM api_tokens WHERE token_hash = $1")
                .bind(&hash)
                .fetch_optional(pool)
                .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let Some(user) = self.active_user(row.user_id).await? else {
            return Ok(None);
        };
        // Record use at most once a minute.
        if row
            .last_used_at
            .is_none_or(|t| now - t > Duration::minutes(1))
        {
            crate::with_pool!(&self.db, pool => {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(row.id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })?;
        }
        Ok(Some(user))
    }

    /// Username and password with the sign-in rate limits, for HTTP Basic.
    pub async fn authenticate_limited(
        &self,
        login: &str,
        password: &str,
        address: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<User, AccountError> {
        let keys = super::throttle::keys(login, address);
        self.check_throttle(&keys, now).await?;
        match self.authenticate(login, password, now).await {
            Ok(user) => {
                self.clear_failures(login).await?;
                Ok(user)
            }
            Err(err @ AccountError::WrongCredentials) => {
                self.record_failure(&keys, now).await?;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}
