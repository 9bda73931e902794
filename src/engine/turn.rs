//! Running one turn: resolve the chain, call the upstream, build the Response, store it before answering.

use crate::error::{ApiError, ApiResult};
use crate::model::{
    new_id, ContentPart, IncompleteDetails, Item, ItemStatus, Message, Reasoning, ReasoningConfig, ReasoningText,
    Response, ResponseStatus, Role, TextConfig, Usage,
};
use crate::upstream::{ChatRequest, Completion, FinishReason};

use super::{chat_messages, Engine, TurnRequest};

impl Engine {
    /// Runs a turn to its end and returns the Response; a stored turn is committed before this returns.
    pub async fn respond(&self, request: TurnRequest) -> ApiResult<Response> {
        let upstream = self.upstreams.route(&request.model)?;
        let history = match &request.previous_response_id {
            Some(id) => self
                .store
                .history(&request.tenant, id, self.max_chain_depth)
                .await?
                .ok_or_else(|| previous_response_not_found(id))?,
            None => Vec::new(),
        };
        let chat = ChatRequest {
            model: request.model.clone(),
            messages: chat_messages(request.instructions.as_deref(), &history, &request.input),
            sampling: request.sampling.clone(),
        };
        let completion = upstream.complete(&chat).await?;
        let response = build_response(&request, completion);
        if request.store {
            self.store.save_turn(&request.tenant, &response, &request.input).await?;
        }
        Ok(response)
    }
}

/// 400 for a `previous_response_id` that is unknown, deleted, never stored or another tenant's.
pub fn previous_response_not_found(id: &str) -> ApiError {
    ApiError::invalid(
        format!("Previous response with id '{id}' not found."),
        Some("previous_response_id".to_string()),
        Some("previous_response_not_found"),
    )
}

/// The Response for a finished completion, echoing the request's parameters.
fn build_response(request: &TurnRequest, completion: Completion) -> Response {
    let now = chrono::Utc::now().timestamp();
    let incomplete = match completion.finish_reason {
        FinishReason::Stop => None,
        FinishReason::Length => Some("max_output_tokens"),
        FinishReason::ContentFilter => Some("content_filter"),
    };
    let item_status = if incomplete.is_some() { ItemStatus::Incomplete } else { ItemStatus::Completed };
    let mut output = Vec::new();
    if let Some(text) = completion.reasoning {
        output.push(Item::Reasoning(Reasoning {
            id: new_id("rs"),
            summary: Vec::new(),
            content: vec![ReasoningText { text }],
            status: ItemStatus::Completed,
        }));
    }
    output.push(Item::Message(Message {
        id: new_id("msg"),
        status: item_status,
        role: Role::Assistant,
        content: vec![ContentPart::output_text(completion.text)],
    }));
    let usage = completion.usage;
    let sampling = &request.sampling;
    Response {
        id: new_id("resp"),
        object: "response".into(),
        created_at: now,
        status: if incomplete.is_some() { ResponseStatus::Incomplete } else { ResponseStatus::Completed },
        background: false,
        completed_at: incomplete.is_none().then_some(now),
        error: None,
        frequency_penalty: sampling.frequency_penalty.unwrap_or(0.0),
        incomplete_details: incomplete.map(|reason| IncompleteDetails { reason: reason.into() }),
        instructions: request.instructions.clone(),
        max_output_tokens: sampling.max_output_tokens,
        max_tool_calls: None,
        model: completion.model.unwrap_or_else(|| request.model.clone()),
        moderation: None,
        output,
        parallel_tool_calls: request.parallel_tool_calls,
        presence_penalty: sampling.presence_penalty.unwrap_or(0.0),
        previous_response_id: request.previous_response_id.clone(),
        prompt_cache_key: sampling.prompt_cache_key.clone(),
        prompt_cache_retention: None,
        reasoning: ReasoningConfig { effort: sampling.reasoning_effort.clone(), summary: None },
        safety_identifier: sampling.safety_identifier.clone(),
        service_tier: "default".into(),
        store: request.store,
        temperature: sampling.temperature.unwrap_or(1.0),
        text: TextConfig {
            verbosity: sampling.verbosity.clone().unwrap_or_else(|| "medium".into()),
            ..TextConfig::default()
        },
        tool_choice: serde_json::json!("auto"),
        tools: Vec::new(),
        top_logprobs: 0,
        top_p: sampling.top_p.unwrap_or(1.0),
        truncation: "disabled".into(),
        usage: Some(Usage::new(usage.input, usage.output, usage.cached, usage.reasoning)),
        user: sampling.user.clone(),
        metadata: request.metadata.clone(),
    }
}
