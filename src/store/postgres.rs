//! The Postgres store, for several replicas sharing one database: migrations from `migrations/postgres` (run under
//! sqlx's advisory lock, so replicas starting together are safe), retried connection at start-up, statement timeout,
//! and TLS as the URL's `sslmode` and `sslrootcert` ask (rustls; the default `prefer` uses TLS when the server offers
//! it).

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;

use super::sql_store::sql_store;
use crate::config::DatabaseConfig;

/// Conversation storage in a Postgres database.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (retrying with backoff while the database is unreachable, up to the start-up timeout)
    /// and migrates it.
    pub async fn open(url: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let timeout = format!("{}ms", config.statement_timeout.as_millis());
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout.as_str())]);
        let pool_options =
            PgPoolOptions::new().max_connections(config.max_connections).acquire_timeout(config.acquire_timeout);
        let deadline = Instant::now() + config.startup_timeout;
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
        Ok(Self { pool })
    }
}

sql_store!(PostgresStore, Postgres);
