//! Browser sessions: a random token in an HttpOnly cookie, its hash in the
//! database (so several replicas share sessions), a CSRF token per session.

use chrono::{DateTime, Duration, Utc};

use super::{AccountError, Accounts, User};
use crate::secret;

/// How long a session lasts without being used.
pub const SESSION_TTL: Duration = Duration::days(14);

/// A new session, as the edge needs it to set the cookie.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
}

impl Accounts {
    /// Checks the password (rate limited per account and per client
    /// address) and opens a session.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        address: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<NewSession, AccountError> {
        let user = self
            .authenticate_limited(login, password, address, now)
            .await?;
        let token = secret::new_token().map_err(|e| AccountError::Internal(e.to_string()))?;
        let csrf = secret::new_token().map_err(|e| AccountError::Internal(e.to_string()))?;
        let expires_at = now + SESSION_TTL;
        crate::with_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $4)",
            )
            .bind(secret::token_hash(&token))
            .bind(user.id)
            .bind(&csrf)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        tracing::info!(username = %user.username, "signed in");
        Ok(NewSession {
            token,
            user,
            expires_at,
        })
    }

    /// The session of a cookie token: `None` if unknown, expired, or the
    /// account is no longer active. Using a session extends it.
    pub async fn session(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, AccountError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            user_id: i64,
            csrf_token: String,
            expires_at: DateTime<Utc>,
            last_seen_at: DateTime<Utc>,
        }
        let hash = secret::token_hash(token);
        let row: Option<Row> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT user_id, csrf_token, expires_at, last_seen_at FROM sessions WHERE token_hash = $1",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })?;
        let Some(row) = row else { return Ok(None) };
        if row.expires_at <= now {
            self.sign_out(token).await?;
            return Ok(None);
        }
        let Some(user) = self.active_user(row.user_id).await? else {
            self.sign_out(token).await?;
            return Ok(None);
        };
        // Extend at most once a minute: no write on every request.
        if now - row.last_seen_at > Duration::minutes(1) {
            crate::with_pool!(&self.db, pool => {
                sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3")
                    .bind(now)
                    .bind(now + SESSION_TTL)
                    .bind(&hash)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })?;
        }
        Ok(Some(Session {
            user,
            csrf_token: row.csrf_token,
        }))
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), AccountError> {
        crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(secret::token_hash(token))
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

/// The session token in a `Cookie` header value, if any.
pub fn token_from_cookies(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The name of the session cookie.
pub const COOKIE: &str = "bootler_session";

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_session_cookie_among_others() {
        use super::token_from_cookies as t;
        assert_eq!(t("a=1; bootler_session=abc_-9; b=2"), Some("abc_-9"));
        assert_eq!(t("bootler_session="), None);
        assert_eq!(t("other_bootler_session=x"), None);
        assert_eq!(t(""), None);
    }
}
