//! The Postgres store, for several replicas sharing one database: migrations from `migrations/postgres` (run under
//! sqlx's advisory lock, so replicas starting together are safe), retried connection at start-up, statement timeout.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;

use super::sql::sql_store;
use super::Counter;
use crate::config::DatabaseConfig;

/// Conversation storage in a Postgres database.
pub struct PostgresStore {
    pool: PgPool,
    reads: Counter,
}

impl PostgresStore {
    /// Connects to `url` (retrying with backoff while the database is unreachable, up to the start-up timeout)
    /// and migrates it.
    pub async fn open(url: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let timeout = format!("{}ms", (config.statement_timeout_secs * 1000.0).round() as u64);
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout.as_str())]);
        let pool_options = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs_f64(config.acquire_timeout_secs));
        let deadline = Instant::now() + Duration::from_secs_f64(config.startup_timeout_secs);
        let mut backoff = Duration::from_millis(250);
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(err) if Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "database not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(err) => return Err(err.into()),
            }
        };
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool, reads: Counter::default() })
    }
}

sql_store!(PostgresStore, Postgres);
