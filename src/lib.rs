//! threadline: an OpenAI-compatible stateful chat server in front of any OpenAI-compatible LLM backend.

pub mod api;
pub mod clock;
pub mod config;
pub mod connections;
pub mod engine;
mod holding_body;
pub mod listener;
pub mod model;
mod server;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod upstream;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::config::Config;
use crate::engine::{Engine, Sealer};

pub use server::serve;

/// The assembled application: its router and the engine behind it.
pub struct App {
    pub router: Router,
    pub engine: Arc<Engine>,
    /// Cancelled when the server stops: open WebSockets close once their response in flight is done.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Installs the metrics recorder, opens the store (applying migrations), builds the upstreams and the router.
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    telemetry::init();
    let store = open_store(config, clock::Clock::default()).await?;
    build_app_with_store(config, store).await
}

/// Opens (and migrates) the store the configuration names, keeping data as its `retention` says by `clock`.
pub async fn open_store(config: &Config, clock: clock::Clock) -> anyhow::Result<Arc<dyn store::Store>> {
    let retention = store::Retention { config: config.retention.clone(), clock };
    store::open(&config.database_url, &config.database, retention).await.context("cannot open the database")
}

/// Builds the application over an already opened store (installing the metrics recorder, if no app did yet).
pub async fn build_app_with_store(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<App> {
    telemetry::init();
    let passthrough = server_secret(&*store, &config.auth.passthrough_secret, "passthrough_secret").await?;
    let auth = Arc::new(api::auth::Authenticator::new(&config.auth, &passthrough));
    let engine = build_engine(config, store).await?;
    engine.start_background();
    let limits = &config.limits;
    let state = api::AppState {
        engine: engine.clone(),
        auth,
        max_input_items: limits.max_input_items,
        max_body_bytes: limits.max_body_bytes,
        websocket_lifetime: limits.websocket_lifetime,
        stopping: tokio_util::sync::CancellationToken::new(),
        limiter: Arc::new(api::limits::Limiter::new(limits)),
        mcp: api::mcp::http::service(api::mcp::Server::new(engine.clone(), config), limits.max_body_bytes),
    };
    let stopping = state.stopping.clone();
    let router = api::router(state, limits);
    Ok(App { router, engine, stopping })
}

/// Builds the engine over an opened store: the upstreams and the key sealing compaction summaries. Its background
/// workers are not started (`threadline mcp` runs none).
pub async fn build_engine(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<Arc<Engine>> {
    let scrubber = upstream::Scrubber::from_config(config);
    let max_reply_bytes = config.limits.max_upstream_reply_bytes;
    let upstreams = upstream::Upstreams::from_config(&config.upstreams, max_reply_bytes, &scrubber)?;
    let compaction_key = server_secret(&*store, &config.context.compaction_key, "compaction_key").await?;
    let sealer = Sealer::from_base64(&compaction_key).context("invalid configuration: context.compaction_key")?;
    let (context, background) = (config.context.clone(), config.background.clone());
    let max_depth = config.limits.max_chain_depth;
    Ok(Arc::new(Engine::new(store, upstreams, max_depth, context, sealer, background)))
}

/// A server secret (the key sealing compaction summaries, the one passthrough tenants are derived with): the
/// configured one, else the one kept in the database under `name`, made by the first server to need it, so every
/// replica agrees.
async fn server_secret(
    store: &dyn store::Store,
    configured: &Option<config::Secret>,
    name: &str,
) -> anyhow::Result<String> {
    match configured {
        Some(config::Secret(secret)) => Ok(secret.clone()),
        None => store.setting(name, &Sealer::generate_key()).await.with_context(|| format!("cannot read the {name}")),
    }
}
