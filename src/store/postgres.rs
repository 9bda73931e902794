//! The Postgres store, for several replicas sharing one database: migrations from `migrations/postgres` (run under
//! sqlx's advisory lock, so replicas starting together are safe), retried connection at start-up, statement timeout,
//! and TLS as the URL's `sslmode` and `sslrootcert` ask (rustls; the default `prefer` uses TLS when the server offers
//! it; `verify-ca` through the relay of `verify_ca`, which checks the certificate chain and not the name).
//!
//! Every replica keeps a history cache, so a deletion on one must reach all: each delete bumps its tenant's
//! deletion epoch and announces itself with `NOTIFY` in its own transaction, and a replica serves a chain from its
//! cache only while it has heard of every deletion its tenant's epoch counts (one cheap query per turn). Otherwise
//! — a notice still on its way, or the listening connection lost — the chain is read from the database.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::Postgres;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::HistoryCache;
use super::dialect::Dialect;
use super::retention::{Retention, EVERY_RESPONSE};
use super::sql_store::SqlStore;
use super::writer::Writer;
use super::StoreResult;
use crate::config::DatabaseConfig;

/// The channel on which deleted responses are announced.
const FORGET_CHANNEL: &str = "threadline_forget";

/// Conversation storage in a Postgres database.
pub type PostgresStore = SqlStore<Postgres>;

/// What a Postgres store keeps besides its pools: what it has heard of deletions, and the TLS relay.
pub struct Replicas {
    heard: Arc<Mutex<Heard>>,
    /// The relay every connection goes through for `sslmode=verify-ca`.
    #[cfg(unix)]
    _relay: Option<super::verify_ca::Relay>,
}

/// What this replica has heard of deletions: whether it is listening, and each tenant's last deletion epoch.
#[derive(Debug, Default)]
struct Heard {
    listening: bool,
    epochs: HashMap<String, i64>,
}

impl Dialect for Postgres {
    type State = Replicas;

    /// One statement, atomic by itself: the responses inserted in a common table expression, the items after.
    const AT_ONCE: (&'static str, &'static str, &'static str) = ("WITH responses_stored AS (", ") ", "");

    /// Replicas claim runs side by side, each skipping the rows another is claiming.
    const CLAIM: &'static str = super::background::CLAIM_POSTGRES;

    /// Bumps the tenant's deletion epoch and tells every replica (this one included): `epoch id tenant` (the id `*`
    /// when every response of the tenant was erased).
    const FORGET_NOTICE: Option<&'static str> = Some(
        "WITH bumped AS (INSERT INTO deletion_epochs (tenant, epoch) VALUES ($1, 1) \
            ON CONFLICT (tenant) DO UPDATE SET epoch = deletion_epochs.epoch + 1 RETURNING epoch) \
        SELECT pg_notify('threadline_forget', bumped.epoch || ' ' || $2::text || ' ' || $1::text) FROM bumped",
    );

    /// A metadata entry: `((OBJECT) ->> KEY) = VALUE`. The JSON is read with `json_without_nul` (migration 0008):
    /// `jsonb` refuses the `\u0000` a client's text may hold.
    const METADATA_MATCH: [&'static str; 4] = ["((", ") ->> ", ") = ", ""];
    const RESPONSE_METADATA: &'static str = "json_without_nul(r.body) -> 'metadata'";
    const CONVERSATION_METADATA: &'static str = "json_without_nul(c.metadata)";

    /// A write transaction: row locks are taken by the statements.
    const BEGIN_WRITE: &'static str = "BEGIN";

    /// Rows picked to purge are locked until their batch commits; rows another replica's batch holds are skipped.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Whether this replica has heard of every deletion of `tenant` committed so far.
    fn cache_is_current<'a>(store: &'a PostgresStore, tenant: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let heard = {
                let heard = store.state.heard.lock().unwrap_or_else(PoisonError::into_inner);
                if !heard.listening {
                    return Ok(false);
                }
                heard.epochs.get(tenant).copied().unwrap_or(0)
            };
            let (epoch,): (i64,) =
                sqlx::query_as("SELECT COALESCE((SELECT epoch FROM deletion_epochs WHERE tenant = $1), 0)")
                    .bind(tenant)
                    .fetch_one(&store.pool)
                    .await?;
            Ok(epoch <= heard)
        })
    }
}

