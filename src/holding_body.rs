//! A response body that keeps something of its request's — a concurrency slot, the mark that a request is in
//! progress — until its end has been read (before the client can see it end) or it is dropped (its client gone).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::Body as HttpBody;

/// `body`, holding `held` until its end.
pub struct HoldingBody<T> {
    body: Body,
    held: Option<T>,
}

impl<T> HoldingBody<T> {
    pub fn new(body: Body, held: T) -> Self {
        Self { body, held: Some(held) }
    }
}

impl<T: Unpin> HttpBody for HoldingBody<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || (frame.is_ready() && self.body.is_end_stream()) {
            self.held = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
