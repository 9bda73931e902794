//! Upstream LLM backends: the `Upstream` trait, its request/answer types, and routing a model name to a backend.

mod chat_completions;
mod echo;
pub mod sse;

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;

use crate::config::{UpstreamConfig, UpstreamKind};
use crate::error::{ApiError, ApiResult};
use crate::model::{FunctionTool, TextFormat, ToolChoice};

pub use chat_completions::ChatCompletions;
pub use echo::Echo;

/// One message of the context sent upstream, in the Chat Completions shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: ChatContent,
    /// The function calls of an assistant message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with plain text content.
    pub fn text(role: &'static str, text: impl Into<String>) -> Self {
        Self { role, content: ChatContent::Text(text.into()), tool_calls: Vec::new(), tool_call_id: None }
    }

    /// The message's text (text parts joined by newlines).
    pub fn content_text(&self) -> String {
        match &self.content {
            ChatContent::Text(text) => text.clone(),
            ChatContent::Parts(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
                texts.join("\n")
            }
            ChatContent::Null => String::new(),
        }
    }
}

/// A message's content: a string, content parts (text, `image_url`, `file`), or null (tool calls only).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<Value>),
    Null,
}

/// A function call in an assistant message: `{id, type:"function", function:{name, arguments}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ChatFunction,
}

/// The function of a tool call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatFunction {
    pub name: String,
    pub arguments: String,
}

/// Parameters and output controls forwarded with a completion request; `None` leaves the backend's default.
#[derive(Clone, Debug, Default, PartialEq)]
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
}

/// A completion request: the whole context of a turn.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub parameters: Parameters,
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
}

/// Token counts reported by the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
}

/// What the backend answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ChatToolCall>,
    pub finish_reason: FinishReason,
    /// Token counts, when the backend reports them.
    pub usage: Option<TokenCounts>,
}

impl Completion {
    /// The completion as the deltas a stream would have carried.
    pub fn into_deltas(self) -> Vec<Delta> {
        let reasoning = self.reasoning.map(Delta::Reasoning);
        let text = (!self.text.is_empty() || self.tool_calls.is_empty()).then_some(Delta::Text(self.text));
        let calls = self.tool_calls.into_iter().enumerate().map(|(index, call)| Delta::ToolCall {
            index,
            id: Some(call.id),
            name: Some(call.function.name),
            arguments: call.function.arguments,
        });
        let end = [Delta::Finish(self.finish_reason)].into_iter().chain(self.usage.map(Delta::Usage));
        reasoning.into_iter().chain(text).chain(calls).chain(end).collect()
    }
}

/// One piece of a streamed completion.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
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
pub type DeltaStream = BoxStream<'static, ApiResult<Delta>>;

/// Raw bytes of a streamed answer, passed through as they arrive.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// An LLM backend.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The configured name, used in logs and error messages.
    fn name(&self) -> &str;
    /// Runs one completion over the whole context.
    async fn complete(&self, request: &ChatRequest) -> ApiResult<Completion>;
    /// Runs one completion, streamed; failures before the first delta are returned directly.
    async fn complete_stream(&self, request: &ChatRequest) -> ApiResult<DeltaStream>;
    /// Forwards a Chat Completions request body unchanged and returns the backend's answer.
    async fn chat(&self, body: &Value) -> ApiResult<Value>;
    /// Forwards a streaming Chat Completions request body unchanged and passes its SSE bytes through.
    async fn chat_stream(&self, body: &Value) -> ApiResult<ByteStream>;
    /// The model objects (`{id, object:"model", …}`) the backend lists.
    async fn models(&self) -> ApiResult<Vec<Value>>;
}

/// The configured upstreams in order; a model is served by the first whose patterns match it.
pub struct Upstreams {
    routes: Vec<(Vec<String>, Arc<dyn Upstream>)>,
}

impl Upstreams {
    /// Builds every configured upstream.
    pub fn from_config(configs: &[UpstreamConfig]) -> anyhow::Result<Self> {
        let routes = configs
            .iter()
            .map(|config| {
                let upstream: Arc<dyn Upstream> = match config.kind {
                    UpstreamKind::ChatCompletions => Arc::new(ChatCompletions::new(config)?),
                    UpstreamKind::Echo => Arc::new(Echo::new(&config.name)),
                };
                Ok((config.models.clone(), upstream))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { routes })
    }

    /// The upstream serving `model`, or 404 `model_not_found`.
    pub fn route(&self, model: &str) -> ApiResult<Arc<dyn Upstream>> {
        self.routes
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| glob_match(p, model)))
            .map(|(_, upstream)| upstream.clone())
            .ok_or_else(|| ApiError::NotFound {
                message: format!("The model `{model}` does not exist or you do not have access to it."),
                param: None,
                code: Some("model_not_found"),
            })
    }

    /// Every upstream with the literal (wildcard-free) model names configured for it.
    pub fn all(&self) -> impl Iterator<Item = (&Arc<dyn Upstream>, Vec<&str>)> {
        self.routes.iter().map(|(patterns, upstream)| {
            let names = patterns.iter().map(String::as_str).filter(|p| !p.contains('*')).collect();
            (upstream, names)
        })
    }
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let mut pieces: Vec<&str> = rest.split('*').collect();
    let last = pieces.pop().unwrap_or_default();
    for piece in pieces {
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Counts tokens roughly (one per whitespace-separated word) where a backend reports none.
pub fn estimate_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("llama3*", "llama3.1:8b"));
        assert!(!glob_match("llama3*", "qwen"));
        assert!(glob_match("gpt-4o", "gpt-4o"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(glob_match("*-instruct", "qwen-instruct"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*bc", "abc-"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
