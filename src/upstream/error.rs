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

    /// Context-overflow messages as backends send them.
    const OVERFLOW_MESSAGES: [&str; 11] = [
        // OpenAI, vLLM.
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4900 in the \
         messages, 100 in the completion). Please reduce the length of the messages or completion.",
        // vLLM.
        "The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that \
         `max_model_len` is no smaller than the number of text tokens.",
        "Input prompt (5000 tokens) is too long and exceeds limit of 4096",
        // llama.cpp server, now and before.
        "the request exceeds the available context size, try increasing it",
        "the request exceeds the available context size. try increasing the context size or enable context shift",
        // Ollama.
        "input length exceeds maximum context length",
        "prompt too long; exceeded max context length by 12 tokens",
        "the input length exceeds the context length",
        // LM Studio.
        "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded with context \
         length of only 4096 tokens, which is not enough. Try to load the model with a larger context length, or \
         provide a shorter input",
        "Context length exceeded",
        // Anthropic-style.
        "prompt is too long: 210000 tokens > 200000 maximum",
    ];

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
    fn every_known_wording_is_an_overflow_in_a_status_or_mid_stream() {
        for message in OVERFLOW_MESSAGES {
            assert!(status(400, message, None).is_context_overflow(), "{message}");
            assert!(status(500, message, Some("400")).is_context_overflow(), "{message}");
            assert!(mid_stream(message).is_context_overflow(), "{message}");
            assert!(mid_stream(&message.to_uppercase()).is_context_overflow(), "{message}");
        }
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
        let bad_answer = UpstreamError::BadAnswer { upstream: "local".into(), what: OVERFLOW_MESSAGES[0].into() };
        assert!(!bad_answer.is_context_overflow());
        assert!(!UpstreamError::Timeout { upstream: "local".into(), seconds: 60.0 }.is_context_overflow());
        let unreachable = UpstreamError::Unreachable { upstream: "local".into(), reason: "refused".into() };
        assert!(!unreachable.is_context_overflow());
        assert!(!UpstreamError::ModelNotFound("gpt-4o".into()).is_context_overflow());
    }
}