impl PostgresStore {
    /// Connects to `url` (retrying with backoff while the database is unreachable, up to the start-up timeout)
    /// and migrates it.
    pub async fn open(url: &str, config: &DatabaseConfig, retention: Retention) -> anyhow::Result<Self> {
        let timeout = format!("{}ms", config.statement_timeout.as_millis());
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout.as_str())]);
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        #[cfg(unix)]
        let (options, relay) = super::verify_ca::through_relay(url, options, config.acquire_timeout, &tasks, &stop)?;
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
        let cache = Arc::new(HistoryCache::new(config.history_cache_bytes));
        let heard = Arc::new(Mutex::new(Heard::default()));
        if config.history_cache_bytes > 0 {
            let deletions = Deletions { pool: pool.clone(), cache: cache.clone(), heard: heard.clone() };
            let listener = deletions.connect().await?;
            tasks.spawn(deletions.listen_until(listener, stop.clone()));
        }
        let writes = pool.clone();
        let writer = Writer::spawn(Box::new(move |turns| {
            let writes = writes.clone();
            Box::pin(async move { Self::write_turns(&writes, turns).await })
        }));
        let state = Replicas {
            heard,
            #[cfg(unix)]
            _relay: relay,
        };
        Ok(Self { pool, writer_pool: None, writer, cache, retention, state, tasks, stop })
    }
}

/// The task that hears of deletions and drops the deleted responses from the cache.
struct Deletions {
    pool: PgPool,
    cache: Arc<HistoryCache>,
    heard: Arc<Mutex<Heard>>,
}

impl Deletions {
    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hears of deletions on `listener` until `stop`, reconnecting (a second later) whenever the connection is lost.
    async fn listen_until(self, mut listener: PgListener, stop: CancellationToken) {
        loop {
            let lost = tokio::select! {
                () = stop.cancelled() => return,
                lost = self.receive(&mut listener) => lost,
            };
            self.heard().listening = false;
            tracing::warn!(error = %lost, "not hearing of deletions; the history cache is bypassed until reconnected");
            listener = loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match self.connect().await {
                    Ok(listener) => break listener,
                    Err(err) => tracing::warn!(error = %err, "cannot listen for deletions yet"),
                }
            };
        }
    }

    /// Starts listening, then reads every tenant's epoch and starts the cache afresh: deletions may have been
    /// missed while it was not listening.
    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(FORGET_CHANNEL).await?;
        let epochs: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant, epoch FROM deletion_epochs").fetch_all(&self.pool).await?;
        self.cache.clear();
        *self.heard() = Heard { listening: true, epochs: epochs.into_iter().collect() };
        Ok(listener)
    }

    /// Drops each deleted response it hears of from the cache; returns why it stopped hearing.
    async fn receive(&self, listener: &mut PgListener) -> sqlx::Error {
        loop {
            let notice = match listener.try_recv().await {
                Ok(Some(notice)) => notice,
                Ok(None) => return sqlx::Error::Protocol("the listening connection was lost".into()),
                Err(err) => return err,
            };
            let mut fields = notice.payload().splitn(3, ' ');
            let (Some(epoch), Some(id), Some(tenant)) = (fields.next(), fields.next(), fields.next()) else { continue };
            if id == EVERY_RESPONSE {
                // Every response of the tenant was erased: no cached chain may be served any longer.
                self.cache.clear();
            } else {
                self.cache.remove(tenant, id);
            }
            if let Ok(epoch) = epoch.parse::<i64>() {
                let mut heard = self.heard();
                let known = heard.epochs.entry(tenant.to_string()).or_default();
                *known = (*known).max(epoch);
            }
        }
    }
}
