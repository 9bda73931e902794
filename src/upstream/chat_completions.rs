//! The `chat_completions` upstream: any OpenAI-compatible `POST {base_url}/chat/completions` backend.
//! Each upstream keeps its own connection pool (a `reqwest::Client` with its connect timeout).

use std::time::Duration;

use std::collections::VecDeque;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::StatusCode;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use super::sse::SseDecoder;
use super::{
    ByteStream, ChatFunction, ChatRequest, ChatToolCall, Completion, Delta, DeltaStream, FinishReason, TokenCounts,
    Upstream,
};
use crate::config::{Secret, UpstreamConfig};
use crate::error::{ApiError, ApiResult};
use crate::model::{TextFormat, ToolChoice};

/// How long listing models may take: `/v1/models` answers from configured names instead of waiting longer.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

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
        let timeout = Duration::from_secs_f64(config.timeout_secs);
        let client = reqwest::Client::builder().connect_timeout(connect_timeout).timeout(timeout).build()?;
        let base_url = config.base_url.as_deref().unwrap_or_default().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base_url).map_err(|e| anyhow::anyhow!("upstream '{}': bad base_url: {e}", config.name))?;
        Ok(Self {
            name: config.name.clone(),
            base_url,
            api_key: config.resolved_api_key()?,
            timeout,
            connect_timeout,
            client,
        })
    }

    /// Sends a request and returns a 2xx answer (its body unread), mapping every failure.
    async fn send(&self, mut request: reqwest::RequestBuilder) -> ApiResult<reqwest::Response> {
        if let Some(Secret(key)) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| self.transport_error(err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|err| self.transport_error(err))?;
        Err(self.status_error(status, &body))
    }

    /// Sends a request and returns the JSON body of its 2xx answer.
    async fn send_json(&self, request: reqwest::RequestBuilder) -> ApiResult<Value> {
        let body = self.send(request).await?.bytes().await.map_err(|err| self.transport_error(err))?;
        serde_json::from_slice(&body).map_err(|_| self.bad_answer("a body that is not JSON"))
    }

    fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    fn timed_out(&self) -> ApiError {
        ApiError::UpstreamFailed {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("Upstream '{}' did not answer within {}s.", self.name, self.timeout.as_secs_f64()),
        }
    }

    fn transport_error(&self, err: reqwest::Error) -> ApiError {
        if err.is_timeout() {
            return self.timed_out();
        }
        let reason = if err.is_connect() {
            format!("could not connect within {}s or was refused", self.connect_timeout.as_secs_f64())
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
    let s = &request.parameters;
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
    if !s.tools.is_empty() {
        let tools: Vec<Value> = s
            .tools
            .iter()
            .map(|tool| {
                let mut function = json!({"name": tool.name});
                for (key, value) in [
                    ("description", tool.description.clone().map(Value::from)),
                    ("parameters", tool.parameters.clone()),
                    ("strict", tool.strict.map(Value::from)),
                ] {
                    if let Some(value) = value {
                        function[key] = value;
                    }
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), json!(tools));
        if let Some(parallel) = s.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    if let Some(choice) = &s.tool_choice {
        let choice = match choice {
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
            other => other.to_value(),
        };
        body.insert("tool_choice".into(), choice);
    }
    match &s.text_format {
        TextFormat::Text => {}
        TextFormat::JsonObject => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        TextFormat::JsonSchema { name, schema, description, strict } => {
            let mut json_schema = json!({"name": name, "schema": schema});
            if let Some(description) = description {
                json_schema["description"] = json!(description);
            }
            if let Some(strict) = strict {
                json_schema["strict"] = json!(strict);
            }
            body.insert("response_format".into(), json!({"type": "json_schema", "json_schema": json_schema}));
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
        let answer = self.send_json(self.client.post(self.chat_url()).json(&request_body(request))).await?;
        let choice = answer.pointer("/choices/0").ok_or_else(|| self.bad_answer("no choices"))?;
        let message = choice.get("message").ok_or_else(|| self.bad_answer("no message"))?;
        let tool_calls = message.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(Completion {
            text: message.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
            reasoning: reasoning_text(message).map(str::to_string),
            tool_calls: tool_calls
                .iter()
                .map(|call| {
                    let field = |path: &str| call.pointer(path).and_then(Value::as_str).unwrap_or_default().to_string();
                    ChatToolCall {
                        id: field("/id"),
                        kind: "function",
                        function: ChatFunction {
                            name: field("/function/name"),
                            arguments: field("/function/arguments"),
                        },
                    }
                })
                .collect(),
            finish_reason: finish_reason(choice).unwrap_or(FinishReason::Stop),
            usage: usage(&answer),
        })
    }

    async fn complete_stream(&self, request: &ChatRequest) -> ApiResult<DeltaStream> {
        let mut body = request_body(request);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let response = self.send(self.client.post(self.chat_url()).json(&body)).await?;
        let state = ChunkReader {
            name: self.name.clone(),
            bytes: response.bytes_stream().boxed(),
            decoder: SseDecoder::default(),
            pending: VecDeque::new(),
            finished: false,
            ended: false,
        };
        Ok(stream::unfold(state, ChunkReader::next).boxed())
    }

    async fn chat(&self, body: &Value) -> ApiResult<Value> {
        self.send_json(self.client.post(self.chat_url()).json(body)).await
    }

    async fn chat_stream(&self, body: &Value) -> ApiResult<ByteStream> {
        let response = self.send(self.client.post(self.chat_url()).json(body)).await?;
        Ok(response.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn models(&self) -> ApiResult<Vec<Value>> {
        let list = self.client.get(format!("{}/models", self.base_url)).timeout(self.timeout.min(LIST_TIMEOUT));
        let answer = self.send_json(list).await?;
        let data = answer.get("data").and_then(Value::as_array).ok_or_else(|| self.bad_answer("no model list"))?;
        Ok(data.iter().filter(|m| m.get("id").and_then(Value::as_str).is_some()).cloned().collect())
    }
}

/// The reasoning text of a message or delta (`reasoning_content`, or `reasoning` as some backends name it).
fn reasoning_text(message: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"].iter().find_map(|key| message.get(*key)?.as_str()).filter(|r| !r.is_empty())
}

fn finish_reason(choice: &Value) -> Option<FinishReason> {
    match choice.get("finish_reason")?.as_str()? {
        "length" => Some(FinishReason::Length),
        "content_filter" => Some(FinishReason::ContentFilter),
        _ => Some(FinishReason::Stop),
    }
}

fn usage(answer: &Value) -> Option<TokenCounts> {
    let count = |path: &str| answer.pointer(path).and_then(Value::as_u64).unwrap_or_default();
    answer.pointer("/usage/prompt_tokens")?.as_u64()?;
    Some(TokenCounts {
        input: count("/usage/prompt_tokens"),
        output: count("/usage/completion_tokens"),
        cached: count("/usage/prompt_tokens_details/cached_tokens"),
        reasoning: count("/usage/completion_tokens_details/reasoning_tokens"),
    })
}

/// Reads a streamed answer's SSE chunks into deltas, one at a time.
struct ChunkReader {
    name: String,
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    pending: VecDeque<ApiResult<Delta>>,
    /// A `finish_reason` was seen.
    finished: bool,
    /// Nothing more will be read.
    ended: bool,
}

impl ChunkReader {
    async fn next(mut self) -> Option<(ApiResult<Delta>, Self)> {
        loop {
            if let Some(delta) = self.pending.pop_front() {
                return Some((delta, self));
            }
            if self.ended {
                return None;
            }
            match self.bytes.next().await {
                Some(Ok(chunk)) => {
                    for event in self.decoder.push(&chunk) {
                        self.read_event(&event.data);
                        if self.ended {
                            break;
                        }
                    }
                }
                Some(Err(err)) => self.fail(&format!("the stream broke off ({})", err.without_url())),
                None if self.finished => self.ended = true,
                None => self.fail("the stream ended before the completion finished"),
            }
        }
    }

    fn fail(&mut self, what: &str) {
        let message = format!("Upstream '{}' failed mid-stream: {what}.", self.name);
        self.pending.push_back(Err(ApiError::UpstreamFailed { status: StatusCode::BAD_GATEWAY, message }));
        self.ended = true;
    }

    fn read_event(&mut self, data: &str) {
        if data == "[DONE]" {
            self.ended = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return self.fail("a chunk that is not JSON");
        };
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("an error");
            return self.fail(message);
        }
        if let Some(choice) = chunk.pointer("/choices/0") {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(text) = reasoning_text(delta) {
                self.pending.push_back(Ok(Delta::Reasoning(text.to_string())));
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                self.pending.push_back(Ok(Delta::Text(text.to_string())));
            }
            for (position, call) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate()
            {
                let field = |path: &str| call.pointer(path).and_then(Value::as_str).map(str::to_string);
                self.pending.push_back(Ok(Delta::ToolCall {
                    index: call.get("index").and_then(Value::as_u64).map_or(position, |i| i as usize),
                    id: field("/id").filter(|id| !id.is_empty()),
                    name: field("/function/name").filter(|name| !name.is_empty()),
                    arguments: field("/function/arguments").unwrap_or_default(),
                }));
            }
            if let Some(reason) = finish_reason(choice) {
                self.finished = true;
                self.pending.push_back(Ok(Delta::Finish(reason)));
            }
        }
        if let Some(counts) = usage(&chunk) {
            self.pending.push_back(Ok(Delta::Usage(counts)));
        }
    }
}
