//! The Responses API wire as serde types, for the `responses` upstream: the request threadline sends (the context
//! as `input`, `store: false`), the answer and stream events it reads, and Chat Completions messages turned into
//! input items for the requests that come as messages (a compaction's summary, the stateless chat surface).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ChatContent, ChatMessage, ChatRole, FinishReason, Parameters, PromptCacheOptions, Runs, TokenCounts};
use crate::model::{ContentPart, Phase, ReasoningText, Role, TextFormat, ToolChoice, ToolOutput};

/// The body of `POST /responses`; `None` fields are left out (the backend's default).
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    pub input: Input<'a>,
    pub model: &'a str,
    /// threadline keeps the conversation: the backend stores nothing and is not asked to continue anything.
    pub store: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// The reasoning's opaque form comes back with each reasoning item, so a later turn can send it back (and the
    /// text's log probabilities, when asked for).
    pub include: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_retention: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_options: Option<&'a PromptCacheOptions>,
}

impl<'a> RequestBody<'a> {
    /// The body for `model` with these parameters. Tools go as they are and an `allowed_tools` choice as such: the
    /// backend takes both natively.
    pub fn new(input: Input<'a>, model: &'a str, p: &'a Parameters, stream: bool) -> Self {
        let reasoning = p.reasoning_effort.as_ref().map(|effort| json!({"effort": effort}));
        let mut text = serde_json::Map::new();
        if p.text_format != TextFormat::Text {
            text.insert("format".into(), p.text_format.to_value());
        }
        if let Some(verbosity) = &p.verbosity {
            text.insert("verbosity".into(), json!(verbosity));
        }
        let tools = p.tools.iter().map(|tool| {
            let mut wire = json!({"type": "function", "name": tool.name});
            for (key, value) in [
                ("description", tool.description.as_ref().map(|d| json!(d))),
                ("parameters", tool.parameters.clone()),
                ("strict", tool.strict.map(|s| json!(s))),
            ] {
                if let Some(value) = value {
                    wire[key] = value;
                }
            }
            wire
        });
        let has_tools = !p.tools.is_empty();
        Self {
            input,
            model,
            store: false,
            stream,
            include: [Some("reasoning.encrypted_content"), p.logprobs.then_some("message.output_text.logprobs")]
                .into_iter()
                .flatten()
                .collect(),
            top_logprobs: p.top_logprobs.filter(|_| p.logprobs),
            temperature: p.temperature,
            top_p: p.top_p,
            max_output_tokens: p.max_output_tokens,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            reasoning,
            text: (!text.is_empty()).then_some(Value::Object(text)),
            tools: tools.collect(),
            tool_choice: p.tool_choice.as_ref().filter(|_| has_tools).map(ToolChoice::to_value),
            parallel_tool_calls: p.parallel_tool_calls.filter(|_| has_tools),
            max_tool_calls: p.max_tool_calls,
            user: p.user.as_deref(),
            safety_identifier: p.safety_identifier.as_deref(),
            prompt_cache_key: p.prompt_cache_key.as_deref(),
            prompt_cache_retention: p.prompt_cache_retention.as_deref(),
            prompt_cache_options: p.prompt_cache_options.as_ref(),
        }
    }
}

/// A response, whole (or as `response.completed` and the like carry it).
#[derive(Debug, Default, Deserialize)]
pub struct Answer {
    #[serde(default)]
    pub output: Vec<OutputItem>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub incomplete_details: Option<Incomplete>,
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

impl Answer {
    /// Why it stopped: cut short as `incomplete_details` says, else with function calls if it made any.
    pub fn finish_reason(&self, made_calls: bool) -> FinishReason {
        match self.incomplete_details.as_ref().map(|details| details.reason.as_str()) {
            Some("content_filter") => FinishReason::ContentFilter,
            Some(_) => FinishReason::Length,
            None if made_calls => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        }
    }

    /// Why it failed (`status: failed`), if it did.
    pub fn failure(&self) -> Option<String> {
        let failed = self.status.as_deref() == Some("failed") || self.error.is_some();
        failed.then(|| self.error.as_ref().map_or_else(|| "the response failed".to_string(), |e| e.message.clone()))
    }
}

#[derive(Debug, Deserialize)]
pub struct Incomplete {
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: String,
}

/// An output item; kinds threadline does not take (hosted tools' calls) are `Other`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<Part>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    Reasoning {
        #[serde(default)]
        summary: Vec<Part>,
        #[serde(default)]
        content: Vec<Part>,
        #[serde(default)]
        encrypted_content: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// A text part of an output item: `output_text` (with its log probabilities when asked for), `refusal`,
/// `summary_text` or `reasoning_text`.
#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    logprobs: Vec<Value>,
}

/// The log probabilities of parts' tokens, in order.
pub fn logprobs_of(parts: &[Part]) -> Vec<Value> {
    logprobs(parts.iter().flat_map(|part| part.logprobs.iter().cloned()).collect())
}

