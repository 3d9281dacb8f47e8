//! The built-in directory: argon2id hashes in the `local_credentials` table.

use async_trait::async_trait;
use chrono::Utc;

use super::{Directory, DirectoryError, Entry, Group};
use crate::db::Db;
use crate::secret;

pub struct Builtin {
    db: Db,
}

impl Builtin {
    pub fn new(db: Db) -> Builtin {
        Builtin { db }
    }
}

fn internal(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Internal(e.to_string())
}

/// argon2 is deliberately slow: keep it off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DirectoryError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

#[async_trait]
impl Directory for Builtin {
    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn hash_password(&self, password: &str) -> Result<String, DirectoryError> {
        secret::hash_password(password).map_err(internal)
    }

    async fn verify_hash(&self, password: &str, hash: Option<&str>) -> bool {
        let password = password.to_string();
        let real = hash.is_some();
        let hash = hash.unwrap_or(secret::DUMMY_HASH).to_string();
        let matches = blocking(move || secret::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        matches && real
    }

    async fn create(&self, entry: &Entry, password_hash: &str) -> Result<(), DirectoryError> {
        const SQL: &str = "INSERT INTO local_credentials (user_id, password_hash, updated_at) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, \
                           updated_at = excluded.updated_at";
        let now = Utc::now();
        crate::with_pool!(&self.db, pool => {
            sqlx::query(SQL)
                .bind(entry.user_id)
                .bind(password_hash)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(internal)
    }

    async fn verify(&self, entry: &Entry, password: &str) -> Result<bool, DirectoryError> {
        const SQL: &str = "SELECT password_hash FROM local_credentials WHERE user_id = $1";
        let hash: Option<String> = crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(SQL).bind(entry.user_id).fetch_optional(pool).await
        })
        .map_err(internal)?;
        let password = password.to_string();
        Ok(self.verify_hash(&password, hash.as_deref()).await)
    }

    async fn set_password(&self, entry: &Entry, password: &str) -> Result<(), DirectoryError> {
        let password = password.to_string();
        let hash = blocking(move || secret::hash_password(&password))
            .await?
            .map_err(internal)?;
        self.create(entry, &hash).await
    }

    /// Names and addresses live in `users`; nothing else to update.
    async fn update(&self, _entry: &Entry) -> Result<(), DirectoryError> {
        Ok(())
    }

    /// The account's status in `users` is what every check reads.
    async fn set_enabled(&self, _entry: &Entry, _enabled: bool) -> Result<(), DirectoryError> {
        Ok(())
    }

    async fn groups_of(&self, username: &str) -> Result<Vec<String>, DirectoryError> {
        crate::with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT g.name FROM user_groups g JOIN users u ON u.id = g.user_id \
                 WHERE u.username = $1 ORDER BY g.name",
            )
            .bind(username)
            .fetch_all(pool)
            .await
        })
        .map_err(internal)
    }

    async fn groups(&self) -> Result<Vec<Group>, DirectoryError> {
        let rows: Vec<(String, String)> = crate::with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT g.name, u.username FROM user_groups g JOIN users u ON u.id = g.user_id \
                 ORDER BY g.name, u.username",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(internal)?;
        let mut groups: Vec<Group> = Vec::new();
        for (name, member) in rows {
            match groups.last_mut() {
                Some(group) if group.name == name => group.members.push(member),
                _ => groups.push(Group {
                    name,
                    members: vec![member],
                }),
            }
        }
        Ok(groups)
    }

    async fn set_group(&self, name: &str, members: &[i64]) -> Result<(), DirectoryError> {
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        crate::with_tx!(&mut tx, conn => {
            sqlx::query("DELETE FROM user_groups WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })
        .map_err(internal)?;
        for member in members {
            crate::with_tx!(&mut tx, conn => {
                sqlx::query(
                    "INSERT INTO user_groups (name, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(member)
                .execute(&mut *conn)
                .await
                .map(|_| ())
            })
            .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)
    }
}
