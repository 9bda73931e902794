//! Upstream LLM backends: the `Upstream` trait and the completion types the engine speaks with it. `routing`
//! picks a backend by model name; `chat_completions` (over `http` and `stream`), `anthropic` and `responses` (each
//! with its wire and stream beside it) and `echo` implement the trait; `context` the typed context a request carries;
//! `wire` holds the Chat Completions wire types; `windows` the context
//! windows backends report; `scrub` the secrets taken out of what backends say before it is relayed, stored or logged.

mod anthropic;
mod anthropic_stream;
mod anthropic_wire;
mod chat_completions;
mod context;
mod echo;
mod error;
mod http;
mod overflow;
mod responses;
mod responses_stream;
mod responses_wire;
mod routing;
mod scrub;
mod stream;
mod windows;
pub mod wire;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::config::Secret;
use crate::model::{FunctionTool, TextFormat, ToolChoice};

pub use anthropic::Anthropic;
pub use chat_completions::ChatCompletions;
pub use context::{Context, ContextFormat, FormatMismatch, Run, Runs};
pub use echo::Echo;
pub use error::{UpstreamError, UpstreamResult};
pub use http::{ByteStream, OnBehalf};
pub use overflow::Overflow;
pub use responses::Responses;
pub use responses_wire::{InputContent, InputItem};
pub use routing::Upstreams;
pub use scrub::{Scrubber, MIN_SECRET_CHARS, REDACTED};
pub use windows::{reported_window, ContextWindows};
pub use wire::{ChatContent, ChatFunction, ChatMessage, ChatRole, ChatToolCall, ModelInfo};

/// Parameters and output controls forwarded with a completion request; `None` leaves the backend's default.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parameters {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub reasoning_effort: Option<String>,
    pub verbosity: Option<String>,
    pub user: Option<String>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
    /// How long the backend keeps the prompt's cache: `in_memory` or `24h`.
    pub prompt_cache_retention: Option<String>,
    /// How the backend caches the prompt.
    pub prompt_cache_options: Option<PromptCacheOptions>,
    /// Function tools offered to the model.
    pub tools: Vec<FunctionTool>,
    /// How the model may use them (`None`: the backend's default).
    pub tool_choice: Option<ToolChoice>,
    /// Whether several calls may come in one turn (`None`: the backend's default).
    pub parallel_tool_calls: Option<bool>,
    /// Most function calls kept from one turn.
    pub max_tool_calls: Option<u64>,
    /// The output format.
    pub text_format: TextFormat,
    /// Whether the log probabilities of the output tokens are asked for (`include: ["message.output_text.logprobs"]`),
    /// and how many of the likeliest tokens at each position (`top_logprobs`, 0–20).
    #[serde(default)]
    pub logprobs: bool,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
}

impl Parameters {
    /// The tools a backend is sent: all of them, or those an `allowed_tools` choice names.
    pub fn allowed_tools(&self) -> impl Iterator<Item = &FunctionTool> {
        self.tools.iter().filter(|tool| self.tool_choice.as_ref().is_none_or(|choice| choice.allows(&tool.name)))
    }
}

/// `prompt_cache_options`: implicit or explicit prompt caching, and for how long.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptCacheOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A completion request: the whole context of a turn.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    /// The context: Chat Completions messages, or Responses input items for a backend that takes those.
    pub messages: Context,
    pub parameters: Parameters,
    /// The id of the client request this serves, sent upstream as `x-request-id` (not part of the body).
    pub request_id: Option<String>,
    /// The client's own key (`passthrough`), sent in place of the upstream's configured one.
    pub api_key: Option<Secret>,
    /// How many of `messages`, from the first, are the stable prefix of the conversation (everything before the new
    /// turn's input), which a backend may cache; 0 when there is no history.
    pub stable_prefix: usize,
}

impl ChatRequest {
    /// The client it is made for.
    pub fn on_behalf(&self) -> OnBehalf<'_> {
        OnBehalf { request_id: self.request_id.as_deref(), api_key: self.api_key.as_ref() }
    }
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
}

