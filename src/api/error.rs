//! Errors as clients see them: an HTTP status and OpenAI's envelope `{"error":{message,type,param,code}}`.
//!
//! Which error type to use where:
//! - `store::StoreError` inside `store/`, `upstream::UpstreamError` inside `upstream/`, `engine::EngineError` inside
//!   `engine/` (it wraps the other two). None of them knows HTTP.
//! - `ApiError` (this module) only inside `api/`: request validation builds one directly, and the `From` impls
//!   below are the one place where the lower layers' errors become statuses and codes.
//! - `anyhow` only at start-up (`main`, configuration, opening the store) and in background tasks.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::{EngineError, Excess};
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// The body of every error answer: `{"error":{message,type,param,code}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// The `error` object of the envelope.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    #[schema(required)]
    pub param: Option<String>,
    #[schema(required)]
    pub code: Option<String>,
}

/// The envelope's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The client's request is at fault (4xx).
    InvalidRequestError,
    /// The upstream backend failed (502/504).
    UpstreamError,
    /// This server failed, or gave up waiting (500/503/504).
    ServerError,
    /// Too many requests (429), as OpenAI's request rate limits name it.
    Requests,
}

/// A failed request: the status, the body the client sees, and for server faults the detail that is only logged.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    detail: Option<String>,
    /// A `Retry-After` header for the answer (an upstream's 429 passes its own on).
    retry_after: Option<Box<HeaderValue>>,
}

/// The result of every fallible step of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody { message: message.into(), kind, param: None, code: None },
            detail: None,
            retry_after: None,
        }
    }

    /// Sets the `param` the error is about.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.body.param = Some(param.into());
        self
    }

    /// Sets the error `code`.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.body.code = Some(code.into());
        self
    }

    /// An `invalid_request_error` with this status.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, ErrorKind::InvalidRequestError, message)
    }

    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidRequestError, message)
    }

    /// A 400 for a field of a later feature or a value this server does not implement.
    pub fn unsupported(param: &str, what: &str) -> Self {
        Self::invalid(format!("{what} is not supported by this server.")).param(param).code("unsupported_parameter")
    }

    /// A 404 for an object addressed by id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::InvalidRequestError, message)
    }

    /// A 404 or 405 for a route or method that does not exist.
    pub fn no_route(method_exists: bool, message: String) -> Self {
        let status = if method_exists { StatusCode::METHOD_NOT_ALLOWED } else { StatusCode::NOT_FOUND };
        Self::new(status, ErrorKind::InvalidRequestError, message)
    }

    /// A 413 for a body over the configured limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidRequestError,
            "The request body is larger than this server accepts.",
        )
        .code("request_too_large")
    }

    /// A 429 `rate_limit_exceeded` (the caller adds `retry-after`).
    pub fn rate_limited(message: String) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorKind::Requests, message).code("rate_limit_exceeded")
    }

    /// A 504 `timeout`: the answer did not start within `limits.request_timeout`.
    pub fn timeout(after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::ServerError,
            format!(
                "The server did not answer within its request timeout of {}s. A response it started is still \
                 completed and stored.",
                after.as_secs_f64()
            ),
        )
        .code("timeout")
    }

    /// A 500: a bug or an unexpected failure, logged with `detail` and answered with a generic message.
    pub fn internal(detail: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServerError,
            "The server had an error while processing your request.",
        );
        error.detail = Some(detail.into());
        error
    }

    /// A 503: the storage is unreachable; the client may retry.
    fn unavailable(detail: String) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::ServerError,
            "The server's storage is temporarily unavailable. Please retry.",
        )
        .code("storage_unavailable");
        error.detail = Some(detail);
        error
    }

    /// Adds the headers that go with this error (`Retry-After`) to its answer.
    pub fn add_headers(&self, response: &mut Response) {
        if let Some(value) = &self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::clone(value));
        }
    }

    /// Logs a server-side failure (5xx) with its detail, which the client does not see.
    pub fn log(&self) {
        if self.status.is_server_error() {
            let detail = self.detail.as_deref().unwrap_or(&self.body.message);
            tracing::error!(status = self.status.as_u16(), error = %detail, "request failed");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status, Json(ErrorEnvelope { error: self.body.clone() })).into_response();
        self.add_headers(&mut response);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::unavailable(err.to_string()),
            StoreError::DuplicateItem => {
                Self::invalid("Item already in conversation").param("items").code("item_already_in_conversation")
            }
            StoreError::ConversationNotFound(id) => Self::from(EngineError::ConversationNotFound(id)),
            StoreError::CursorNotFound(after) => {
                Self::not_found(format!("No item found with id '{after}'.")).param("after")
            }
            StoreError::ChainTooDeep(max) => Self::invalid(format!(
                "The chain of previous responses is longer than this server's limit of {max} turns."
            ))
            .param("previous_response_id")
            .code("chain_too_deep"),
            StoreError::Corrupt(_) | StoreError::Database(_) => Self::internal(err.to_string()),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(err: UpstreamError) -> Self {
        if let Some(overflow) = err.overflow() {
            return EngineError::ContextLengthExceeded(Excess::Backend(overflow)).into();
        }
        let message = err.to_string();
        match err {
            UpstreamError::ModelNotFound(_) => Self::not_found(message).code("model_not_found"),
            UpstreamError::Status { upstream, status, message, param, code, retry_after, .. } => {
                let mut error = upstream_status(&upstream, status, message, param, code);
                if error.status == StatusCode::TOO_MANY_REQUESTS {
                    error.retry_after = retry_after.and_then(|value| HeaderValue::from_str(&value).ok()).map(Box::new);
                }
                error
            }
            UpstreamError::Timeout { .. } => Self::new(StatusCode::GATEWAY_TIMEOUT, ErrorKind::UpstreamError, message),
            UpstreamError::Unreachable { .. }
            | UpstreamError::BadAnswer { .. }
            | UpstreamError::MidStream { .. }
            | UpstreamError::TooLarge { .. } => Self::new(StatusCode::BAD_GATEWAY, ErrorKind::UpstreamError, message),
        }
    }
}

