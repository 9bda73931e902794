//! The one error type of threadline and its OpenAI wire envelope `{"error":{message,type,param,code}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every failure a request can meet. Each variant knows its HTTP status and renders as OpenAI's error envelope.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or violates a constraint (400 `invalid_request_error`).
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String>, code: Option<&'static str> },
    /// The addressed object does not exist for this tenant (404).
    #[error("{message}")]
    NotFound { message: String, param: Option<String>, code: Option<&'static str> },
    /// The route or method does not exist (404/405).
    #[error("{message}")]
    NoRoute { status: StatusCode, message: String },
    /// The request body is larger than the configured limit (413).
    #[error("The request body is larger than this server accepts.")]
    PayloadTooLarge,
    /// The upstream answered with a client error (4xx); passed on with its status and message.
    #[error("{message}")]
    UpstreamRejected { status: StatusCode, message: String, param: Option<String>, code: Option<String> },
    /// The upstream failed, was unreachable (502) or timed out (504).
    #[error("{message}")]
    UpstreamFailed { status: StatusCode, message: String },
    /// The database is unreachable or timed out (503); the client may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); logged, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 `invalid_request_error` with a param and a code.
    pub fn invalid(message: impl Into<String>, param: impl Into<Option<String>>, code: Option<&'static str>) -> Self {
        Self::InvalidRequest { message: message.into(), param: param.into(), code }
    }

    /// A 400 for a field of a later feature or a value this server does not implement.
    pub fn unsupported(param: &str, what: &str) -> Self {
        Self::invalid(
            format!("{what} is not supported by this server."),
            Some(param.to_string()),
            Some("unsupported_parameter"),
        )
    }

    /// A 404 for an object addressed by id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound { message: message.into(), param: None, code: None }
    }

    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::NoRoute { status, .. } => *status,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamRejected { status, .. } => *status,
            Self::UpstreamFailed { status, .. } => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The client-facing fields of the error: `(type, param, code, message)`.
    pub fn parts(&self) -> (&'static str, Option<String>, Option<String>, String) {
        match self {
            Self::InvalidRequest { message, param, code } | Self::NotFound { message, param, code } => {
                ("invalid_request_error", param.clone(), code.map(str::to_string), message.clone())
            }
            Self::NoRoute { message, .. } => ("invalid_request_error", None, None, message.clone()),
            Self::PayloadTooLarge => {
                ("invalid_request_error", None, Some("request_too_large".into()), self.to_string())
            }
            Self::UpstreamRejected { message, param, code, .. } => {
                ("invalid_request_error", param.clone(), code.clone(), message.clone())
            }
            Self::UpstreamFailed { message, .. } => ("upstream_error", None, None, message.clone()),
            Self::Unavailable(_) => (
                "server_error",
                None,
                Some("storage_unavailable".into()),
                "The server's storage is temporarily unavailable. Please retry.".into(),
            ),
            Self::Internal(_) => {
                ("server_error", None, None, "The server had an error while processing your request.".into())
            }
        }
    }

    /// Logs a server-side failure (5xx) with its details, which the client does not see.
    pub fn log(&self) {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status_code();
        let (kind, param, code, message) = self.parts();
        let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
        (status, axum::Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    /// Lost connections, pool and statement timeouts, and database shutdowns are 503s (retry later); the rest 500.
    fn from(err: sqlx::Error) -> Self {
        let unavailable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // Postgres: connection exceptions, server shutdowns, too many connections, statement timeout.
                // SQLite: the database stayed busy or locked past the busy timeout.
                code.starts_with("08")
                    || ["57P01", "57P02", "57P03", "53300", "57014", "5", "6", "517"].contains(&code.as_ref())
            }),
            _ => false,
        };
        if unavailable {
            Self::Unavailable(err.to_string())
        } else {
            Self::Internal(err.to_string())
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(format!("stored data could not be decoded: {err}"))
    }
}

/// The result type of every fallible operation behind a handler.
pub type ApiResult<T> = Result<T, ApiError>;
