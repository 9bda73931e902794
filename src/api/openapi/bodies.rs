//! The request bodies and `json!`-built answers of the routes, as the OpenAPI document describes them. The handlers
//! read bodies by hand (`Fields`), field by field: each type here names exactly the fields its parser takes.

#![allow(dead_code)] // Read only by the document's generator.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::model::{Item, Metadata, Usage};

/// A string, or input items (messages, `function_call`, `function_call_output`, `reasoning`, `compaction`,
/// `item_reference`, in the `Item` shape; `id` and `status` may be left out).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// `POST /v1/responses`: runs a turn.
#[derive(Serialize, ToSchema)]
pub struct CreateResponseBody {
    /// The model; it picks the upstream that serves the turn.
    model: String,
    input: Option<Input>,
    instructions: Option<String>,
    /// The response this turn continues (exclusive with `conversation`).
    previous_response_id: Option<String>,
    /// A conversation id, or `{"id": …}`: the turn is added to it.
    #[schema(value_type = Option<Object>)]
    conversation: Option<Value>,
    #[schema(default = true)]
    store: Option<bool>,
    /// Run in the background (requires `store`); follow with GET /v1/responses/{id}.
    #[schema(default = false)]
    background: Option<bool>,
    /// At most 16 pairs; keys at most 64 chars, values at most 512.
    #[schema(inline)]
    metadata: Option<Metadata>,
    /// `message.output_text.logprobs` and/or `reasoning.encrypted_content`.
    include: Option<Vec<String>>,
    /// Answer with `text/event-stream` events.
    #[schema(default = false)]
    stream: Option<bool>,
    /// `{include_obfuscation}`, only with `stream`.
    #[schema(value_type = Option<Object>)]
    stream_options: Option<Value>,
    /// Function tools `{type:"function", name, description, parameters, strict}`.
    tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required`, `{type:"function", name}` or `{type:"allowed_tools", mode, tools}`.
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    #[schema(minimum = 1)]
    max_tool_calls: Option<u64>,
    /// `{format, verbosity}`: `text`, `json_object` or `json_schema` output.
    #[schema(value_type = Option<Object>)]
    text: Option<Value>,
    #[schema(minimum = 0, maximum = 2)]
    temperature: Option<f64>,
    #[schema(minimum = 0, maximum = 1)]
    top_p: Option<f64>,
    #[schema(minimum = 16)]
    max_output_tokens: Option<u64>,
    #[schema(minimum = -2, maximum = 2)]
    presence_penalty: Option<f64>,
    #[schema(minimum = -2, maximum = 2)]
    frequency_penalty: Option<f64>,
    /// `{effort}`: `none`, `minimal`, `low`, `medium`, `high` or `xhigh`.
    #[schema(value_type = Option<Object>)]
    reasoning: Option<Value>,
    user: Option<String>,
    #[schema(max_length = 64)]
    safety_identifier: Option<String>,
    prompt_cache_key: Option<String>,
    /// `in_memory` or `24h`.
    prompt_cache_retention: Option<String>,
    /// `{mode: "implicit"|"explicit", ttl}`: forwarded to the backend as given, not echoed.
    #[schema(value_type = Option<Object>)]
    prompt_cache_options: Option<Value>,
    #[schema(minimum = 0, maximum = 20)]
    top_logprobs: Option<u64>,
    /// `disabled` (default) or `auto`.
    truncation: Option<String>,
    /// `[{"type":"compaction","compact_threshold":N}]` (N at least 1000).
    context_management: Option<Vec<Value>>,
    /// `auto` or `default` (others are refused).
    service_tier: Option<String>,
}

/// `POST /v1/responses/input_tokens`: the fields of a create that shape the context.
#[derive(Serialize, ToSchema)]
pub struct InputTokensBody {
    model: String,
    input: Option<Input>,
    instructions: Option<String>,
    previous_response_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    conversation: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    #[schema(value_type = Option<Object>)]
    text: Option<Value>,
    #[schema(value_type = Option<Object>)]
    reasoning: Option<Value>,
    truncation: Option<String>,
    context_management: Option<Vec<Value>>,
}

/// `POST /v1/responses/compact`.
#[derive(Serialize, ToSchema)]
pub struct CompactBody {
    model: String,
    input: Option<Input>,
    instructions: Option<String>,
    previous_response_id: Option<String>,
    prompt_cache_key: Option<String>,
}

/// `{object:"response.input_tokens", input_tokens}`.
#[derive(Serialize, ToSchema)]
pub struct InputTokens {
    /// `response.input_tokens`.
    object: String,
    input_tokens: u64,
}

/// `{id, object:"response.compaction", created_at, output, usage}`: the window a compaction left.
#[derive(Serialize, ToSchema)]
pub struct Compacted {
    id: String,
    /// `response.compaction`.
    object: String,
    created_at: i64,
    /// The kept user messages, then a `compaction` item.
    output: Vec<Item>,
    usage: Usage,
}

/// `{id, object:"<kind>.deleted", deleted:true}`.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    id: String,
    /// `response.deleted` or `conversation.deleted`.
    object: String,
    deleted: bool,
}

/// `POST /v1/conversations`.
#[derive(Serialize, ToSchema)]
pub struct CreateConversationBody {
    /// At most 20 input items.
    #[schema(max_items = 20)]
    items: Option<Vec<Value>>,
    #[schema(inline)]
    metadata: Option<Metadata>,
}

/// `POST /v1/conversations/{id}`: the new metadata, replacing the old.
#[derive(Serialize, ToSchema)]
pub struct UpdateConversationBody {
    #[schema(inline)]
    metadata: Metadata,
}

/// `POST /v1/conversations/{id}/items`.
#[derive(Serialize, ToSchema)]
pub struct AddItemsBody {
    /// At most 20 input items.
    #[schema(max_items = 20)]
    items: Vec<Value>,
}

/// `POST /v1/chat/completions`: any other field goes to the upstream unchanged.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionBody {
    model: String,
    messages: Vec<Value>,
    stream: Option<bool>,
    /// `{include_usage}`.
    #[schema(value_type = Option<Object>)]
    stream_options: Option<Value>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

/// `POST /api/v1/chat` (LM Studio's request).
#[derive(Serialize, ToSchema)]
pub struct LmStudioChatBody {
    model: String,
    /// A string, or items `{"type":"text","content":…}`.
    input: Value,
    system_prompt: Option<String>,
    /// A `resp_…` id (shared with `/v1/responses`).
    previous_response_id: Option<String>,
    #[schema(default = true)]
    store: Option<bool>,
    #[schema(minimum = 0, maximum = 1)]
    temperature: Option<f64>,
    #[schema(minimum = 0, maximum = 1)]
    top_p: Option<f64>,
    #[schema(minimum = 1)]
    max_output_tokens: Option<u64>,
    /// The context length to fit the conversation into, as LM Studio loads the model with it.
    #[schema(minimum = 1)]
    context_length: Option<u64>,
    stream: Option<bool>,
}

/// LM Studio's error envelope.
#[derive(Serialize, ToSchema)]
pub struct LmStudioError {
    error: LmStudioErrorBody,
}

/// LM Studio's error object.
#[derive(Serialize, ToSchema)]
pub struct LmStudioErrorBody {
    /// `invalid_request`, `model_not_found`, `not_implemented` or `internal_error`.
    #[serde(rename = "type")]
    kind: String,
    message: String,
    code: Option<String>,
    param: Option<String>,
}

/// `{status}`: `ok` (live) or `ready`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    status: String,
}
