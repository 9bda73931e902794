//! Server-Sent Events out: frames, the streaming response with its headers, and turn events as a stream.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;

use crate::engine::{TurnEvent, TurnEvents};
use crate::telemetry::StreamGuard;

/// One event frame: `event: <name>` and a single `data:` line.
pub fn frame(name: &str, data: &impl Serialize) -> Bytes {
    // The wire types serialize without fail (string keys, no fallible impls).
    let json = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// One unnamed event frame: a single `data:` line.
pub fn data_frame(data: &impl Serialize) -> Bytes {
    // The wire types serialize without fail (string keys, no fallible impls).
    let json = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("data: {json}\n\n"))
}

/// A `text/event-stream` response whose frames are flushed as they are produced; it counts as an active stream until
/// its body is dropped (sent to its end, or its client gone).
pub fn response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures::StreamExt;
    let guard = StreamGuard::start();
    let body = Body::from_stream(frames.map(move |frame| {
        // The body owns the guard: dropping the body ends the count.
        let _ = &guard;
        Ok::<_, std::convert::Infallible>(frame)
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// The events of a running turn as a stream that ends when the turn has finished.
pub fn turn_events(receiver: TurnEvents) -> impl Stream<Item = TurnEvent> + Send + 'static {
    futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|event| (event, receiver)) },
    )
}
