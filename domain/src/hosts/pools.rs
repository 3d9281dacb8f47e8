//! Pools group hosts for allocation (thesis §5.2). Administrators create
//! them and enrol discovered hosts into them; leasing builds on them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Actor, Hosts, HostsError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Hosts enrolled in it.
    pub hosts: i64,
    pub created_at: DateTime<Utc>,
}

/// A pool's name: like a host name label (letters, digits, '-', '_').
fn check_pool_name(name: &str) -> Result<String, HostsError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(HostsError::Invalid(format!(
            "“{}” is not a pool name: 1 to 64 letters, digits, '-', '_' or '.'.",
            name.chars().take(70).collect::<String>()
        )))
    }
}

impl Hosts {
    /// Every pool, by name, with how many hosts it has.
    pub async fn pools(&self) -> Result<Vec<Pool>, HostsError> {
        Ok(crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT p.id, p.name, p.description, \
                 (SELECT COUNT(*) FROM hosts h WHERE h.pool_id = p.id) AS hosts, p.created_at \
                 FROM pools p ORDER BY p.name",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// A new pool (administrators).
    pub async fn create_pool(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<Pool, HostsError> {
        if !actor.admin {
            return Err(HostsError::Forbidden(
                "Only administrators create pools.".into(),
            ));
        }
        let name = check_pool_name(name)?;
        if description.len() > 500 {
            return Err(HostsError::Invalid(
                "A pool's description has at most 500 characters.".into(),
            ));
        }
        let inserted = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "INSERT INTO pools (name, description, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, name, description, CAST(0 AS BIGINT) AS hosts, created_at",
            )
            .bind(&name)
            .bind(description.trim())
            .bind(now)
            .fetch_one(pool)
            .await
        });
        match inserted {
            Ok(pool) => Ok(pool),
            Err(err) if crate::db::unique_violation(&err).is_some() => Err(HostsError::Conflict(
                format!("There is already a pool named “{name}”."),
            )),
            Err(err) => Err(err.into()),
        }
    }
}
