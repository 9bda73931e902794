//! `x-request-id`: every request gets one — the client's when it is sane (at most 200 visible ASCII characters),
//! else a new UUIDv7 in hex — which its tracing span carries, the upstream request receives, and every response
//! returns.

use axum::extract::{FromRequestParts, Request};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use crate::api::error::ApiError;

/// The header carrying the id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept.
const MAX_LEN: usize = 200;

/// The id of the request being served (set by `assign`, read as an extractor).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Middleware: gives the request its id (as an extension and in its `x-request-id` header) and returns it on the
/// response, whatever answered it.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let given = request.headers().get(&X_REQUEST_ID).and_then(|value| value.to_str().ok()).filter(|id| is_sane(id));
    let id = given.map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_string);
    // A sane id or a hex string: always a valid header value.
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        request.headers_mut().insert(&X_REQUEST_ID, value.clone());
    }
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(&X_REQUEST_ID, value);
    }
    response
}

fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The tracing span of a request: its method, URI and id, carried by every log line of the request and of the turn
/// task it starts.
pub fn span(request: &Request) -> Span {
    let id = request.extensions().get::<RequestId>().map_or("", |id| id.0.as_str());
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        request_id = %id,
    )
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<RequestId>().cloned().ok_or_else(|| ApiError::internal("no request id was assigned"))
    }
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn sane_ids_are_short_visible_ascii() {
        assert!(is_sane("req-1_ABC.def:42"));
        assert!(is_sane(&"a".repeat(200)));
        assert!(!is_sane(&"a".repeat(201)));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("tab\there"));
        assert!(!is_sane("café"));
    }
}
