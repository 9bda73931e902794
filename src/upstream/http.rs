//! The HTTP side of one backend: its connection pool (a `reqwest::Client` with the configured timeouts), its key,
//! the client's request id passed on, the mapping of every transport failure and non-2xx answer to an
//! `UpstreamError` (every secret scrubbed from the backend's words first, see `scrub`), and the metrics of every
//! request.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::overflow::Overflow;
use super::scrub::Scrubber;
use super::wire::{ErrorDetail, ErrorEnvelope};
use super::{UpstreamError, UpstreamResult};
use crate::config::{Secret, UpstreamConfig};
use crate::telemetry;

/// The error type llama.cpp server gives a request longer than the context it was started with.
const LLAMA_CPP_OVERFLOW_TYPE: &str = "exceed_context_size_error";

/// Most bytes of an error body that is not JSON kept as the error's message.
const MAX_RAW_MESSAGE_BYTES: usize = 500;

/// The client a request is made for: its request id, and its own key when it brought one (`passthrough`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OnBehalf<'a> {
    pub request_id: Option<&'a str>,
    pub api_key: Option<&'a Secret>,
}

/// Raw bytes of a streamed answer, passed through as they arrive.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A backend reached over HTTP.
pub struct HttpBackend {
    pub name: String,
    base_url: String,
    api_key: Option<Secret>,
    timeout: Duration,
    connect_timeout: Duration,
    /// The largest answer body read, in bytes (`limits.max_upstream_reply_bytes`).
    pub max_reply_bytes: usize,
    client: reqwest::Client,
    /// The header the key goes in, when not `Authorization: Bearer …`.
    key_header: Option<&'static str>,
    /// Headers sent with every request.
    headers: Vec<(&'static str, &'static str)>,
    /// The secrets taken out of the backend's words.
    scrubber: Scrubber,
}

impl HttpBackend {
    pub fn new(config: &UpstreamConfig, max_reply_bytes: usize, scrubber: &Scrubber) -> anyhow::Result<Self> {
        let client =
            reqwest::Client::builder().connect_timeout(config.connect_timeout).timeout(config.timeout).build()?;
        telemetry::upstream_configured(&config.name);
        Ok(Self {
            name: config.name.clone(),
            base_url: config.base_url.as_deref().unwrap_or_default().trim_end_matches('/').to_string(),
            api_key: config.api_key.clone(),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            max_reply_bytes,
            client,
            key_header: None,
            headers: Vec::new(),
            scrubber: scrubber.clone(),
        })
    }

    /// Sends the key as the value of header `name` instead of `Authorization: Bearer …`.
    pub fn key_header(mut self, name: &'static str) -> Self {
        self.key_header = Some(name);
        self
    }

