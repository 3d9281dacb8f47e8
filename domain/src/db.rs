//! The database: SQLite (embedded default) or PostgreSQL (several replicas).
//!
//! sqlx's `Any` driver loses booleans, dates and JSON, so Bootler keeps one
//! pool per engine behind an enum and each engine has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Runs `$body` with `$pool` bound to the engine's pool. The SQL must suit
/// both engines (`$1` placeholders work in both).
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Whether `err` is a unique-constraint violation, and on which constraint
/// or column (engines name it differently; the message names the column).
/// Runs `$body` with `$conn` bound to the transaction's connection, for
/// either engine.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

/// A transaction on either engine: things that must change together (a
/// state change and the job it needs) share one.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }
}

pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db_err = err.as_database_error()?;
    if !db_err.is_unique_violation() {
        return None;
    }
    Some(
        db_err
            .constraint()
            .map(str::to_string)
            .unwrap_or_else(|| db_err.message().to_string()),
    )
}

/// How long a request waits for a pooled connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL is not valid: {0}")]
    Url(String),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl Db {
    /// Opens a pool for `url` (`sqlite:…` or `postgres://…`). A SQLite file
    /// and its folder are created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbError::Url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            if let Some(parent) = Path::new(options.get_filename()).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|source| DbError::Folder {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::Url(
                "expected a URL starting with sqlite: or postgres://".to_string(),
            ))
        }
    }

    /// Applies the engine's pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Db::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction that will write: on SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so what it reads stays true until it
    /// commits and two of them never deadlock upgrading their locks. The
    /// same as [`Db::begin`] on PostgreSQL (lock rows there).
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction whose commit does not wait for PostgreSQL to flush it
    /// to disk (`synchronous_commit = off` for this transaction only). Only
    /// for bookkeeping whose loss in a crash of PostgreSQL itself is
    /// harmless: the job queue's claims and results (a lost one means the
    /// job runs again, which jobs must tolerate anyway). Never for what a
    /// request has confirmed to someone. The same as [`Db::begin`] on SQLite.
    pub async fn begin_relaxed(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(
                pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                    .await?,
            ),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// The installation's identity, written by the first migration.
    pub async fn installation_id(&self) -> Result<String, DbError> {
        const SQL: &str = "SELECT value FROM settings WHERE key = 'installation_id'";
        let id: (String,) = match self {
            Db::Sqlite(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
            Db::Postgres(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
        };
        Ok(id.0)
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_file_and_folder_are_created_and_migrated_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/bootler.db", dir.path().display());
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        db.ping().await.unwrap();
        assert_eq!(db.engine(), "sqlite");
        let id = db.installation_id().await.unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(dir.path().join("nested/bootler.db").exists());
    }

    #[tokio::test]
    async fn unsupported_url_is_refused() {
        let err = Db::connect("mysql://localhost/x", 1).await.unwrap_err();
        assert!(matches!(err, DbError::Url(_)));
    }
}
