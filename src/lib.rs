//! threadline: an OpenAI-compatible stateful chat server in front of any OpenAI-compatible LLM backend.

pub mod api;
pub mod config;
pub mod engine;
pub mod error;
pub mod model;
pub mod store;
pub mod upstream;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::config::Config;
use crate::engine::Engine;

/// The assembled application: its router and the engine behind it.
pub struct App {
    pub router: Router,
    pub engine: Arc<Engine>,
}

/// Opens the store (applying migrations), builds the upstreams and the router.
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let store = store::open(&config.database_url, &config.database).await.context("cannot open the database")?;
    build_app_with_store(config, store)
}

/// Builds the application over an already opened store.
pub fn build_app_with_store(config: &Config, store: Arc<dyn store::Store>) -> anyhow::Result<App> {
    let upstreams = upstream::Upstreams::from_config(&config.upstreams)?;
    let engine = Arc::new(Engine::new(store, upstreams, config.limits.max_chain_depth));
    let router = api::router(api::AppState { engine: engine.clone() }, config.limits.max_body_bytes);
    Ok(App { router, engine })
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = build_app(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let upstreams: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    tracing::info!(upstreams = ?upstreams, "listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app.router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
