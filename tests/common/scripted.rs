//! What a scripted mock backend keeps — the requests it received and the replies queued for the next ones — and the
//! body of a reply streamed as named Server-Sent Events.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Requests received (`Q`) and replies queued (`R`).
pub struct Script<Q, R> {
    received: Mutex<Vec<Q>>,
    replies: Mutex<VecDeque<R>>,
}

impl<Q, R> Default for Script<Q, R> {
    fn default() -> Self {
        Self { received: Mutex::new(Vec::new()), replies: Mutex::new(VecDeque::new()) }
    }
}

impl<Q: Clone + Debug, R> Script<Q, R> {
    /// Records a request and returns the reply queued for it, if any.
    pub fn answer(&self, request: Q) -> Option<R> {
        self.received.lock().unwrap().push(request);
        self.replies.lock().unwrap().pop_front()
    }

    /// Answers the next request (after the replies queued before) so.
    pub fn push(&self, reply: R) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// Every request received so far, emptying the record.
    pub fn take(&self) -> Vec<Q> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }

    /// The only request received since the last `take`.
    pub fn only(&self) -> Q {
        let received = self.take();
        assert_eq!(received.len(), 1, "expected one upstream request, got {received:?}");
        received[0].clone()
    }
}

/// A `text/event-stream` body of these events, each as `event: <its type>` and `data: <json>`.
pub fn named_events(events: &[Value]) -> Response {
    let text: String =
        events.iter().map(|event| format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap())).collect();
    ([("content-type", "text/event-stream")], Body::from(Bytes::from(text))).into_response()
}