/// A backend's error status as the client sees it: the backend refusing threadline's own key is a 502 (never its
/// message, which may quote the key); refusing the request (another client error) passes on with its status, message,
/// param and code; anything else is a 502 naming the upstream.
fn upstream_status(
    upstream: &str,
    status: u16,
    message: String,
    param: Option<Box<str>>,
    code: Option<String>,
) -> ApiError {
    match StatusCode::from_u16(status) {
        Ok(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamError,
            format!("Upstream '{upstream}' refused threadline's credentials (HTTP {status})."),
        ),
        Ok(client_error) if client_error.is_client_error() => {
            let mut error = ApiError::new(client_error, ErrorKind::InvalidRequestError, message);
            error.body.param = param.map(String::from);
            error.body.code = code;
            error
        }
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamError,
            format!("Upstream '{upstream}' failed (HTTP {status}): {message}"),
        ),
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match err {
            EngineError::PreviousResponseNotFound(_) => {
                Self::invalid(message).param("previous_response_id").code("previous_response_not_found")
            }
            EngineError::PreviousResponseFailed(_) => {
                Self::invalid(message).param("previous_response_id").code("previous_response_failed")
            }
            EngineError::PreviousResponseInProgress(_) => {
                Self::invalid(message).param("previous_response_id").code("previous_response_in_progress")
            }
            EngineError::NotBackground(_) => Self::invalid(message),
            EngineError::ResponseNotFound(_) | EngineError::ConversationNotFound(_) | EngineError::ItemNotFound(_) => {
                Self::not_found(message)
            }
            EngineError::ItemReferenceNotFound { param, .. } => Self::invalid(message).param(param),
            EngineError::OutputWithoutCall(_) | EngineError::CallWithoutOutput(_) => {
                Self::invalid(message).param("input").code("invalid_value")
            }
            EngineError::ContextLengthExceeded(_) => {
                Self::invalid(message).param("input").code("context_length_exceeded")
            }
            EngineError::InvalidCompaction(_) => {
                Self::invalid(message).param("input").code("invalid_encrypted_content")
            }
            EngineError::TurnAborted(_) | EngineError::Context(_) => Self::internal(message),
            EngineError::Store(err) => err.into(),
            EngineError::Upstream(err) => err.into(),
        }
    }
}
