//! threadline: an OpenAI-compatible stateful chat server in front of any OpenAI-compatible LLM backend.

pub mod api;
pub mod config;
pub mod engine;
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
}

/// Installs the metrics recorder, opens the store (applying migrations), builds the upstreams and the router.
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    telemetry::init();
    let store = store::open(&config.database_url, &config.database).await.context("cannot open the database")?;
    build_app_with_store(config, store).await
}

/// Builds the application over an already opened store (installing the metrics recorder, if no app did yet).
pub async fn build_app_with_store(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<App> {
    telemetry::init();
    let upstreams = upstream::Upstreams::from_config(&config.upstreams)?;
    let sealer = compaction_sealer(config, &*store).await?;
    let limits = &config.limits;
    let engine = Arc::new(Engine::new(store, upstreams, limits.max_chain_depth, config.context.clone(), sealer));
    let state = api::AppState { engine: engine.clone(), max_input_items: limits.max_input_items };
    let router = api::router(state, limits);
    Ok(App { router, engine })
}

/// The key that seals compaction summaries: the configured one, else the one kept in the database (made by the
/// first server to need it), so every replica opens what any of them sealed.
async fn compaction_sealer(config: &Config, store: &dyn store::Store) -> anyhow::Result<Sealer> {
    let key = match &config.context.compaction_key {
        Some(config::Secret(key)) => key.clone(),
        None => {
            store.setting("compaction_key", &Sealer::generate_key()).await.context("cannot read the compaction key")?
        }
    };
    Sealer::from_base64(&key).context("invalid configuration: context.compaction_key")
}