impl FinishReason {
    /// The reason a backend names (`stop`, `length`…); unknown names count as `stop`.
    pub fn from_wire(name: &str) -> Self {
        match name {
            "length" => Self::Length,
            "content_filter" => Self::ContentFilter,
            "tool_calls" | "function_call" => Self::ToolCalls,
            _ => Self::Stop,
        }
    }

    /// The Chat Completions name of the reason.
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
            Self::ToolCalls => "tool_calls",
        }
    }
}

/// Token counts reported by the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
    /// Input tokens written to the backend's prompt cache (Anthropic reports them).
    pub cache_write: u64,
}

/// What the backend answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    /// The log probabilities of the text's tokens, when asked for and the backend gives them (Responses shape).
    pub logprobs: Vec<serde_json::Value>,
    /// Its reasoning items, in order (at most one from a Chat Completions backend).
    pub reasoning: Vec<Thought>,
    pub tool_calls: Vec<ChatToolCall>,
    pub finish_reason: FinishReason,
    /// Token counts, when the backend reports them.
    pub usage: Option<TokenCounts>,
}

impl Completion {
    /// The completion as the deltas a stream would have carried.
    pub fn into_deltas(self) -> Vec<Delta> {
        let reasoning = self.reasoning.into_iter().flat_map(|thought| {
            let text = (!thought.text.is_empty()).then_some(Delta::Reasoning(thought.text));
            text.into_iter().chain(thought.end.map(Delta::ReasoningEnd))
        });
        let logprobs = (!self.logprobs.is_empty()).then_some(Delta::Logprobs(self.logprobs));
        let text = (!self.text.is_empty() || self.tool_calls.is_empty()).then_some(Delta::Text(self.text));
        let calls = self.tool_calls.into_iter().enumerate().map(|(index, call)| Delta::ToolCall {
            index,
            id: Some(call.id),
            name: Some(call.function.name),
            arguments: call.function.arguments,
        });
        let end = [Delta::Finish(self.finish_reason)].into_iter().chain(self.usage.map(Delta::Usage));
        reasoning.into_iter().chain(logprobs).chain(text).chain(calls).chain(end).collect()
    }
}

/// One reasoning item of an answer: its text, and how a backend that returns reasoning as items ended it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thought {
    pub text: String,
    pub end: Option<ReasoningEnd>,
}

impl Thought {
    /// Reasoning given as text only (a Chat Completions or Anthropic backend's).
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), end: None }
    }
}

/// The end of a reasoning item from a backend that returns reasoning as items (the Responses API): its summary
/// texts and its opaque form, which the backend takes back in a later turn's input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReasoningEnd {
    pub summary: Vec<String>,
    pub encrypted_content: Option<String>,
}

/// One piece of a streamed completion.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    Text(String),
    /// The log probabilities of the tokens of the `Text` delta that comes next (Responses shape).
    Logprobs(Vec<serde_json::Value>),
    Reasoning(String),
    /// The reasoning item being streamed ends (one is started if none is): it takes this summary and opaque form.
    ReasoningEnd(ReasoningEnd),
    /// Part of function call `index` (the backend's numbering): its id and name when it starts, then arguments.
    ToolCall {
        index: usize,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Finish(FinishReason),
    Usage(TokenCounts),
}

/// A streamed completion; an `Err` item ends it with a failure.
pub type DeltaStream = BoxStream<'static, UpstreamResult<Delta>>;

/// An LLM backend.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The configured name, used in logs and error messages.
    fn name(&self) -> &str;
    /// Runs one completion over the whole context.
    async fn complete(&self, request: &ChatRequest) -> UpstreamResult<Completion>;
    /// Runs one completion, streamed; failures before the first delta are returned directly.
    async fn complete_stream(&self, request: &ChatRequest) -> UpstreamResult<DeltaStream>;
    /// The shape in which it takes a turn's context.
    fn context_format(&self) -> ContextFormat {
        ContextFormat::ChatMessages
    }
    /// The models the backend lists.
    async fn models(&self) -> UpstreamResult<Vec<ModelInfo>>;
    /// The backend's own Chat Completions endpoint, to which the stateless surface forwards requests unchanged;
    /// `None` for a built-in model, which that surface drives through `complete` instead.
    fn chat_endpoint(&self) -> Option<&ChatCompletions> {
        None
    }
}
