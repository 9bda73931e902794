//! The `chat_completions` upstream: any OpenAI-compatible `POST {base_url}/chat/completions` backend, spoken in the
//! typed wire of `wire.rs`; also the raw endpoint the stateless `/v1/chat/completions` forwards to.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::http::{ByteStream, HttpBackend, OnBehalf};
use super::scrub::Scrubber;
use super::stream::deltas;
use super::wire::{self, ChatCompletion, ModelList, RequestBody, StreamOptions, WireUsage};
use super::{ChatFunction, ChatMessage, Context, FormatMismatch, Runs, Thought, UpstreamResult};
use super::{ChatRequest, ChatToolCall, Completion, DeltaStream, FinishReason, ModelInfo, TokenCounts, Upstream};
use crate::config::UpstreamConfig;
use crate::model::ChatTool;

/// How long listing models may take: `/v1/models` answers from configured names instead of waiting longer.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// An OpenAI-compatible backend reached over HTTP.
pub struct ChatCompletions {
    http: HttpBackend,
}

impl ChatCompletions {
    pub fn new(config: &UpstreamConfig, max_reply_bytes: usize, scrubber: &Scrubber) -> anyhow::Result<Self> {
        Ok(Self { http: HttpBackend::new(config, max_reply_bytes, scrubber)? })
    }

    /// The JSON body of a completion request.
    fn request_json(&self, request: &ChatRequest, stream: bool) -> UpstreamResult<Vec<u8>> {
        let Context::Chat(messages) = &request.messages else {
            return Err(self.http.bad_request(&FormatMismatch));
        };
        serde_json::to_vec(&request_body(messages, request, stream)).map_err(|err| self.http.bad_request(&err))
    }

    /// Forwards a Chat Completions request body unchanged (with the client's request id) and returns the backend's
    /// answer, every secret scrubbed from it.
    pub async fn forward(&self, body: &Value, on_behalf: OnBehalf<'_>) -> UpstreamResult<Value> {
        let response = self.http.post("/chat/completions", body, on_behalf).await?;
        let mut answer = self.http.json(response, on_behalf).await?;
        self.http.scrubber(on_behalf).scrub_json(&mut answer);
        Ok(answer)
    }

    /// Forwards a streaming Chat Completions request body unchanged (with the client's request id) and passes the
    /// answer's bytes through, every secret scrubbed from them (an error event may quote one).
    pub async fn forward_stream(&self, body: &Value, on_behalf: OnBehalf<'_>) -> UpstreamResult<ByteStream> {
        let bytes = self.http.bytes(self.http.post("/chat/completions", body, on_behalf).await?);
        Ok(self.http.scrubber(on_behalf).scrub_stream(bytes))
    }
}

#[async_trait]
impl Upstream for ChatCompletions {
    fn name(&self) -> &str {
        &self.http.name
    }

    async fn complete(&self, request: &ChatRequest) -> UpstreamResult<Completion> {
        let body = self.request_json(request, false)?;
        let response = self.http.post_json("/chat/completions", body, request.on_behalf()).await?;
        let answer: ChatCompletion = self.http.json(response, request.on_behalf()).await?;
        let no_choices = || self.http.bad_answer("no choices", request.on_behalf());
        let choice = answer.choices.into_iter().next().ok_or_else(no_choices)?;
        let message = choice.message;
        let logprobs = choice.logprobs.map(wire::ChoiceLogprobs::into_values).unwrap_or_default();
        let tool_calls = message.tool_calls.iter().map(|call| ChatToolCall {
            id: call.id.clone().unwrap_or_default(),
            kind: "function".into(),
            function: ChatFunction {
                name: call.function.name.clone().unwrap_or_default(),
                arguments: call.function.arguments.clone().unwrap_or_default(),
            },
        });
        Ok(Completion {
            reasoning: message.reasoning_text().map(Thought::text).into_iter().collect(),
            tool_calls: tool_calls.collect(),
            text: message.content.unwrap_or_default(),
            logprobs,
            finish_reason: choice.finish_reason.as_deref().map_or(FinishReason::Stop, FinishReason::from_wire),
            usage: answer.usage.and_then(token_counts),
        })
    }

