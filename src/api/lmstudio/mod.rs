//! LM Studio's native stateful chat, `POST /api/v1/chat`: its request, reply, stream events and error shape, on
//! the same engine and store as `/v1/responses` (ids continue across both).

mod wire;

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Caller;
use super::extract::JsonBody;
use super::fields::{invalid_type, invalid_value, missing, Fields};
use super::ids;
use super::input::{check_input_items, system_text, user_text};
use super::openapi::{bodies, LmStudioFailures};
use super::request_id::RequestId;
use super::{sse, AppState};
use crate::api::error::ApiError;
use crate::engine::{ContextOptions, EngineError, Truncation, TurnRequest};
use crate::model::{new_id, ContentPart, Item, ItemStatus, Message, Metadata, Role};
use crate::upstream::Parameters;

/// POST /api/v1/chat
#[utoipa::path(post, path = "/api/v1/chat", operation_id = "lmStudioChat", tag = "LM Studio",
    summary = "LM Studio's native stateful chat", request_body = bodies::LmStudioChatBody,
    responses((status = 200, description = "LM Studio's reply `{model_instance_id, output, stats, response_id}`; with \
        `stream`, its events.", content((Object = "application/json"), (String = "text/event-stream"))), LmStudioFailures))]
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    body: Result<JsonBody, ApiError>,
) -> Result<Response, LmStudioError> {
    let body = body?.0;
    check_input_items(&body, state.max_input_items)?;
    let (turn, stream) = parse_chat(body, caller, request_id)?;
    let started = Instant::now();
    if stream {
        let events = state.engine.respond_stream(turn).await?;
        return Ok(sse::response(wire::stream(sse::turn_events(events), started)));
    }
    let response = state.engine.respond(turn).await?;
    Ok(Json(wire::reply(&response, started.elapsed().as_secs_f64(), None)).into_response())
}

/// An error in LM Studio's shape: `{"error":{"type","message","code","param"}}`.
pub struct LmStudioError(ApiError);

impl From<ApiError> for LmStudioError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<EngineError> for LmStudioError {
    fn from(error: EngineError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for LmStudioError {
    fn into_response(self) -> Response {
        self.0.log();
        let mut response = (self.0.status, Json(json!({"error": error_object(&self.0)}))).into_response();
        self.0.add_headers(&mut response);
        response
    }
}

/// The error object of LM Studio's wire format for an error.
fn error_object(error: &ApiError) -> Value {
    let body = &error.body;
    let kind = match body.code.as_deref() {
        Some("model_not_found") => "model_not_found",
        Some("unsupported_parameter") => "not_implemented",
        _ if error.status.is_server_error() => "internal_error",
        _ if error.status.is_client_error() => "invalid_request",
        _ => "unknown",
    };
    json!({"type": kind, "message": body.message, "code": body.code, "param": body.param})
}

/// Reads an LM Studio chat request into a turn and whether to stream it.
fn parse_chat(body: Value, caller: Caller, request_id: String) -> Result<(TurnRequest, bool), ApiError> {
    let mut f = Fields::new(body, "")?;
    let model = f.required_string("model")?;
    let mut input = match f.required("input")? {
        Value::String(text) if text.is_empty() => return Err(missing("input")),
        Value::String(text) => vec![user_text(text)],
        Value::Array(items) if items.is_empty() => return Err(missing("input")),
        Value::Array(items) => vec![user_parts(items)?],
        other => return Err(invalid_type("input", "a string or an array", &other)),
    };
    if let Some(prompt) = f.string("system_prompt")? {
        // Stored as a system item of this turn, so it stays in the conversation when it is continued.
        input.insert(0, system_text(prompt));
    }
    let previous_response_id = f.string("previous_response_id")?;
    if let Some(id) = previous_response_id.as_deref().filter(|id| !id.starts_with("resp_")) {
        return Err(ApiError::invalid(format!(
            "Invalid 'previous_response_id': '{id}'. Expected an ID that begins with 'resp_'."
        ))
        .param("previous_response_id")
        .code("invalid_value"));
    }
    let store = f.bool("store")?.unwrap_or(true);
    let stream = f.bool("stream")?.unwrap_or(false);
    let parameters = Parameters {
        temperature: f.number("temperature", 0.0, 1.0)?,
        top_p: f.number("top_p", 0.0, 1.0)?,
        max_output_tokens: f.integer("max_output_tokens", 1)?,
        ..Parameters::default()
    };
    // The window to fit the conversation into, as LM Studio loads the model with that context length.
    let window = f.integer("context_length", 1)?;
    for key in ["top_k", "min_p", "repeat_penalty", "reasoning", "integrations"] {
        f.reject(key, &format!("The '{key}' parameter"))?;
    }
    f.finish()?;
    ids::known_if_some(previous_response_id.as_deref(), EngineError::PreviousResponseNotFound)?;
    let turn = TurnRequest {
        tenant: caller.tenant,
        model,
        input,
        instructions: None,
        previous_response_id,
        store,
        metadata: Metadata::new(),
        parameters,
        conversation: None,
        request_id: Some(request_id),
        upstream_key: caller.upstream_key,
        // LM Studio keeps a chat going when it outgrows the window, dropping its oldest part.
        truncation: Truncation::Auto,
        context: ContextOptions { window, ..ContextOptions::default() },
        background: false,
        local: None,
    };
    Ok((turn, stream))
}

/// LM Studio's typed input items (`{"type":"text","content":…}`) as one user message.
fn user_parts(items: Vec<Value>) -> Result<Item, ApiError> {
    let content = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let mut f = Fields::new(item, &format!("input[{i}]"))?;
            let kind = f.required_string("type")?;
            let part = match kind.as_str() {
                "text" | "message" => ContentPart::InputText { text: f.required_string("content")? },
                "image" => ContentPart::InputImage { image_url: f.required_string("data_url")?, detail: "auto".into() },
                other => return Err(invalid_value(&f.param("type"), other, &["text", "image"])),
            };
            f.finish()?;
            Ok(part)
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::User,
        content,
        phase: None,
    }))
}
