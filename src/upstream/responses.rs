//! The `responses` upstream: a backend that speaks the Responses API itself (`POST {base_url}/responses`: OpenAI,
//! vLLM, another gateway). threadline sends the whole context as `input` with `store: false` and no
//! `previous_response_id`, reads the output items and events back (reasoning with its opaque form, function calls,
//! usage with cached tokens) and stores the turn itself under its own ids.

use std::time::Duration;

use async_trait::async_trait;

use super::http::{HttpBackend, OnBehalf};
use super::responses_stream::deltas;
use super::responses_wire::{self as wire, Answer, Input, OutputItem, RequestBody};
use super::scrub::Scrubber;
use super::wire::ModelList;
use super::{
    ChatFunction, ChatRequest, ChatToolCall, Completion, Context, ContextFormat, DeltaStream, ModelInfo, Thought,
};
use super::{ReasoningEnd, Upstream, UpstreamResult};
use crate::config::UpstreamConfig;

/// How long listing models may take: `/v1/models` answers from configured names instead of waiting longer.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend speaking the Responses API.
pub struct Responses {
    http: HttpBackend,
}

impl Responses {
    pub fn new(config: &UpstreamConfig, max_reply_bytes: usize, scrubber: &Scrubber) -> anyhow::Result<Self> {
        Ok(Self { http: HttpBackend::new(config, max_reply_bytes, scrubber)? })
    }

    /// The JSON body of a request: the context as `input` (messages turned into items first).
    fn request_json(&self, request: &ChatRequest, stream: bool) -> UpstreamResult<Vec<u8>> {
        let input = match &request.messages {
            Context::Responses(items) => Input::Context(items),
            Context::Chat(messages) => Input::Messages(wire::chat_input(messages.iter())),
        };
        let body = RequestBody::new(input, &request.model, &request.parameters, stream);
        serde_json::to_vec(&body).map_err(|err| self.http.bad_request(&err))
    }
}

#[async_trait]
impl Upstream for Responses {
    fn name(&self) -> &str {
        &self.http.name
    }

    async fn complete(&self, request: &ChatRequest) -> UpstreamResult<Completion> {
        let body = self.request_json(request, false)?;
        let response = self.http.post_json("/responses", body, request.on_behalf()).await?;
        let answer: Answer = self.http.json(response, request.on_behalf()).await?;
        if let Some(failure) = answer.failure() {
            return Err(self.http.bad_answer(&format!("a failed response ({failure})"), request.on_behalf()));
        }
        let (mut text, mut logprobs, mut reasoning, mut tool_calls) =
            (String::new(), Vec::new(), Vec::new(), Vec::new());
        for item in &answer.output {
            match item {
                OutputItem::Message { content } => {
                    text.push_str(&wire::text_of(content));
                    logprobs.extend(wire::logprobs_of(content));
                }
                OutputItem::FunctionCall { call_id, name, arguments } => {
                    let function = ChatFunction { name: name.clone(), arguments: arguments.clone() };
                    tool_calls.push(ChatToolCall { id: call_id.clone(), kind: "function".into(), function });
                }
                OutputItem::Reasoning { summary, content, encrypted_content } => reasoning.push(Thought {
                    text: wire::text_of(content),
                    end: Some(ReasoningEnd {
                        summary: wire::texts_of(summary),
                        encrypted_content: encrypted_content.clone(),
                    }),
                }),
                OutputItem::Other => {}
            }
        }
        Ok(Completion {
            text,
            logprobs,
            reasoning,
            finish_reason: answer.finish_reason(!tool_calls.is_empty()),
            tool_calls,
            usage: answer.usage.as_ref().map(wire::Usage::counts),
        })
    }

    async fn complete_stream(&self, request: &ChatRequest) -> UpstreamResult<DeltaStream> {
        let body = self.request_json(request, true)?;
        let response = self.http.post_json("/responses", body, request.on_behalf()).await?;
        let scrubber = self.http.scrubber(request.on_behalf());
        Ok(deltas(self.http.name.clone(), scrubber, self.http.bytes(response)))
    }

    fn context_format(&self) -> ContextFormat {
        ContextFormat::ResponsesInput
    }

    async fn models(&self) -> UpstreamResult<Vec<ModelInfo>> {
        let response = self.http.get("/models", LIST_TIMEOUT).await?;
        Ok(self.http.json::<ModelList>(response, OnBehalf::default()).await?.data)
    }
}