/// Log probabilities as threadline keeps them: each token's and each top token's `bytes` (its UTF-8) added where
/// the backend left it out, as streamed deltas do.
pub fn logprobs(mut entries: Vec<Value>) -> Vec<Value> {
    fn with_bytes(entry: &mut Value) {
        if entry.get("bytes").is_none_or(Value::is_null) {
            let bytes = entry["token"].as_str().map(|token| json!(token.as_bytes())).unwrap_or(json!([]));
            entry["bytes"] = bytes;
        }
    }
    for entry in &mut entries {
        with_bytes(entry);
        if let Some(top) = entry.get_mut("top_logprobs").and_then(Value::as_array_mut) {
            top.iter_mut().for_each(with_bytes);
        }
    }
    entries
}

/// The text of parts, joined.
pub fn text_of(parts: &[Part]) -> String {
    parts.iter().filter_map(|part| part.text.as_deref().or(part.refusal.as_deref())).collect()
}

/// The texts of parts, one each.
pub fn texts_of(parts: &[Part]) -> Vec<String> {
    parts.iter().filter_map(|part| part.text.clone()).collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InputDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct OutputDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn counts(&self) -> TokenCounts {
        TokenCounts {
            input: self.input_tokens,
            output: self.output_tokens,
            cached: self.input_tokens_details.as_ref().map_or(0, |d| d.cached_tokens),
            reasoning: self.output_tokens_details.as_ref().map_or(0, |d| d.reasoning_tokens),
            cache_write: 0,
        }
    }
}

/// A streamed event; the ones threadline needs nothing from are `Other`. An event may lack its `output_index`
/// (llama.cpp's server sends none): it is then about the latest item added.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        #[serde(default)]
        output_index: Option<usize>,
        item: OutputItem,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        #[serde(default)]
        output_index: Option<usize>,
        item: OutputItem,
    },
    #[serde(rename = "response.output_text.delta", alias = "response.refusal.delta")]
    TextDelta {
        #[serde(default)]
        output_index: Option<usize>,
        delta: String,
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    #[serde(rename = "response.reasoning_text.delta")]
    ReasoningDelta {
        #[serde(default)]
        output_index: Option<usize>,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        #[serde(default)]
        output_index: Option<usize>,
        delta: String,
    },
    #[serde(rename = "response.completed", alias = "response.incomplete", alias = "response.failed")]
    Ended { response: Answer },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        message: String,
    },
    #[serde(other)]
    Other,
}

/// A request's `input`: its context's items, or items made from its messages.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Input<'a> {
    Context(&'a Runs<InputItem>),
    Messages(Vec<InputItem>),
}

/// One input item of a request's context.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    /// A message: its text as a string when it is all text, else its parts; an assistant's phase kept.
    Message {
        role: Role,
        content: InputContent,
        #[serde(skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    /// Reasoning, sent back in the backend's own opaque form.
    Reasoning {
        id: String,
        summary: Vec<Value>,
        encrypted_content: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<ReasoningText>,
    },
}

impl InputItem {
    /// A message of plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        InputItem::Message { role, content: InputContent::Text(text.into()), phase: None }
    }
}

/// A message's content: a string, or content parts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Chat Completions messages as input items.
pub fn chat_input<'a>(messages: impl Iterator<Item = &'a ChatMessage>) -> Vec<InputItem> {
    let mut items = Vec::new();
    for message in messages {
        if message.role == ChatRole::Tool {
            let call_id = message.tool_call_id.clone().unwrap_or_default();
            items.push(InputItem::FunctionCallOutput { call_id, output: ToolOutput::Text(message.content_text()) });
            continue;
        }
        let role = match message.role {
            ChatRole::System => Role::System,
            ChatRole::Assistant => Role::Assistant,
            _ => Role::User,
        };
        let content = match &message.content {
            ChatContent::Parts(parts) if role == Role::User => {
                Some(InputContent::Parts(parts.iter().map(input_part).collect()))
            }
            ChatContent::Null => None,
            _ => Some(message.content_text()).filter(|text| !text.is_empty()).map(InputContent::Text),
        };
        let empty = || message.tool_calls.is_empty().then(|| InputContent::Text(String::new()));
        if let Some(content) = content.or_else(empty) {
            items.push(InputItem::Message { role, content, phase: None });
        }
        items.extend(message.tool_calls.iter().map(|call| InputItem::FunctionCall {
            call_id: call.id.clone(),
            name: call.function.name.clone(),
            arguments: call.function.arguments.clone(),
        }));
    }
    items
}

/// A Chat Completions content part as an input part.
fn input_part(part: &Value) -> ContentPart {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    match part.get("type").and_then(Value::as_str) {
        Some("image_url") => {
            let image = &part["image_url"];
            let url = image.get("url").unwrap_or(image);
            let detail = image.get("detail").and_then(Value::as_str).unwrap_or("auto");
            ContentPart::InputImage { image_url: text(url), detail: detail.to_string() }
        }
        Some("file") => {
            let file = &part["file"];
            let filename = file.get("filename").and_then(Value::as_str).map(str::to_string);
            ContentPart::InputFile { filename, file_data: text(&file["file_data"]) }
        }
        _ => ContentPart::InputText { text: text(&part["text"]) },
    }
}
