//! A connection's deadline, past which it is closed without an answer. Until its first request's headers are in:
//! `header_read_timeout` from its opening. With nothing in progress: `idle_timeout` from the end of its last answer,
//! or `header_read_timeout` from the first byte of the next request, whichever is sooner. While a request is in
//! progress, or its answer still waits to be written to a client slow to read it: none — a request's body has a
//! deadline of its own (`api::body`), and an answer, however long it streams, is never cut. A WebSocket has left
//! hyper, and this deadline, behind.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::listener::EnvelopeStream;

/// How long a connection may take to send a request's headers, and stay open with nothing in progress.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug)]
struct State {
    /// Requests whose headers are in and whose answer has not ended.
    in_progress: usize,
    /// When the connection is closed unless something changes; `None` while a request is in progress.
    closes_at: Option<Instant>,
    /// Whether a request's first bytes have come since nothing was last in progress.
    head_started: bool,
    /// Whether the client is not taking what is written to it (the last write could not go out).
    write_blocked: bool,
}

impl State {
    /// Whether a request or the writing of an answer is in progress.
    fn busy(&self) -> bool {
        self.in_progress > 0 || self.write_blocked
    }
}

/// One connection's deadline, moved by what it reads and by its requests, watched by its task.
pub struct Deadline {
    state: watch::Sender<State>,
    timeouts: Timeouts,
}

impl Deadline {
    /// The deadline of a connection opened now.
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        let closes_at = Some(Instant::now() + timeouts.header);
        let opened = State { in_progress: 0, closes_at, head_started: true, write_blocked: false };
        Arc::new(Self { state: watch::Sender::new(opened), timeouts })
    }

    /// Resolves once the deadline has passed (never, once nothing can move it any more).
    pub fn passed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut state = self.state.subscribe();
        async move {
            loop {
                let closes_at = state.borrow_and_update().closes_at;
                let changed = match closes_at {
                    Some(at) if at <= Instant::now() => return,
                    Some(at) => tokio::select! {
                        () = tokio::time::sleep_until(at) => continue,
                        changed = state.changed() => changed,
                    },
                    None => state.changed().await,
                };
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Bytes came in: if nothing is in progress, they start a request, whose headers now have `header` to arrive.
    fn read(&self) {
        self.state.send_if_modified(|state| {
            if state.busy() || state.head_started {
                return false;
            }
            state.head_started = true;
            let header = Instant::now() + self.timeouts.header;
            state.closes_at = Some(state.closes_at.map_or(header, |at| at.min(header)));
            true
        });
    }

    /// A request's headers are in: no deadline until its answer ends (`InProgress` dropped).
    pub fn request(self: &Arc<Self>) -> InProgress {
        self.state.send_modify(|state| {
            state.in_progress += 1;
            state.closes_at = None;
            state.head_started = false;
        });
        InProgress(self.clone())
    }

    /// Writes to the client could not go out (`blocked`), or went out again: until they do, the connection is busy.
    fn writing(&self, blocked: bool) {
        let idle = self.timeouts.idle;
        self.state.send_if_modified(|state| {
            state.write_blocked = blocked;
            if blocked {
                // Only a deadline that goes away needs its watcher told.
                return state.closes_at.take().is_some();
            }
            if state.busy() {
                return false;
            }
            state.closes_at = Some(Instant::now() + idle);
            state.head_started = false;
            true
        });
    }
}

/// A request in progress on a connection; when the last one ends, the connection's idle deadline starts.
pub struct InProgress(Arc<Deadline>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let idle = self.0.timeouts.idle;
        self.0.state.send_modify(|state| {
            state.in_progress = state.in_progress.saturating_sub(1);
            if !state.busy() {
                state.closes_at = Some(Instant::now() + idle);
            }
        });
    }
}

/// A connection as hyper reads it: its reads may start a request's header deadline, and it holds its place among the
/// open connections until dropped (an upgraded one, a WebSocket, when the socket closes).
pub struct Watched {
    /// First, so that the socket is closed before its place is given back.
    inner: EnvelopeStream,
    deadline: Arc<Deadline>,
    /// Whether the last write could not go out.
    write_blocked: bool,
    _place: OwnedSemaphorePermit,
}

impl Watched {
    pub fn new(inner: EnvelopeStream, deadline: Arc<Deadline>, place: OwnedSemaphorePermit) -> Self {
        Self { inner, deadline, write_blocked: false, _place: place }
    }

    /// Tells the deadline when writes stop or start going out again.
    fn wrote<T>(&mut self, polled: Poll<T>) -> Poll<T> {
        if polled.is_pending() != self.write_blocked {
            self.write_blocked = polled.is_pending();
            self.deadline.writing(self.write_blocked);
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.deadline.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // As the envelope needs (see `listener`): each response head in one write.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_follows_the_requests() {
        let timeouts = Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60) };
        let deadline = Deadline::new(timeouts);
        let opened = Instant::now();
        let closes_at = |deadline: &Deadline| deadline.state.borrow().closes_at;
        assert_eq!(closes_at(&deadline), Some(opened + timeouts.header));
        tokio::time::advance(Duration::from_secs(1)).await;
        deadline.read();
        assert_eq!(closes_at(&deadline), Some(opened + timeouts.header), "the first request's counts from the opening");
        let first = deadline.request();
        let second = deadline.request();
        deadline.read();
        assert_eq!(closes_at(&deadline), None);
        drop(first);
        assert_eq!(closes_at(&deadline), None, "one is still in progress");
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(second);
        let idle_since = Instant::now();
        assert_eq!(closes_at(&deadline), Some(idle_since + timeouts.idle));
        tokio::time::advance(Duration::from_secs(20)).await;
        deadline.read();
        let header = Instant::now() + timeouts.header;
        assert_eq!(closes_at(&deadline), Some(header), "the next request's first byte");
        tokio::time::advance(Duration::from_secs(5)).await;
        deadline.read();
        assert_eq!(closes_at(&deadline), Some(header), "later bytes of the same headers move nothing");
        let passed = deadline.passed();
        tokio::time::timeout_at(header + Duration::from_millis(1), passed).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_the_client_is_slow_to_take_is_not_idle() {
        let timeouts = Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60) };
        let deadline = Deadline::new(timeouts);
        let closes_at = |deadline: &Deadline| deadline.state.borrow().closes_at;
        let request = deadline.request();
        deadline.writing(true);
        drop(request);
        assert_eq!(closes_at(&deadline), None, "its answer is still being written");
        tokio::time::advance(Duration::from_secs(600)).await;
        deadline.read();
        assert_eq!(closes_at(&deadline), None, "a next request's bytes start nothing yet");
        deadline.writing(false);
        assert_eq!(closes_at(&deadline), Some(Instant::now() + timeouts.idle));
        deadline.writing(true);
        assert_eq!(closes_at(&deadline), None);
    }
}
