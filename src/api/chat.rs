//! POST /v1/chat/completions, stateless. A backend with its own Chat Completions endpoint gets the body unchanged
//! (a streamed answer's bytes pass through as they arrive); a built-in model runs the typed completion path and its
//! answer is rendered in the same wire format.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{stream, Stream, StreamExt};
use serde_json::Value;

use super::auth::Caller;
use super::extract::JsonBody;
use super::fields::{invalid_type, missing, Fields};
use super::openapi::{bodies, Failures};
use super::request_id::RequestId;
use super::{sse, AppState};
use crate::api::error::{ApiError, ApiResult};
use crate::model::new_id;
use crate::upstream::wire::{AnswerMessage, ChatChunk, ChatCompletion, Choice, ChunkChoice, ToolCallDelta, WireUsage};
use crate::upstream::{
    ChatMessage, ChatRequest, Context, Delta, FinishReason, OnBehalf, Parameters, TokenCounts, Upstream,
};

/// Forwards the body to the upstream serving its model, or runs a built-in model.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "createChatCompletion", tag = "Chat Completions",
    summary = "A stateless chat completion, passed to the model's upstream", request_body = bodies::ChatCompletionBody,
    responses((status = 200, description = "The upstream's completion; with `stream`, its chunks.",
        content((Object = "application/json"), (String = "text/event-stream"))), Failures))]
pub async fn completions(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let model = match body.get("model") {
        _ if !body.is_object() => {
            return Err(ApiError::invalid("The request body must be a JSON object.").code("invalid_type"))
        }
        None | Some(Value::Null) => return Err(missing("model")),
        Some(Value::String(model)) => model,
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    let upstream = state.engine.upstreams().route(model)?;
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let on_behalf = OnBehalf { request_id: Some(&request_id), api_key: caller.upstream_key.as_ref() };
    match upstream.chat_endpoint() {
        Some(endpoint) if stream => Ok(sse::response(until_failure(endpoint.forward_stream(&body, on_behalf).await?))),
        Some(endpoint) => Ok(Json(endpoint.forward(&body, on_behalf).await?).into_response()),
        None => builtin(&*upstream, body, request_id).await,
    }
}

/// A built-in model: it reads `messages`, `max_tokens` (or `max_completion_tokens`), `stream` and
/// `stream_options.include_usage`, and, like any backend, leaves the sampling parameters to itself.
async fn builtin(upstream: &dyn Upstream, body: Value, request_id: String) -> ApiResult<Response> {
    let mut f = Fields::new(body, "")?;
    let model = f.required_string("model")?;
    let messages = f.required("messages")?;
    let messages: Vec<ChatMessage> = serde_json::from_value(messages).map_err(|err| {
        ApiError::invalid(format!("Invalid 'messages': {err}.")).param("messages").code("invalid_value")
    })?;
    let max_tokens = f.integer("max_completion_tokens", 1)?.or(f.integer("max_tokens", 1)?);
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.object("stream_options")? {
        Some(mut options) => options.bool("include_usage")?.unwrap_or(false),
        None => false,
    };
    let parameters = Parameters { max_output_tokens: max_tokens, ..Parameters::default() };
    let messages = Context::chat(messages);
    let request =
        ChatRequest { model, messages, parameters, request_id: Some(request_id), api_key: None, stable_prefix: 0 };
    let answer =
        Answer { id: new_id("chatcmpl"), created: chrono::Utc::now().timestamp(), model: request.model.clone() };
    if !stream {
        let completion = upstream.complete(&request).await?;
        return Ok(Json(answer.completion(completion)).into_response());
    }
    let deltas = upstream.complete_stream(&request).await?;
    let opening = answer.chunk(
        AnswerMessage { role: Some("assistant".into()), content: Some(String::new()), ..AnswerMessage::default() },
        None,
    );
    let chunks =
        until_failure(deltas).filter_map(move |delta| std::future::ready(answer.delta_chunk(delta, include_usage)));
    let frames = stream::once(async move { opening }).chain(chunks).map(|chunk| sse::data_frame(&chunk));
    Ok(sse::response(frames.chain(stream::once(async { Bytes::from_static(b"data: [DONE]\n\n") }))))
}

/// The items of a stream up to its first failure: a broken upstream ends the client's stream, which then ends
/// without `[DONE]`.
fn until_failure<T, E>(items: impl Stream<Item = Result<T, E>>) -> impl Stream<Item = T> {
    items.take_while(|item| std::future::ready(item.is_ok())).filter_map(|item| std::future::ready(item.ok()))
}

/// The identity shared by every chunk of one answer.
struct Answer {
    id: String,
    created: i64,
    model: String,
}

impl Answer {
    fn completion(&self, completion: crate::upstream::Completion) -> ChatCompletion {
        let tool_calls = completion.tool_calls.into_iter().map(|call| ToolCallDelta {
            index: None,
            id: Some(call.id),
            kind: Some(call.kind),
            function: crate::upstream::wire::FunctionDelta {
                name: Some(call.function.name),
                arguments: Some(call.function.arguments),
            },
        });
        let message = AnswerMessage {
            role: Some("assistant".into()),
            content: Some(completion.text),
            reasoning_content: Some(
                completion.reasoning.iter().map(|thought| thought.text.as_str()).collect::<String>(),
            )
            .filter(|text| !text.is_empty()),
            tool_calls: tool_calls.collect(),
            ..AnswerMessage::default()
        };
        ChatCompletion {
            id: self.id.clone(),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: Some(completion.finish_reason.as_wire().into()),
                logprobs: None,
            }],
            usage: Some(usage(completion.usage.unwrap_or_default())),
            error: None,
        }
    }

    fn chunk(&self, delta: AnswerMessage, finish: Option<FinishReason>) -> ChatChunk {
        let finish_reason = finish.map(|reason| reason.as_wire().to_string());
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason, logprobs: None }],
            ..ChatChunk::default()
        }
    }

    /// The chunk a delta becomes; usage only when the client asked for it.
    fn delta_chunk(&self, delta: Delta, include_usage: bool) -> Option<ChatChunk> {
        let message = match delta {
            Delta::Text(text) => AnswerMessage { content: Some(text), ..AnswerMessage::default() },
            Delta::Reasoning(text) => AnswerMessage { reasoning_content: Some(text), ..AnswerMessage::default() },
            Delta::ToolCall { index, id, name, arguments } => {
                let function = crate::upstream::wire::FunctionDelta { name, arguments: Some(arguments) };
                let kind = id.as_ref().map(|_| "function".to_string());
                let call = ToolCallDelta { index: Some(index), id, kind, function };
                AnswerMessage { tool_calls: vec![call], ..AnswerMessage::default() }
            }
            Delta::Finish(reason) => return Some(self.chunk(AnswerMessage::default(), Some(reason))),
            Delta::Usage(counts) if include_usage => {
                return Some(ChatChunk {
                    choices: Vec::new(),
                    usage: Some(usage(counts)),
                    ..self.chunk(AnswerMessage::default(), None)
                })
            }
            // The built-in model gives no log probabilities.
            Delta::Usage(_) | Delta::ReasoningEnd(_) | Delta::Logprobs(_) => return None,
        };
        Some(self.chunk(message, None))
    }
}

fn usage(counts: TokenCounts) -> WireUsage {
    WireUsage {
        prompt_tokens: Some(counts.input),
        completion_tokens: counts.output,
        total_tokens: counts.input + counts.output,
        ..WireUsage::default()
    }
}
