//! The SQLite store: one file in WAL mode, migrations from `migrations/sqlite` applied at open. SQLite allows one
//! writer at a time, so writes go through a pool of one connection (turns grouped by the writer task) and reads
//! through a pool of their own, which WAL lets run beside the writer. One process owns the file.

use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::HistoryCache;
use super::dialect::Dialect;
use super::retention::Retention;
use super::sql_store::SqlStore;
use super::writer::Writer;
use super::StoreResult;
use crate::config::{DatabaseConfig, Synchronous};

/// Conversation storage in one SQLite database.
pub type SqliteStore = SqlStore<Sqlite>;

impl Dialect for Sqlite {
    /// Nothing besides: every deletion happens in this process.
    type State = ();

    /// Statements that run together, in one transaction, in one call.
    const AT_ONCE: (&'static str, &'static str, &'static str) = ("BEGIN IMMEDIATE; ", "; ", "; COMMIT");

    /// One process, one writer: the oldest waiting run is simply taken.
    const CLAIM: &'static str = super::background::CLAIM_SQLITE;

    /// Deleting a response concerns this process only.
    const FORGET_NOTICE: Option<&'static str> = None;

    /// A write transaction takes the write lock at once: one that read first could not take it later if another
    /// process (`threadline purge`) wrote meanwhile.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// A metadata entry: `EXISTS (SELECT 1 FROM json_each(OBJECT) WHERE key = KEY AND value = VALUE)`.
    const METADATA_MATCH: [&'static str; 4] =
        ["EXISTS (SELECT 1 FROM json_each(", ") WHERE key = ", " AND value = ", ")"];
    const RESPONSE_METADATA: &'static str = "json_extract(r.body, '$.metadata')";
    const CONVERSATION_METADATA: &'static str = "c.metadata";

    /// One writer at a time: nothing to skip.
    const SKIP_LOCKED: &'static str = "";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// The cache hears of every deletion at once: they all happen in this process.
    fn cache_is_current<'a>(_store: &'a SqliteStore, _tenant: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async { Ok(true) })
    }
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://PATH`, created if missing, or `sqlite::memory:`) and migrates it.
    pub async fn open(url: &str, config: &DatabaseConfig, retention: Retention) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(config.statement_timeout);
        // A connection to a local file does not go stale: no ping before each use.
        let pool_options =
            || SqlitePoolOptions::new().acquire_timeout(config.acquire_timeout).test_before_acquire(false);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (pool, writer_pool) = if in_memory {
            // One connection holds the whole in-memory database; it must never be closed.
            let pool = pool_options().max_connections(1).idle_timeout(None).max_lifetime(None);
            (pool.connect_with(options).await?, None)
        } else {
            let writer_pool = pool_options().max_connections(1).connect_with(options.clone()).await?;
            sqlx::migrate!("./migrations/sqlite").run(&writer_pool).await?;
            let readers = pool_options().max_connections(config.max_connections.saturating_sub(1).max(1));
            (readers.connect_with(options.read_only(true)).await?, Some(writer_pool))
        };
        if writer_pool.is_none() {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        }
        let writes = writer_pool.clone().unwrap_or_else(|| pool.clone());
        let writer = Writer::spawn(Box::new(move |turns| {
            let writes = writes.clone();
            Box::pin(async move { Self::write_turns(&writes, turns).await })
        }));
        let cache = Arc::new(HistoryCache::new(config.history_cache_bytes));
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        Ok(Self { pool, writer_pool, writer, cache, retention, state: (), tasks, stop })
    }
}
