//! Test databases: a temporary SQLite file, or a fresh Postgres database created for one test and dropped after
//! it. Postgres tests read the server's admin URL from `THREADLINE_TEST_POSTGRES_URL`; without it they are skipped,
//! except under `CI=true`, where they fail.

use std::sync::Arc;

use sqlx::{Connection, Executor, PgConnection};
use threadline::clock::Clock;
use threadline::config::{DatabaseConfig, RetentionConfig};
use threadline::store::{Retention, Store};

pub const POSTGRES_URL_VAR: &str = "THREADLINE_TEST_POSTGRES_URL";

/// A database that lives as long as this value, and its URL.
pub enum TestDb {
    Sqlite { url: String, _dir: tempfile::TempDir },
    Postgres(PostgresDb),
}

impl TestDb {
    /// A fresh database of this kind; `None` (skip) for Postgres when no test server is configured outside CI.
    pub async fn create(kind: super::StoreKind) -> Option<Self> {
        match kind {
            super::StoreKind::Sqlite => Some(Self::sqlite()),
            super::StoreKind::Postgres => Self::postgres().await,
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("threadline.db").display());
        TestDb::Sqlite { url, _dir: dir }
    }

    /// A fresh Postgres database, or `None` (skip) when no test server is configured outside CI.
    pub async fn postgres() -> Option<Self> {
        PostgresDb::create().await.map(TestDb::Postgres)
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } => url,
            TestDb::Postgres(db) => &db.url,
        }
    }

    /// Runs one statement directly on the database, behind the store's back.
    pub async fn execute(&self, statement: &str) {
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
                connection.execute(statement).await.unwrap();
            }
            TestDb::Postgres(db) => {
                let mut connection = PgConnection::connect(&db.url).await.unwrap();
                connection.execute(statement).await.unwrap();
            }
        }
    }

    /// The first column of every row `query` reads, directly from the database (`SELECT COUNT(*) …`, `SELECT id …`).
    pub async fn column<T>(&self, query: &str) -> Vec<T>
    where
        T: Send + Unpin,
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(query).fetch_all(&mut connection).await.unwrap()
            }
            TestDb::Postgres(db) => {
                let mut connection = PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar(query).fetch_all(&mut connection).await.unwrap()
            }
        }
    }

    /// The number a `SELECT COUNT(*) …` reads.
    pub async fn count(&self, query: &str) -> i64 {
        self.column::<i64>(query).await[0]
    }

    /// Opens (and migrates) the store over this database.
    pub async fn open(&self) -> Arc<dyn Store> {
        self.open_with(&DatabaseConfig::default()).await
    }

    /// Opens the store with these settings (and the default retention, by the real clock).
    pub async fn open_with(&self, config: &DatabaseConfig) -> Arc<dyn Store> {
        self.open_retaining(config, RetentionConfig::default(), Clock::default()).await
    }

    /// Opens the store with these settings, keeping data as `retention` says by `clock`.
    pub async fn open_retaining(
        &self,
        config: &DatabaseConfig,
        retention: RetentionConfig,
        clock: Clock,
    ) -> Arc<dyn Store> {
        threadline::store::open(self.url(), config, Retention { config: retention, clock }).await.unwrap()
    }
}

/// The admin URL of the test Postgres server, if configured.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{POSTGRES_URL_VAR} must be set when CI=true: the Postgres tests may not be skipped")
        }
        _ => {
            eprintln!("skipping a Postgres test: {POSTGRES_URL_VAR} is not set");
            None
        }
    }
}

/// A Postgres database created for one test; dropped (with its connections) when this value is dropped.
pub struct PostgresDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl PostgresDb {
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let id = threadline::model::new_id("db");
        let name = format!("threadline_test_{}", &id[id.len() - 16..]);
        let mut admin = PgConnection::connect(&admin_url).await.expect("cannot reach the test Postgres server");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.unwrap();
        let mut url = reqwest::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Some(Self { url: url.to_string(), name, admin_url })
    }

    /// The URL of this database through another host and port (e.g. a proxy).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_host(Some(&addr.ip().to_string())).unwrap();
        url.set_port(Some(addr.port())).unwrap();
        url.to_string()
    }

    /// The address of the Postgres server.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = reqwest::Url::parse(&self.url).unwrap();
        url.socket_addrs(|| Some(5432)).unwrap()[0]
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code: a thread of its own with a small runtime does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                admin.close().await
            })
        });
        if let Ok(Err(err)) = cleanup.join() {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}