    async fn complete_stream(&self, request: &ChatRequest) -> UpstreamResult<DeltaStream> {
        let body = self.request_json(request, true)?;
        let response = self.http.post_json("/chat/completions", body, request.on_behalf()).await?;
        let scrubber = self.http.scrubber(request.on_behalf());
        Ok(deltas(self.http.name.clone(), scrubber, self.http.bytes(response)))
    }

    async fn models(&self) -> UpstreamResult<Vec<ModelInfo>> {
        let response = self.http.get("/models", LIST_TIMEOUT).await?;
        let mut models = self.http.json::<ModelList>(response, OnBehalf::default()).await?.data;
        if models.iter().any(lacks_llama_cpp_window) {
            self.add_llama_cpp_window(&mut models).await;
        }
        Ok(models)
    }

    fn chat_endpoint(&self) -> Option<&ChatCompletions> {
        Some(self)
    }
}

impl ChatCompletions {
    /// Gives the models of an older llama.cpp server, whose list reports only their training length, the context
    /// the running server enforces, from its `/props` (served at its root, beside `/v1`); without it, none.
    async fn add_llama_cpp_window(&self, models: &mut [ModelInfo]) {
        let props = match self.http.get("/../props", LIST_TIMEOUT).await {
            Ok(response) => self.http.json::<Value>(response, OnBehalf::default()).await,
            Err(err) => Err(err),
        };
        let window = props.as_ref().ok().and_then(|props| props.pointer("/default_generation_settings/n_ctx"));
        let Some(window) = window.filter(|window| window.as_u64().is_some_and(|n| n > 0)) else {
            tracing::debug!(upstream = %self.http.name, "llama.cpp's /props gives no context size");
            return;
        };
        for model in models.iter_mut().filter(|model| lacks_llama_cpp_window(model)) {
            if let Some(meta) = model.extra.get_mut("meta").and_then(Value::as_object_mut) {
                meta.insert("n_ctx".into(), window.clone());
            }
        }
    }
}

/// Whether a listed model is an older llama.cpp server's, whose `meta` has no `n_ctx`.
fn lacks_llama_cpp_window(model: &ModelInfo) -> bool {
    model.owned_by == "llamacpp"
        && model.extra.get("meta").and_then(Value::as_object).is_some_and(|meta| !meta.contains_key("n_ctx"))
}

/// The request body for a completion request.
fn request_body<'a>(messages: &'a Runs<ChatMessage>, request: &'a ChatRequest, stream: bool) -> RequestBody<'a> {
    let p = &request.parameters;
    RequestBody {
        messages,
        model: &request.model,
        temperature: p.temperature,
        top_p: p.top_p,
        max_tokens: p.max_output_tokens,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        reasoning_effort: p.reasoning_effort.as_deref(),
        verbosity: p.verbosity.as_deref(),
        user: p.user.as_deref(),
        safety_identifier: p.safety_identifier.as_deref(),
        prompt_cache_key: p.prompt_cache_key.as_deref(),
        prompt_cache_retention: p.prompt_cache_retention.as_deref(),
        prompt_cache_options: p.prompt_cache_options.as_ref(),
        parallel_tool_calls: p.parallel_tool_calls.filter(|_| !p.tools.is_empty()),
        tools: p.allowed_tools().map(ChatTool::function).collect(),
        tool_choice: p.tool_choice.as_ref().map(wire::tool_choice),
        response_format: wire::response_format(&p.text_format),
        logprobs: p.logprobs,
        top_logprobs: p.top_logprobs.filter(|_| p.logprobs),
        stream,
        stream_options: stream.then_some(StreamOptions { include_usage: true }),
    }
}

/// The token counts of a reported usage (none when it lacks the prompt's count).
pub fn token_counts(usage: WireUsage) -> Option<TokenCounts> {
    Some(TokenCounts {
        input: usage.prompt_tokens?,
        output: usage.completion_tokens,
        cached: usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        reasoning: usage.completion_tokens_details.map_or(0, |d| d.reasoning_tokens),
        cache_write: 0,
    })
}
