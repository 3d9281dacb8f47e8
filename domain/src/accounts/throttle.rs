//! Rate limiting of sign-in attempts, per account and per client address,
//! kept in the database so every replica sees the same counts.

use chrono::{DateTime, Duration, Utc};

use super::{AccountError, Accounts};

/// Failed attempts allowed per account within one window.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failed attempts allowed per client address within one window (a lab
/// behind one NAT address shares it).
pub const ADDRESS_LIMIT: i64 = 30;
/// The window: counting starts with the first failure.
pub const WINDOW: Duration = Duration::minutes(15);

#[derive(sqlx::FromRow)]
struct Row {
    failures: i64,
    window_start: DateTime<Utc>,
}

/// The keys an attempt counts against.
pub(crate) fn keys(login: &str, address: Option<&str>) -> Vec<(String, i64)> {
    let mut keys = vec![(
        format!("login:{}", login.trim().to_lowercase()),
        ACCOUNT_LIMIT,
    )];
    if let Some(address) = address {
        keys.push((format!("addr:{address}"), ADDRESS_LIMIT));
    }
    keys
}

impl Accounts {
    /// Refuses with [`AccountError::RateLimited`] while any key is over its
    /// limit.
    pub(crate) async fn check_throttle(
        &self,
        keys: &[(String, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        for (key, limit) in keys {
            let row: Option<Row> = crate::with_pool!(&self.db, pool => {
                sqlx::query_as("SELECT failures, window_start FROM login_failures WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await
            })?;
            if let Some(row) = row {
                let ends = row.window_start + WINDOW;
                if row.failures >= *limit && ends > now {
                    return Err(AccountError::RateLimited {
                        retry_after_seconds: (ends - now).num_seconds().max(1),
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts one failure against every key.
    pub(crate) async fn record_failure(
        &self,
        keys: &[(String, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let window_floor = now - WINDOW;
        for (key, _) in keys {
            crate::with_pool!(&self.db, pool => {
                sqlx::query(
                    "INSERT INTO login_failures (key, failures, window_start) VALUES ($1, 1, $2) \
                     ON CONFLICT (key) DO UPDATE SET \
                       failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END, \
                       window_start = CASE WHEN login_failures.window_start <= $3 THEN excluded.window_start ELSE login_failures.window_start END",
                )
                .bind(key)
                .bind(now)
                .bind(window_floor)
                .execute(pool)
                .await
                .map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful sign-in.
    pub(crate) async fn clear_failures(&self, login: &str) -> Result<(), AccountError> {
        let key = format!("login:{}", login.trim().to_lowercase());
        crate::with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM login_failures WHERE key = $1")
                .bind(&key)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
