//! The `anthropic` upstream: the Anthropic Messages API (`POST {base_url}/messages`, `x-api-key`,
//! `anthropic-version`), with prompt-cache breakpoints on the system prompt and the stable prefix of the
//! conversation, extended thinking for a reasoning effort, and its models listed from `GET {base_url}/models`.

use std::time::Duration;

use async_trait::async_trait;

use super::anthropic_stream::deltas;
use super::anthropic_wire::{self as wire, AnswerBlock, MessagesRequest, MessagesResponse, ModelList, Tool};
use super::http::{HttpBackend, OnBehalf};
use super::scrub::Scrubber;
use super::UpstreamResult;
use super::{ChatFunction, ChatRequest, ChatToolCall, Completion, Context, DeltaStream, FormatMismatch, ModelInfo};
use super::{Thought, Upstream};
use crate::config::UpstreamConfig;
use crate::model::ToolChoice;

/// The API version threadline speaks.
pub const API_VERSION: &str = "2023-06-01";

/// How long listing models may take: `/v1/models` answers from configured names instead of waiting longer.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend speaking the Anthropic Messages API.
pub struct Anthropic {
    http: HttpBackend,
    /// The `max_tokens` of a request that sets no output limit.
    max_tokens: u64,
    /// Whether to send cache breakpoints.
    prompt_cache: bool,
}

impl Anthropic {
    pub fn new(config: &UpstreamConfig, max_reply_bytes: usize, scrubber: &Scrubber) -> anyhow::Result<Self> {
        let http = HttpBackend::new(config, max_reply_bytes, scrubber)?
            .key_header("x-api-key")
            .header("anthropic-version", API_VERSION);
        Ok(Self { http, max_tokens: config.max_tokens, prompt_cache: config.prompt_cache })
    }

    /// The JSON body of a completion request.
    fn request_json(&self, request: &ChatRequest, stream: bool) -> UpstreamResult<Vec<u8>> {
        let Context::Chat(messages) = &request.messages else {
            return Err(self.http.bad_request(&FormatMismatch));
        };
        let (system, messages) = wire::conversation(messages.iter(), request.stable_prefix, self.prompt_cache)
            .map_err(|what| {
                self.http.bad_answer(&format!("no request it could be sent: {what}"), request.on_behalf())
            })?;
        let p = &request.parameters;
        let max_tokens = p.max_output_tokens.unwrap_or(self.max_tokens);
        // No thinking where Anthropic refuses it: with a forced tool choice, or continuing a tool call (its thinking
        // blocks, which that would need back with their signatures, are not kept).
        let forced =
            matches!(p.tool_choice, Some(ToolChoice::Required | ToolChoice::Function(_))) && !p.tools.is_empty();
        let thinking = wire::thinking(p.reasoning_effort.as_deref(), max_tokens)
            .filter(|_| !forced && !wire::continues_tool_use(&messages));
        // Anthropic refuses sampling changes with extended thinking.
        let sampling = |value: Option<f64>| value.filter(|_| thinking.is_none());
        let body = MessagesRequest {
            model: &request.model,
            max_tokens,
            system,
            messages,
            temperature: sampling(p.temperature),
            top_p: sampling(p.top_p),
            tools: p.allowed_tools().map(Tool::of).collect(),
            tool_choice: wire::tool_choice(p.tool_choice.as_ref(), p.parallel_tool_calls)
                .filter(|_| !p.tools.is_empty()),
            thinking,
            stream,
        };
        serde_json::to_vec(&body).map_err(|err| self.http.bad_request(&err))
    }
}

#[async_trait]
impl Upstream for Anthropic {
    fn name(&self) -> &str {
        &self.http.name
    }

    async fn complete(&self, request: &ChatRequest) -> UpstreamResult<Completion> {
        let body = self.request_json(request, false)?;
        let response = self.http.post_json("/messages", body, request.on_behalf()).await?;
        let answer: MessagesResponse = self.http.json(response, request.on_behalf()).await?;
        let (mut text, mut reasoning, mut tool_calls) = (String::new(), None::<String>, Vec::new());
        for block in answer.content {
            match block {
                AnswerBlock::Text { text: piece } => text.push_str(&piece),
                AnswerBlock::Thinking { thinking } => reasoning.get_or_insert_with(String::new).push_str(&thinking),
                AnswerBlock::ToolUse { id, name, input } => {
                    let arguments = match input {
                        serde_json::Value::Null => "{}".to_string(),
                        input => input.to_string(),
                    };
                    let function = ChatFunction { name, arguments };
                    tool_calls.push(ChatToolCall { id, kind: "function".into(), function });
                }
                AnswerBlock::Other => {}
            }
        }
        Ok(Completion {
            text,
            // Anthropic's API gives no log probabilities: asked for, the output has none (`logprobs: []`).
            logprobs: Vec::new(),
            reasoning: reasoning.filter(|r| !r.is_empty()).map(Thought::text).into_iter().collect(),
            tool_calls,
            finish_reason: wire::finish_reason(answer.stop_reason.as_deref()),
            usage: answer.usage.map(wire::Usage::counts),
        })
    }

    async fn complete_stream(&self, request: &ChatRequest) -> UpstreamResult<DeltaStream> {
        let body = self.request_json(request, true)?;
        let response = self.http.post_json("/messages", body, request.on_behalf()).await?;
        let scrubber = self.http.scrubber(request.on_behalf());
        Ok(deltas(self.http.name.clone(), scrubber, self.http.bytes(response)))
    }

    async fn models(&self) -> UpstreamResult<Vec<ModelInfo>> {
        let response = self.http.get("/models?limit=1000", LIST_TIMEOUT).await?;
        let list: ModelList = self.http.json(response, OnBehalf::default()).await?;
        let models = list.data.into_iter().map(|model| {
            let mut info = ModelInfo::named(&model.id, "anthropic");
            let created = model.created_at.as_deref().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            info.created = created.map_or(0, |at| at.timestamp());
            if let Some(name) = model.display_name {
                info.extra.insert("display_name".into(), name.into());
            }
            info
        });
        Ok(models.collect())
    }
}
