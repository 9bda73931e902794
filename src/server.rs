//! Serving: listen, answer (on the connections of `connections`) until SIGINT or SIGTERM, then stop accepting and
//! drain — wait (up to the configured `drain_timeout`) for the requests in progress and for every running turn to be
//! stored. Meanwhile, expired data is purged every `retention.purge_interval`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::build_app;
use crate::config::Config;
use crate::connections;
use crate::store::{Purge, Store};
use crate::telemetry;

/// Runs the server until a shutdown signal, then drains it.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = build_app(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (listen)", config.listen))?;
    let upstreams: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    tracing::info!(upstreams = ?upstreams, "listening on http://{}", listener.local_addr()?);
    if config.auth.is_open(&config.listen) {
        tracing::warn!(
            listen = %config.listen,
            "auth.mode is \"none\" on an address other machines can reach: anyone who reaches it reads every \
             stored conversation"
        );
    }
    // The tokenizers load beside the first requests rather than in the first turn that counts.
    let context = &config.context;
    let encodings: Vec<_> =
        std::iter::once(context.encoding).chain(context.models.iter().filter_map(|m| m.encoding)).collect();
    tokio::task::spawn_blocking(move || encodings.into_iter().for_each(crate::tokens::Encoding::load));
    // Stops the purge and the accepting of connections, and closes the WebSockets once their response in flight is
    // done.
    let stop = app.stopping.clone();
    let tasks = app.engine.tasks();
    if let Some(every) = config.retention.purge_interval {
        tasks.spawn_task(purge_every(app.engine.store().clone(), every, stop.clone()));
    }
    let server = connections::serve(listener, app.router, &config.limits, stop.clone());
    let mut server = tasks.spawn_task(server);
    tokio::select! {
        () = shutdown_signal() => stop.cancel(),
        ended = &mut server => {
            ended?;
            anyhow::bail!("the server stopped accepting connections on its own");
        }
    }
    let deadline = tokio::time::Instant::now() + config.drain_timeout;
    app.engine.stop_background();
    tracing::info!(
        running_turns = ?tasks.running(),
        drain_timeout = ?config.drain_timeout,
        "shutting down: no new connections; waiting for running turns to be stored"
    );
    let still_running = tasks.drain(config.drain_timeout).await;
    if !still_running.is_empty() {
        tracing::warn!(turns = ?still_running, "drain timeout reached: these turns were still running and are lost");
        return Ok(());
    }
    // Every turn is stored; the requests still open (streams sending their last events) get the time left.
    if tokio::time::timeout_at(deadline, server).await.is_err() {
        tracing::warn!("drain timeout reached with requests still open");
    }
    // The store commits what is queued, then stops its own tasks.
    app.engine.store().close().await;
    tracing::info!("every turn is stored; stopped");
    Ok(())
}

/// Erases expired data at once, then every `every`, until `stop` (a purge in progress is dropped, its batch rolled
/// back). Logs what it removed; a failure is logged and tried again at the next interval.
async fn purge_every(store: Arc<dyn Store>, every: Duration, stop: CancellationToken) {
    loop {
        let purged = tokio::select! {
            () = stop.cancelled() => return,
            purged = store.purge(Purge::Expired) => purged,
        };
        match purged {
            Ok(report) if report.is_empty() => tracing::debug!("purge: nothing has expired"),
            Ok(report) => {
                telemetry::purged(&report);
                tracing::info!(
                    responses = report.responses,
                    response_items = report.response_items,
                    conversations = report.conversations,
                    conversation_items = report.conversation_items,
                    "{report}"
                );
            }
            Err(err) => tracing::warn!(error = %err, "the purge of expired data failed; it runs again in {every:?}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Resolves at SIGINT or SIGTERM.
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
}
