//! The SQLite store: one file, WAL mode, migrations from `migrations/sqlite` applied at open.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Sqlite;

use super::sql_store::sql_store;
use crate::config::DatabaseConfig;

/// Conversation storage in one SQLite database.
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://PATH`, created if missing, or `sqlite::memory:`) and migrates it.
    pub async fn open(url: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(config.statement_timeout);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // One connection holds the whole in-memory database; it must never be closed.
            SqlitePoolOptions::new().max_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(config.max_connections)
        }
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

sql_store!(SqliteStore, Sqlite);
