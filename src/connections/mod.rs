//! Serving connections: hyper's HTTP/1.1 server (with upgrades, for WebSockets) on every accepted TCP connection,
//! with nodelay, hyper's own rejections given the envelope (`listener`), and each connection closed at its deadline
//! (`deadline`: headers late, or idle too long). At most `limits.max_connections` are open at once: past it new
//! connections wait in the listen backlog, unaccepted, holding no file descriptor. At stop: no more accepting; each
//! connection finishes the requests it has in progress, then closes.

mod deadline;

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;
use crate::holding_body::HoldingBody;
use crate::listener::EnvelopeStream;
use deadline::{Deadline, Timeouts, Watched};

/// How long accepting pauses after an error that is not one connection's (out of file descriptors, say).
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves `router` on the connections `listener` accepts, under the limits' deadlines and connection cap, until `stop`
/// is cancelled and every connection has closed.
pub fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let timeouts = Timeouts { header: limits.header_read_timeout, idle: limits.idle_timeout };
    let places = Arc::new(Semaphore::new(max_connections(limits.max_connections as usize, open_file_limit())));
    async move {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                accepted = accept(&listener, &places) => accepted,
            };
            connections.spawn(connection(accepted, router.clone(), timeouts, stop.clone()));
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }
}

/// The next connection, once one of the places is free.
async fn accept(listener: &TcpListener, places: &Arc<Semaphore>) -> (TcpStream, OwnedSemaphorePermit) {
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return std::future::pending().await;
        };
        match listener.accept().await {
            Ok((stream, _)) => return (stream, place),
            // The client gave up before it was accepted.
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot accept a connection; trying again in {ACCEPT_PAUSE:?}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it ends, its deadline passes, or (at stop) its requests in progress are done.
async fn connection(
    (stream, place): (TcpStream, OwnedSemaphorePermit),
    router: Router,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    // Small writes (stream events) go out at once instead of waiting for the client's ACK (Nagle's algorithm).
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    let deadline = Deadline::new(timeouts);
    let passed = deadline.passed();
    let io = TokioIo::new(Watched::new(EnvelopeStream::new(stream), deadline.clone(), place));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_progress = deadline.request();
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| HoldingBody::new(body, in_progress)))
        }
    });
    // Not hyper's header timeout: it runs while a kept-alive connection waits for its next request, so it would close
    // idle connections as early as late headers; `deadline` keeps the two apart.
    let served = http1::Builder::new().header_read_timeout(None).serve_connection(io, service).with_upgrades();
    tokio::pin!(served, passed);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(err) = ended {
                    tracing::trace!(error = %err, "a connection ended with an error");
                }
                return;
            }
            () = passed.as_mut() => {
                tracing::debug!("closing a connection whose request headers are late, or that stayed idle too long");
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// How many connections may be open at once: `configured`, or fewer when the open-file limit leaves no room for that
/// many — three quarters of it, the rest for the database, the upstreams and the process's own files.
fn max_connections(configured: usize, open_file_limit: Option<usize>) -> usize {
    let Some(open_files) = open_file_limit else { return configured };
    let room = (open_files / 4 * 3).max(1);
    if room >= configured {
        return configured;
    }
    tracing::warn!(
        "limits.max_connections is {configured}, but the open-file limit ({open_files}) leaves room for {room}: \
         serving at most {room} connections at once (raise the limit, `ulimit -n`, to serve more)"
    );
    room
}

/// The process's open-file limit (its soft limit), where the system says (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    // "Max open files  1024  524288  files"; "unlimited" is no limit.
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(max_connections(4096, None), 4096);
        assert_eq!(max_connections(4096, Some(1_048_576)), 4096);
        assert_eq!(max_connections(4096, Some(1024)), 768);
        assert_eq!(max_connections(10, Some(1024)), 10);
        assert_eq!(max_connections(4096, Some(1)), 1);
    }

    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|limit| limit > 0));
        }
    }
}
