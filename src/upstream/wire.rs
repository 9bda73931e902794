//! The Chat Completions wire format as serde types: the request threadline sends, the answer and stream chunks it
//! reads, and the model list. Unknown fields a backend adds are ignored, except on models, where they are kept.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::context::Runs;
use crate::model::{ChatTool, TextFormat, ToolChoice};

/// One message of a context, in the Chat Completions shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    #[serde(default)]
    pub content: ChatContent,
    /// The function calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub tool_calls: Vec<ChatToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with plain text content.
    pub fn text(role: ChatRole, text: impl Into<String>) -> Self {
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

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// A message's content: a string, content parts (text, `image_url`, `file`), or null (tool calls only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<Value>),
    #[default]
    Null,
}

/// A function call in an assistant message: `{id, type:"function", function:{name, arguments}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: ChatFunction,
}

/// The function of a tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// The body of `POST /chat/completions`; `None` fields are left out (the backend's default).
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    pub messages: &'a Runs<ChatMessage>,
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_retention: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_options: Option<&'a super::PromptCacheOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options` of a streamed request.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The chat form of a tool choice: `"auto"` … or `{type:"function", function:{name}}`.
pub fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Function(name) => serde_json::json!({"type": "function", "function": {"name": name}}),
        // Backends that know no `allowed_tools` get only the allowed tools (see `request_body`) and the mode.
        ToolChoice::Allowed { required: true, .. } => Value::from("required"),
        ToolChoice::Allowed { required: false, .. } => Value::from("auto"),
        other => other.to_value(),
    }
}

/// The `response_format` for an output format (none for plain text).
pub fn response_format(format: &TextFormat) -> Option<Value> {
    match format {
        TextFormat::Text => None,
        TextFormat::JsonObject => Some(serde_json::json!({"type": "json_object"})),
        TextFormat::JsonSchema { name, schema, description, strict } => {
            let mut json_schema = serde_json::json!({"name": name, "schema": schema});
            if let Some(description) = description {
                json_schema["description"] = Value::from(description.as_str());
            }
            if let Some(strict) = strict {
                json_schema["strict"] = Value::from(*strict);
            }
            Some(serde_json::json!({"type": "json_schema", "json_schema": json_schema}))
        }
    }
}

/// A whole answer (`object: "chat.completion"`, choices with a `message`) or one chunk of a streamed answer
/// (`"chat.completion.chunk"`, choices with a `delta`): `{id, object, created, model, choices, usage}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
pub struct ChatAnswer<C> {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default = "Vec::new", deserialize_with = "nullable")]
    pub choices: Vec<C>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// An error some backends send in place of a chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// A whole answer.
pub type ChatCompletion = ChatAnswer<Choice>;

/// One chunk of a streamed answer.
pub type ChatChunk = ChatAnswer<ChunkChoice>;

/// A choice of a whole answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: AnswerMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
}

/// The assistant message of an answer, or the delta of a chunk: text, reasoning (`reasoning_content`, or
/// `reasoning` as some backends name it) and function calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing)]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub tool_calls: Vec<ToolCallDelta>,
}

impl AnswerMessage {
    /// The reasoning text, whichever field the backend used.
    pub fn reasoning_text(&self) -> Option<&str> {
        [&self.reasoning_content, &self.reasoning].into_iter().flatten().map(String::as_str).find(|r| !r.is_empty())
    }
}

/// A function call, whole (in an answer) or in pieces (in a chunk, where only the first piece has id and name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: FunctionDelta,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A choice of a chunk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: AnswerMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
}

/// `logprobs` of a choice: those of its content tokens (`refusal` ones are not read).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    #[serde(default, deserialize_with = "nullable")]
    pub content: Vec<TokenLogprob>,
}

/// The log probability of one token, with the likeliest tokens in its place: `{token, logprob, bytes,
/// top_logprobs}`, the shape of the Responses API's `output_text` logprobs too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    /// The token's UTF-8 bytes (null on some backends: then the token's own).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "nullable")]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One of the likeliest tokens at a position.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

impl ChoiceLogprobs {
    /// The tokens' log probabilities in the Responses API's shape (`bytes` always given).
    pub fn into_values(self) -> Vec<Value> {
        let bytes = |token: &str, bytes: Option<Vec<u8>>| bytes.unwrap_or_else(|| token.as_bytes().to_vec());
        let value = |token: TokenLogprob| {
            let top: Vec<Value> = token
                .top_logprobs
                .into_iter()
                .map(|top| serde_json::json!({"token": top.token, "logprob": top.logprob, "bytes": bytes(&top.token, top.bytes)}))
                .collect();
            serde_json::json!({"token": token.token, "logprob": token.logprob, "bytes": bytes(&token.token, token.bytes),
                "top_logprobs": top})
        };
        self.content.into_iter().map(value).collect()
    }
}

/// Token usage as backends report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Absent from the partial usage some backends put in every chunk: such a usage is not read.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptDetails {
    #[serde(default, deserialize_with = "nullable")]
    pub cached_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionDetails {
    #[serde(default, deserialize_with = "nullable")]
    pub reasoning_tokens: u64,
}

/// A backend's error body: `{"error":{"message","param","code","type"}}`, `{"error":"…"}` or `{"message":"…"}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: Option<ErrorDetail>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ErrorDetail {
    Text(String),
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        param: Option<String>,
        /// A string, or a number on some backends.
        #[serde(default)]
        code: Option<Value>,
        /// The error's type, a string on every backend known (llama.cpp server names its errors here, its code
        /// being the HTTP status); read as any value, so that an odd one does not lose the rest of the error.
        #[serde(default, rename = "type")]
        kind: Option<Value>,
        /// llama.cpp server's count of the prompt's tokens, in a context overflow.
        #[serde(default)]
        n_prompt_tokens: Option<u64>,
        /// llama.cpp server's context size, in a context overflow.
        #[serde(default)]
        n_ctx: Option<u64>,
    },
}

/// `GET /models`: `{object:"list", data:[…]}`.
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<ModelInfo>,
}

/// A model the backend lists: OpenAI's fields, and whatever else the backend reports (context length…), kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default = "model_object")]
    pub object: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub owned_by: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ModelInfo {
    /// A model known only by its configured name.
    pub fn named(id: &str, owned_by: &str) -> Self {
        Self { id: id.into(), object: model_object(), created: 0, owned_by: owned_by.into(), extra: Map::new() }
    }
}

/// A field that some backends send as `null`: read as its default.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn function_type() -> String {
    "function".into()
}

fn model_object() -> String {
    "model".into()
}