    /// Sends this header with every request.
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `POST {base_url}{path}` with a JSON body, for the client `on_behalf`; the 2xx answer, its body unread.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
        on_behalf: OnBehalf<'_>,
    ) -> UpstreamResult<reqwest::Response> {
        let body = serde_json::to_vec(body).map_err(|err| self.bad_request(&err))?;
        self.post_json(path, body, on_behalf).await
    }

    /// `POST {base_url}{path}` with a body that is JSON already, for the client `on_behalf`: its request id goes as
    /// `x-request-id`, its own key (`passthrough`) in place of the configured one; the 2xx answer, its body unread.
    pub async fn post_json(
        &self,
        path: &str,
        body: Vec<u8>,
        on_behalf: OnBehalf<'_>,
    ) -> UpstreamResult<reqwest::Response> {
        let request = self.client.post(format!("{}{path}", self.base_url));
        let mut request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(id) = on_behalf.request_id {
            request = request.header("x-request-id", id);
        }
        self.send(request, on_behalf.api_key).await
    }

    /// `GET {base_url}{path}`, waiting at most `timeout` (or the upstream's own, if shorter).
    pub async fn get(&self, path: &str, timeout: Duration) -> UpstreamResult<reqwest::Response> {
        let request = self.client.get(format!("{}{path}", self.base_url)).timeout(self.timeout.min(timeout));
        self.send(request, None).await
    }

    /// The JSON body of an answer to a request for `on_behalf`, read up to `max_reply_bytes` (a failure counts once
    /// more in the metrics, under its error class).
    pub async fn json<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
        on_behalf: OnBehalf<'_>,
    ) -> UpstreamResult<T> {
        let parsed = self.body(response).await.and_then(|body| {
            serde_json::from_slice(&body)
                .map_err(|err| self.bad_answer(&format!("a body that does not parse ({err})"), on_behalf))
        });
        if let Err(err) = &parsed {
            telemetry::upstream_outcome(&self.name, outcome(err));
        }
        parsed
    }

    /// A whole answer body, refused (`TooLarge`) as soon as it is known to pass `max_reply_bytes`.
    async fn body(&self, mut response: reqwest::Response) -> UpstreamResult<Vec<u8>> {
        if response.content_length().is_some_and(|length| length > self.max_reply_bytes as u64) {
            return Err(self.too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.transport_error(&err))? {
            if body.len() + chunk.len() > self.max_reply_bytes {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The body of an answer as a stream of bytes, read up to `max_reply_bytes`: past it, the stream ends with an
    /// error holding `TooLarge`, and the body is read no further.
    pub fn bytes(&self, response: reqwest::Response) -> ByteStream {
        let max = self.max_reply_bytes;
        let mut too_large = Some(self.too_large());
        let mut seen = 0usize;
        let chunks = response.bytes_stream().map_err(std::io::Error::other).scan((), move |(), chunk| {
            seen += chunk.as_ref().map_or(0, Bytes::len);
            let item = match chunk {
                Ok(_) if seen > max => too_large.take().map(|error| Err(std::io::Error::other(error))),
                other => Some(other),
            };
            futures::future::ready(item)
        });
        chunks.boxed()
    }

    pub fn too_large(&self) -> UpstreamError {
        UpstreamError::TooLarge { upstream: self.name.clone(), max_bytes: self.max_reply_bytes }
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        key: Option<&Secret>,
    ) -> UpstreamResult<reqwest::Response> {
        if let Some(Secret(key)) = key.or(self.api_key.as_ref()) {
            request = match self.key_header {
                Some(name) => request.header(name, key),
                None => request.bearer_auth(key),
            };
        }
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let sent = request.send().await;
        let seconds = started.elapsed().as_secs_f64();
        let answer = match sent {
            Ok(response) => self.check(response, key).await,
            Err(err) => Err(self.transport_error(&err)),
        };
        telemetry::upstream_request(&self.name, answer.as_ref().map_or_else(outcome, |_| "ok"), seconds);
        answer
    }

    /// A 2xx answer as it is; any other as the error its body describes (`key`: the one the request was made with).
    async fn check(&self, response: reqwest::Response, key: Option<&Secret>) -> UpstreamResult<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(|err| self.transport_error(&err))?;
        Err(self.status_error(status.as_u16(), &body, retry_after, key))
    }

    /// What scrubs the backend's words in an answer to a request for `on_behalf`: every configured secret, and the
    /// client's own key.
    pub fn scrubber(&self, on_behalf: OnBehalf<'_>) -> Scrubber {
        self.scrubber.with(on_behalf.api_key)
    }

    pub fn transport_error(&self, err: &reqwest::Error) -> UpstreamError {
        let upstream = self.name.clone();
        if err.is_timeout() {
            return UpstreamError::Timeout { upstream, seconds: self.timeout.as_secs_f64() };
        }
        let reason = if err.is_connect() {
            format!("could not connect within {}s or was refused", self.connect_timeout.as_secs_f64())
        } else {
            "the connection failed".to_string()
        };
        UpstreamError::Unreachable { upstream, reason }
    }

    /// A non-2xx answer with what its error body says, every secret scrubbed from it (`key`: the one the request was
    /// made with); what the status means to the client is the api's call.
    fn status_error(
        &self,
        status: u16,
        body: &[u8],
        retry_after: Option<Box<str>>,
        key: Option<&Secret>,
    ) -> UpstreamError {
        let scrubber = self.scrubber.with(key);
        let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
        let raw = || raw_message(&scrubber, body);
        let (message, param, code, numbers) = match envelope.error {
            Some(ErrorDetail::Object { message, param, code, kind, n_prompt_tokens, n_ctx }) => {
                let numbers = Overflow { prompt_tokens: n_prompt_tokens, window: n_ctx };
                (message.unwrap_or_else(raw), param.map(String::into_boxed_str), error_code(code, kind), numbers)
            }
            Some(ErrorDetail::Text(message)) => (message, None, None, Overflow::default()),
            None => (envelope.message.unwrap_or_else(raw), None, None, Overflow::default()),
        };
        let message = scrubber.scrub_owned(message);
        let param = param.map(|param| scrubber.scrub(&param).into());
        let code = code.map(|code| scrubber.scrub_owned(code));
        let retry_after = retry_after.map(|value| scrubber.scrub(&value).into());
        let overflow = Overflow::of_error(code.as_deref(), &message, numbers).map(Box::new);
        UpstreamError::Status { upstream: self.name.clone(), status, message, param, code, retry_after, overflow }
    }

    /// A request body that could not be serialised.
    pub fn bad_request(&self, err: &impl std::fmt::Display) -> UpstreamError {
        UpstreamError::BadAnswer { upstream: self.name.clone(), what: format!("no request it could be sent ({err})") }
    }

    /// An answer to a request for `on_behalf` that is not a valid one: `what` is wrong with it, scrubbed.
    pub fn bad_answer(&self, what: &str, on_behalf: OnBehalf<'_>) -> UpstreamError {
        let what = self.scrubber(on_behalf).scrub(what).into_owned();
        UpstreamError::BadAnswer { upstream: self.name.clone(), what }
    }
}

/// The start of an error body that is not JSON, as text, scrubbed before it is cut (a secret straddling the cut is
/// scrubbed whole).
fn raw_message(scrubber: &Scrubber, body: &[u8]) -> String {
    let read = &body[..body.len().min(MAX_RAW_MESSAGE_BYTES + scrubber.reach())];
    let mut text = scrubber.scrub_owned(String::from_utf8_lossy(read).into_owned());
    let mut cut = text.len().min(MAX_RAW_MESSAGE_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// The code of an error body: its `code` as a string (a number, as some backends send, in digits), or else, if
/// that is absent or a number, llama.cpp server's context-overflow `type`, which is the code other backends give.
fn error_code(code: Option<Value>, kind: Option<Value>) -> Option<String> {
    let named_code = code.as_ref().and_then(Value::as_str).map(str::to_string);
    let overflow = || kind.filter(|kind| kind == LLAMA_CPP_OVERFLOW_TYPE).map(|_| LLAMA_CPP_OVERFLOW_TYPE.to_string());
    named_code.or_else(overflow).or_else(|| code.map(|code| code.to_string()))
}

/// A `Retry-After` header worth passing on: seconds or an HTTP date, short and printable.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Box<str>> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let printable = value.bytes().all(|b| (b' '..=b'~').contains(&b));
    (printable && !value.is_empty() && value.len() <= 64).then(|| value.into())
}

/// The metrics' name for how a request failed.
fn outcome(err: &UpstreamError) -> &'static str {
    match err {
        UpstreamError::Status { status, .. } if *status < 500 => "status_4xx",
        UpstreamError::Status { .. } => "status_5xx",
        UpstreamError::Timeout { .. } => "timeout",
        UpstreamError::Unreachable { .. } => "unreachable",
        UpstreamError::BadAnswer { .. }
        | UpstreamError::MidStream { .. }
        | UpstreamError::ModelNotFound(_)
        | UpstreamError::TooLarge { .. } => "bad_answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DefaultUpstream;

    fn backend() -> HttpBackend {
        let config = UpstreamConfig::single("http://127.0.0.1:9/v1", &DefaultUpstream::default());
        HttpBackend::new(&config, 1024, &Scrubber::new(["sk-upstream-key"])).unwrap()
    }

    /// The message and code of the error an error body makes.
    fn message_and_code(body: &str) -> (String, Option<String>) {
        match backend().status_error(400, body.as_bytes(), None, None) {
            UpstreamError::Status { message, code, .. } => (message, code),
            other => panic!("not a status error: {other:?}"),
        }
    }

    #[test]
    fn llama_cpp_overflow_type_stands_in_for_its_numeric_code() {
        let body = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        let message = "the request exceeds the available context size, try increasing it";
        assert_eq!(message_and_code(body), (message.into(), Some("exceed_context_size_error".into())));
        assert!(backend().status_error(400, body.as_bytes(), None, None).is_context_overflow());
        let without_code = r#"{"error":{"message":"too long","type":"exceed_context_size_error"}}"#;
        assert_eq!(message_and_code(without_code), ("too long".into(), Some("exceed_context_size_error".into())));
    }

    #[test]
    fn a_key_in_an_error_body_is_scrubbed_even_where_the_body_is_cut() {
        // The key straddles the cut at 500 bytes: no piece of it is kept.
        let body = format!("{}Bearer sk-upstream-key and more", "x".repeat(490));
        assert_eq!(message_and_code(&body).0, format!("{}Bearer [re", "x".repeat(490)));
        let json =
            r#"{"error":{"message":"bad key sk-upstream-key","param":"sk-upstream-key","code":"sk-upstream-key"}}"#;
        match backend().status_error(400, json.as_bytes(), Some("sk-upstream-key".into()), None) {
            UpstreamError::Status { message, param, code, retry_after, .. } => {
                assert_eq!(message, "bad key [redacted]");
                assert_eq!((param.as_deref(), code.as_deref()), (Some("[redacted]"), Some("[redacted]")));
                assert_eq!(retry_after.as_deref(), Some("[redacted]"));
            }
            other => panic!("not a status error: {other:?}"),
        }
        let own = Secret("sk-client-own-key".into());
        let what = backend()
            .bad_answer("a body quoting sk-client-own-key", OnBehalf { request_id: None, api_key: Some(&own) });
        assert_eq!(what.to_string(), "Upstream 'default' returned an unexpected answer: a body quoting [redacted].");
    }

    #[test]
    fn codes_otherwise_read_as_before() {
        let numeric = r#"{"error":{"code":400,"message":"bad","type":"invalid_request_error"}}"#;
        assert_eq!(message_and_code(numeric), ("bad".into(), Some("400".into())));
        let named =
            r#"{"error":{"code":"context_length_exceeded","message":"long","type":"exceed_context_size_error"}}"#;
        assert_eq!(message_and_code(named), ("long".into(), Some("context_length_exceeded".into())));
        let openai = r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(message_and_code(openai), ("bad".into(), None));
        assert_eq!(message_and_code(r#"{"error":"model not found"}"#), ("model not found".into(), None));
        let odd_type = r#"{"error":{"code":"busy","message":"try later","type":{"class":1}}}"#;
        assert_eq!(message_and_code(odd_type), ("try later".into(), Some("busy".into())));
    }
}
