//! The `chat_completions` upstream: any OpenAI-compatible `POST {base_url}/chat/completions` backend.
//! Each upstream keeps its own connection pool (a `reqwest::Client` with its connect timeout).

use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::{estimate_tokens, ChatRequest, Completion, FinishReason, TokenCounts, Upstream};
use crate::config::{Secret, UpstreamConfig};
use crate::error::{ApiError, ApiResult};

/// An OpenAI-compatible backend reached over HTTP.
pub struct ChatCompletions {
    name: String,
    base_url: String,
    api_key: Option<Secret>,
    timeout: Duration,
    connect_timeout: Duration,
    client: reqwest::Client,
}

impl ChatCompletions {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Self> {
        let connect_timeout = Duration::from_secs_f64(config.connect_timeout_secs);
        let client = reqwest::Client::builder().connect_timeout(connect_timeout).build()?;
        let base_url = config.base_url.as_deref().unwrap_or_default().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base_url).map_err(|e| anyhow::anyhow!("upstream '{}': bad base_url: {e}", config.name))?;
        Ok(Self {
            name: config.name.clone(),
            base_url,
            api_key: config.resolved_api_key()?,
            timeout: Duration::from_secs_f64(config.timeout_secs),
            connect_timeout,
            client,
        })
    }

    /// Sends a request to `{base_url}{path}` and returns the JSON body of a 2xx answer, mapping every failure.
    async fn send(&self, request: reqwest::RequestBuilder) -> ApiResult<Value> {
        let mut request = request.timeout(self.timeout);
        if let Some(Secret(key)) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| self.transport_error(err))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| self.transport_error(err))?;
        if !status.is_success() {
            return Err(self.status_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|_| ApiError::UpstreamFailed {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream '{}' returned a body that is not JSON.", self.name),
        })
    }

    fn timed_out(&self) -> ApiError {
        ApiError::UpstreamFailed {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("Upstream '{}' did not answer within {} seconds.", self.name, self.timeout.as_secs_f64()),
        }
    }

    fn transport_error(&self, err: reqwest::Error) -> ApiError {
        if err.is_timeout() {
            return self.timed_out();
        }
        let reason = if err.is_connect() {
            format!("could not connect within {} seconds or was refused", self.connect_timeout.as_secs_f64())
        } else {
            "the connection failed".to_string()
        };
        ApiError::UpstreamFailed {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream '{}' is unreachable: {reason}.", self.name),
        }
    }

    /// Maps a non-2xx answer: client errors pass on with the backend's message, the rest become 502.
    fn status_error(&self, status: StatusCode, body: &[u8]) -> ApiError {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = parsed.get("error").unwrap_or(&parsed);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned());
        let field = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
        match status.as_u16() {
            401 | 403 => ApiError::UpstreamFailed {
                status: StatusCode::BAD_GATEWAY,
                message: format!(
                    "Upstream '{}' refused threadline's credentials (HTTP {}).",
                    self.name,
                    status.as_u16()
                ),
            },
            400..=499 => ApiError::UpstreamRejected { status, message, param: field("param"), code: field("code") },
            _ => ApiError::UpstreamFailed {
                status: StatusCode::BAD_GATEWAY,
                message: format!("Upstream '{}' failed (HTTP {}): {message}", self.name, status.as_u16()),
            },
        }
    }

    fn bad_answer(&self, what: &str) -> ApiError {
        ApiError::UpstreamFailed {
            status: StatusCode::BAD_GATEWAY,
            message: format!("Upstream '{}' returned an unexpected answer: {what}.", self.name),
        }
    }
}

/// The Chat Completions request body for a completion request.
fn request_body(request: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), json!(request.messages));
    let s = &request.sampling;
    let optional = [
        ("temperature", s.temperature.map(Value::from)),
        ("top_p", s.top_p.map(Value::from)),
        ("max_tokens", s.max_output_tokens.map(Value::from)),
        ("presence_penalty", s.presence_penalty.map(Value::from)),
        ("frequency_penalty", s.frequency_penalty.map(Value::from)),
        ("reasoning_effort", s.reasoning_effort.clone().map(Value::from)),
        ("verbosity", s.verbosity.clone().map(Value::from)),
        ("user", s.user.clone().map(Value::from)),
        ("safety_identifier", s.safety_identifier.clone().map(Value::from)),
        ("prompt_cache_key", s.prompt_cache_key.clone().map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    }
    Value::Object(body)
}

#[async_trait]
impl Upstream for ChatCompletions {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> ApiResult<Completion> {
        let url = format!("{}/chat/completions", self.base_url);
        let answer = self.send(self.client.post(url).json(&request_body(request))).await?;
        let choice = answer.pointer("/choices/0").ok_or_else(|| self.bad_answer("no choices"))?;
        let message = choice.get("message").ok_or_else(|| self.bad_answer("no message"))?;
        let text = message.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|key| message.get(*key).and_then(Value::as_str))
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        };
        let count = |path: &str| answer.pointer(path).and_then(Value::as_u64);
        let usage = match count("/usage/prompt_tokens") {
            Some(input) => TokenCounts {
                input,
                output: count("/usage/completion_tokens").unwrap_or_default(),
                cached: count("/usage/prompt_tokens_details/cached_tokens").unwrap_or_default(),
                reasoning: count("/usage/completion_tokens_details/reasoning_tokens").unwrap_or_default(),
            },
            None => TokenCounts {
                input: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
                output: estimate_tokens(&text) + reasoning.as_deref().map(estimate_tokens).unwrap_or_default(),
                ..TokenCounts::default()
            },
        };
        let model = answer.get("model").and_then(Value::as_str).map(str::to_string);
        Ok(Completion { model, text, reasoning, finish_reason, usage })
    }

    async fn chat(&self, body: &Value) -> ApiResult<Value> {
        let url = format!("{}/chat/completions", self.base_url);
        self.send(self.client.post(url).json(body)).await
    }

    async fn models(&self) -> ApiResult<Vec<Value>> {
        let answer = self.send(self.client.get(format!("{}/models", self.base_url))).await?;
        let data = answer.get("data").and_then(Value::as_array).ok_or_else(|| self.bad_answer("no model list"))?;
        Ok(data.iter().filter(|m| m.get("id").and_then(Value::as_str).is_some()).cloned().collect())
    }
}
