//! What can go wrong calling an upstream backend, in the upstream's own terms (the api layer picks HTTP statuses).

use super::overflow::Overflow;

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
    /// (the message may quote a credential, so it is not part of this error's text), and its `Retry-After` header.
    #[error("Upstream '{upstream}' answered HTTP {status}.")]
    Status {
        upstream: String,
        status: u16,
        message: String,
        param: Option<Box<str>>,
        code: Option<String>,
        retry_after: Option<Box<str>>,
        /// What the body says of a context overflow, if it is one.
        overflow: Option<Box<Overflow>>,
    },
    /// The backend answered something that is not a valid answer.
    #[error("Upstream '{upstream}' returned an unexpected answer: {what}.")]
    BadAnswer { upstream: String, what: String },
    /// The backend's answer grew past `limits.max_upstream_reply_bytes`.
    #[error("Upstream '{upstream}' sent a reply larger than {max_bytes} bytes.")]
    TooLarge { upstream: String, max_bytes: usize },
    /// A streamed answer broke off or reported an error after it had started.
    #[error("Upstream '{upstream}' failed mid-stream: {what}.")]
    MidStream { upstream: String, what: String },
}

/// The result of an upstream call.
pub type UpstreamResult<T> = Result<T, UpstreamError>;

impl UpstreamError {
    /// The backend's refusal of the request as longer than the model's context, if this is one: a status whose body
    /// says so, or a stream's error that does.
    pub fn overflow(&self) -> Option<Overflow> {
        match self {
            UpstreamError::Status { overflow, .. } => overflow.as_deref().copied(),
            UpstreamError::MidStream { what, .. } => Overflow::of_message(what),
            UpstreamError::ModelNotFound(_)
            | UpstreamError::Unreachable { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::BadAnswer { .. }
            | UpstreamError::TooLarge { .. } => None,
        }
    }

    /// A timeout of `upstream` after `waited`, stated in whole seconds (tenths below one).
    pub fn timeout(upstream: String, waited: std::time::Duration) -> Self {
        let seconds = waited.as_secs_f64();
        let seconds = if seconds >= 1.0 { seconds.floor() } else { (seconds * 10.0).floor() / 10.0 };
        UpstreamError::Timeout { upstream, seconds }
    }

    /// Whether the backend refused the request as longer than the model's context.
    pub fn is_context_overflow(&self) -> bool {
        self.overflow().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str, code: Option<&str>) -> UpstreamError {
        UpstreamError::Status {
            upstream: "local".into(),
            status,
            message: message.into(),
            param: None,
            code: code.map(str::to_string),
            retry_after: None,
            overflow: Overflow::of_error(code, message, Overflow::default()).map(Box::new),
        }
    }

    fn mid_stream(what: &str) -> UpstreamError {
        UpstreamError::MidStream { upstream: "local".into(), what: what.into() }
    }

    #[test]
    fn an_overflow_wording_is_an_overflow_in_a_status_or_mid_stream_with_its_numbers() {
        let message = "request (833 tokens) exceeds the available context size (512 tokens), try increasing it";
        let numbers = Some(Overflow { prompt_tokens: Some(833), window: Some(512) });
        assert_eq!(status(400, message, None).overflow(), numbers);
        assert_eq!(status(500, message, Some("400")).overflow(), numbers);
        assert_eq!(mid_stream(message).overflow(), numbers);
    }

    #[test]
    fn the_overflow_codes_are_an_overflow_whatever_the_status_and_message() {
        assert!(status(400, "Bad request", Some("context_length_exceeded")).is_context_overflow());
        assert!(status(500, "", Some("exceed_context_size_error")).is_context_overflow());
        assert!(!status(400, "Bad request", Some("400")).is_context_overflow());
        assert!(!status(400, "Bad request", Some("invalid_request_error")).is_context_overflow());
    }

    #[test]
    fn other_failures_are_not_an_overflow() {
        let too_many_output_tokens =
            "max_tokens is too large: 5000. This model supports at most 4096 completion tokens, whereas you provided \
             5000.";
        assert!(!status(400, too_many_output_tokens, None).is_context_overflow());
        assert!(!status(401, "Incorrect API key provided", Some("invalid_api_key")).is_context_overflow());
        assert!(!mid_stream("a chunk that does not parse (EOF while parsing a value)").is_context_overflow());
        let overflow = "This model's maximum context length is 4096 tokens.";
        let bad_answer = UpstreamError::BadAnswer { upstream: "local".into(), what: overflow.into() };
        assert!(!bad_answer.is_context_overflow());
        assert!(!UpstreamError::Timeout { upstream: "local".into(), seconds: 60.0 }.is_context_overflow());
        let unreachable = UpstreamError::Unreachable { upstream: "local".into(), reason: "refused".into() };
        assert!(!unreachable.is_context_overflow());
        assert!(!UpstreamError::ModelNotFound("gpt-4o".into()).is_context_overflow());
    }
}
