//! What can go wrong calling an upstream backend, in the upstream's own terms (the api layer picks HTTP statuses).

/// A failed upstream call. Messages name the upstream, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No configured upstream serves this model.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// The backend could not be reached or the connection failed before an answer.
    #[error("Upstream '{upstream}' is unreachable: {reason}.")]
    Unreachable { upstream: String, reason: String },
    /// The backend did not answer in time.
    #[error("Upstream '{upstream}' did not answer within {seconds}s.")]
    Timeout { upstream: String, seconds: f64 },
    /// The backend answered with an error status: the status, and the message, param and code of its error body
    /// (the message may quote a credential, so it is not part of this error's text).
    #[error("Upstream '{upstream}' answered HTTP {status}.")]
    Status { upstream: String, status: u16, message: String, param: Option<String>, code: Option<String> },
    /// The backend answered something that is not a valid answer.
    #[error("Upstream '{upstream}' returned an unexpected answer: {what}.")]
    BadAnswer { upstream: String, what: String },
    /// A streamed answer broke off or reported an error after it had started.
    #[error("Upstream '{upstream}' failed mid-stream: {what}.")]
    MidStream { upstream: String, what: String },
}

/// The result of an upstream call.
pub type UpstreamResult<T> = Result<T, UpstreamError>;
