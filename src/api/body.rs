//! The body deadline: a caller's request body is read whole — within `limits.body_read_timeout` of its headers, and
//! no larger than `limits.max_body_bytes` — before the per-tenant limits count the request. A body still arriving at
//! the deadline gets a 408 `request_timeout`, and its connection is closed; a body that trickles in never holds one
//! of its tenant's places among the requests in progress, so slow clients cannot lock a tenant (or, without keys,
//! everyone) out. All bodies held at once, arriving or waiting for their answers, take at most
//! `limits.max_buffered_body_bytes`: one that would pass it waits for room, within its deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use bytes::BytesMut;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::config::Limits;

/// How a request's body must arrive.
pub struct BodyRules {
    /// How long it may take, from the request's headers.
    timeout: Duration,
    /// How large it may be.
    max_bytes: usize,
    /// The bytes all bodies held at once may take, one permit a byte.
    room: Arc<Semaphore>,
}

impl BodyRules {
    pub fn new(limits: &Limits) -> Self {
        let room = Arc::new(Semaphore::new(limits.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS)));
        Self { timeout: limits.body_read_timeout, max_bytes: limits.max_body_bytes, room }
    }

    /// The body, read whole within the size limit, and the room it takes (held while the request is answered).
    async fn read(&self, body: Body) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BoxError> {
        let mut body = Limited::new(body, self.max_bytes);
        let (mut bytes, mut held) = (BytesMut::new(), None::<OwnedSemaphorePermit>);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            let size = u32::try_from(data.len())?;
            let taken = self.room.clone().acquire_many_owned(size).await?;
            match &mut held {
                Some(held) => held.merge(taken),
                None => held = Some(taken),
            }
            bytes.extend_from_slice(&data);
        }
        Ok((bytes.freeze(), held))
    }
}

/// Middleware: reads the request's body whole and passes the request on with it; answers 408 to a body late past
/// the deadline, 413 to one too large (announced or sent), 400 to one that cannot be read.
pub async fn read_whole(State(rules): State<Arc<BodyRules>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let announced = parts.headers.get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > rules.max_bytes as u64) {
        return ApiError::payload_too_large().into_response();
    }
    let (bytes, _room) = match tokio::time::timeout(rules.timeout, rules.read(body)).await {
        Ok(Ok(read)) => read,
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return ApiError::payload_too_large().into_response();
        }
        Ok(Err(err)) => {
            return ApiError::invalid(format!("The request body could not be read: {err}.")).into_response()
        }
        Err(_) => return late(rules.timeout),
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The 408 of a body late past `timeout`. The rest of it is not waited for, so its connection carries no other
/// request.
fn late(timeout: Duration) -> Response {
    let message = format!(
        "The request body did not arrive within {}s. Please send it whole, without pauses, and try again.",
        timeout.as_secs_f64()
    );
    let mut response = ApiError::status(StatusCode::REQUEST_TIMEOUT, message).code("request_timeout").into_response();
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
