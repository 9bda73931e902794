//! The Anthropic Messages API wire as serde types: the request threadline builds from a context's chat messages
//! (system prompt apart, strictly alternating roles, prompt-cache breakpoints), and the answer, stream events and
//! model list it reads.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ChatContent, ChatMessage, ChatRole, FinishReason, TokenCounts};
use crate::model::{FunctionTool, ToolChoice};

/// The body of `POST /messages`; `None` fields are left out (the backend's default).
#[derive(Debug, Serialize)]
pub struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Block>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// One message: `user` or `assistant`, with its content blocks.
#[derive(Debug, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Vec<Block>,
}

/// A content block, which may carry a cache breakpoint.
#[derive(Debug, PartialEq, Serialize)]
pub struct Block {
    #[serde(flatten)]
    pub kind: BlockKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

impl From<BlockKind> for Block {
    fn from(kind: BlockKind) -> Self {
        Self { kind, cache_control: None }
    }
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockKind {
    Text { text: String },
    Image { source: Value },
    Document { source: Value },
    ToolUse { id: String, name: String, input: Value },
    ToolResult { tool_use_id: String, content: String },
}

/// `{name, description?, input_schema}`.
#[derive(Debug, Serialize)]
pub struct Tool<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: Value,
}

impl<'a> Tool<'a> {
    pub fn of(tool: &'a FunctionTool) -> Self {
        let schema = tool.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        Self { name: &tool.name, description: tool.description.as_deref(), input_schema: schema }
    }
}

/// `thinking: {type: "enabled", budget_tokens}`.
#[derive(Debug, Serialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub budget_tokens: u64,
}

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// The extended-thinking budget for a reasoning effort: `none` thinks not at all; `minimal` 1024 tokens, `low` 2048,
/// `medium` (and any other value) 8192, `high` 16384, `xhigh` 32768 — at most half of `max_tokens`, and no thinking
/// when that leaves less than Anthropic's minimum of 1024.
pub fn thinking(effort: Option<&str>, max_tokens: u64) -> Option<Thinking> {
    let wanted = match effort? {
        "none" => return None,
        "minimal" => 1024,
        "low" => 2048,
        "high" => 16384,
        "xhigh" => 32768,
        _ => 8192,
    };
    let budget = u64::min(wanted, max_tokens / 2);
    (budget >= MIN_THINKING_BUDGET).then_some(Thinking { kind: "enabled", budget_tokens: budget })
}

/// The Anthropic form of a tool choice; `parallel: false` forbids several calls in one turn.
pub fn tool_choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut value = match choice {
        Some(ToolChoice::Function(name)) => json!({"type": "tool", "name": name}),
        // An `allowed_tools` choice sends only the allowed tools, with `any` or `auto`.
        Some(ToolChoice::Required | ToolChoice::Allowed { required: true, .. }) => json!({"type": "any"}),
        Some(ToolChoice::None) => json!({"type": "none"}),
        Some(ToolChoice::Auto | ToolChoice::Allowed { required: false, .. }) => json!({"type": "auto"}),
        None if parallel == Some(false) => json!({"type": "auto"}),
        None => return None,
    };
    if parallel == Some(false) && value["type"] != "none" {
        value["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(value)
}

/// A context's system prompt and messages, with the cache breakpoints `cache` asks for: on the system prompt and on
/// the last block of the first `stable` messages. Consecutive messages of one role become one message; an
/// assistant's function calls become `tool_use` blocks (their arguments must be JSON), function outputs
/// `tool_result` blocks of a user message.
pub fn conversation<'a>(
    messages: impl IntoIterator<Item = &'a ChatMessage>,
    stable: usize,
    cache: bool,
) -> Result<(Vec<Block>, Vec<Message>), String> {
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    // The (message, block) of the last block from the stable prefix.
    let mut breakpoint = None;
    for (i, message) in messages.into_iter().enumerate() {
        if matches!(message.role, ChatRole::System | ChatRole::Developer) {
            system.push(message.content_text());
            continue;
        }
        let (role, blocks) = message_blocks(message)?;
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(Message { role, content: blocks }),
        }
        if i < stable {
            breakpoint = Some((out.len() - 1, out.last().map_or(0, |m| m.content.len() - 1)));
        }
    }
    let mut system: Vec<Block> = match system.is_empty() {
        true => Vec::new(),
        false => vec![BlockKind::Text { text: system.join("\n\n") }.into()],
    };
    if cache {
        let ephemeral = || Some(json!({"type": "ephemeral"}));
        if let Some(block) = system.first_mut() {
            block.cache_control = ephemeral();
        }
        if let Some((m, b)) = breakpoint {
            out[m].content[b].cache_control = ephemeral();
        }
    }
    Ok((system, out))
}

/// The role and blocks of a user, tool or assistant message (system and developer messages, which `conversation`
/// joins into the system prompt, read as user text here).
fn message_blocks(message: &ChatMessage) -> Result<(&'static str, Vec<Block>), String> {
    match message.role {
        ChatRole::User | ChatRole::System | ChatRole::Developer => Ok(("user", content_blocks(&message.content))),
        ChatRole::Tool => {
            let id = message.tool_call_id.clone().unwrap_or_default();
            let result = BlockKind::ToolResult { tool_use_id: id, content: message.content_text() };
            Ok(("user", vec![result.into()]))
        }
        ChatRole::Assistant => {
            let mut blocks = content_blocks(&message.content);
            for call in &message.tool_calls {
                let arguments = call.function.arguments.trim();
                let input: Value = match arguments.is_empty() {
                    true => json!({}),
                    false => serde_json::from_str(arguments)
                        .map_err(|err| format!("the arguments of function call {} are not JSON ({err})", call.id))?,
                };
                let name = call.function.name.clone();
                blocks.push(BlockKind::ToolUse { id: call.id.clone(), name, input }.into());
            }
            Ok(("assistant", blocks))
        }
    }
}

/// Whether the conversation ends answering function calls: its last message holds a `tool_result`.
pub fn continues_tool_use(messages: &[Message]) -> bool {
    let last = messages.last().filter(|message| message.role == "user");
    last.is_some_and(|message| message.content.iter().any(|block| matches!(block.kind, BlockKind::ToolResult { .. })))
}

/// A message's content as blocks: text, images (`image_url` parts) and files (`file` parts, as documents).
fn content_blocks(content: &ChatContent) -> Vec<Block> {
    let text = |text: &str| (!text.is_empty()).then(|| BlockKind::Text { text: text.to_string() }.into());
    match content {
        ChatContent::Null => Vec::new(),
        ChatContent::Text(t) => text(t).into_iter().collect(),
        ChatContent::Parts(parts) => parts
            .iter()
            .filter_map(|part| match part["type"].as_str() {
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().or(part["image_url"].as_str()).unwrap_or_default();
                    Some(BlockKind::Image { source: source(url) }.into())
                }
                Some("file") => {
                    let data = part["file"]["file_data"].as_str().unwrap_or_default();
                    Some(BlockKind::Document { source: source(data) }.into())
                }
                _ => text(part["text"].as_str().unwrap_or_default()),
            })
            .collect(),
    }
}

/// The source of an image or document: a `data:` URL as base64 data, any other URL as itself.
fn source(url: &str) -> Value {
    let inline = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,"));
    match inline {
        Some((media_type, data)) => json!({"type": "base64", "media_type": media_type, "data": data}),
        None => json!({"type": "url", "url": url}),
    }
}

/// A whole answer.
#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub content: Vec<AnswerBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A content block of an answer (or the start of one in a stream).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnswerBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Token usage: the uncached input, what was read from and written to the cache, and the output.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
}

impl Usage {
    /// This usage updated by a later one (a stream's `message_delta`): the fields it reports replace these.
    pub fn update(self, later: Usage) -> Usage {
        Usage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            cache_read_input_tokens: later.cache_read_input_tokens.or(self.cache_read_input_tokens),
            cache_creation_input_tokens: later.cache_creation_input_tokens.or(self.cache_creation_input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
        }
    }

    /// As threadline counts it: the input includes what was read from and written to the cache.
    pub fn counts(self) -> TokenCounts {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        TokenCounts {
            input: self.input_tokens.unwrap_or(0) + read + written,
            output: self.output_tokens.unwrap_or(0),
            cached: read,
            reasoning: 0,
            cache_write: written,
        }
    }
}

/// Why the model stopped, by Anthropic's name.
pub fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// One event of a streamed answer.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: AnswerBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    /// `ping`, and any event type added later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct StartMessage {
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `signature_delta`, and any delta type added later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: String,
}

/// `GET /models`: `{data: [{id, display_name, created_at, …}]}`.
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<Model>,
}

#[derive(Debug, Deserialize)]
pub struct Model {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{ChatFunction, ChatToolCall};

    fn call(id: &str, arguments: &str) -> ChatMessage {
        let function = ChatFunction { name: "f".into(), arguments: arguments.into() };
        let tool_call = ChatToolCall { id: id.into(), kind: "function".into(), function };
        ChatMessage { tool_calls: vec![tool_call], ..ChatMessage::text(ChatRole::Assistant, "") }
    }

    fn output(id: &str, text: &str) -> ChatMessage {
        ChatMessage { tool_call_id: Some(id.into()), ..ChatMessage::text(ChatRole::Tool, text) }
    }

    #[test]
    fn outputs_join_the_next_user_message_and_the_breakpoint_ends_the_stable_prefix() {
        let messages = [
            ChatMessage::text(ChatRole::System, "a"),
            ChatMessage::text(ChatRole::User, "hi"),
            call("c1", r#"{"x":1}"#),
            call("c2", ""),
            output("c1", "one"),
            output("c2", "two"),
            ChatMessage::text(ChatRole::Developer, "b"),
            ChatMessage::text(ChatRole::User, "next"),
        ];
        let (system, out) = conversation(&messages, 5, true).unwrap();
        let json = serde_json::to_value((&system, &out)).unwrap();
        let cache = json!({"type": "ephemeral"});
        assert_eq!(
            json,
            json!([
                [{"type": "text", "text": "a\n\nb", "cache_control": cache}],
                [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}},
                        {"type": "tool_use", "id": "c2", "name": "f", "input": {}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "c1", "content": "one", "cache_control": cache},
                        {"type": "tool_result", "tool_use_id": "c2", "content": "two"},
                        {"type": "text", "text": "next"}]},
                ]
            ])
        );
        let (system, out) = conversation(&messages[1..6], 0, true).unwrap();
        assert!(system.is_empty());
        assert!(out.iter().flat_map(|m| &m.content).all(|block| block.cache_control.is_none()));
    }

    #[test]
    fn arguments_that_are_not_json_are_refused() {
        let err = conversation(&[call("c1", "{oops")], 0, true).unwrap_err();
        assert!(err.starts_with("the arguments of function call c1 are not JSON"), "{err}");
    }

    #[test]
    fn effort_maps_to_a_thinking_budget_below_max_tokens_and_choices_map() {
        let budget = |effort, max| thinking(Some(effort), max).map(|t| t.budget_tokens);
        assert_eq!(budget("minimal", 4096), Some(1024));
        assert_eq!(budget("medium", 64000), Some(8192));
        assert_eq!(budget("high", 64000), Some(16384));
        assert_eq!(budget("high", 4096), Some(2048));
        assert_eq!(budget("low", 2000), None);
        assert_eq!(budget("none", 64000), None);
        assert!(thinking(None, 64000).is_none());
        assert_eq!(tool_choice(Some(&ToolChoice::Auto), None), Some(json!({"type": "auto"})));
        let named = tool_choice(Some(&ToolChoice::Function("f".into())), Some(false));
        assert_eq!(named, Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})));
        assert_eq!(tool_choice(Some(&ToolChoice::None), Some(false)), Some(json!({"type": "none"})));
        assert_eq!(tool_choice(None, Some(false)), Some(json!({"type": "auto", "disable_parallel_tool_use": true})));
        assert_eq!(tool_choice(None, Some(true)), None);
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_input() {
        let usage: Usage = serde_json::from_value(json!({"input_tokens": 3, "cache_read_input_tokens": 50,
            "cache_creation_input_tokens": null, "output_tokens": 4}))
        .unwrap();
        let counts = usage.update(Usage { cache_creation_input_tokens: Some(7), ..Usage::default() }).counts();
        assert_eq!(counts, TokenCounts { input: 60, output: 4, cached: 50, reasoning: 0, cache_write: 7 });
        assert_eq!(finish_reason(Some("refusal")), FinishReason::ContentFilter);
        assert_eq!(finish_reason(Some("stop_sequence")), FinishReason::Stop);
        assert_eq!(finish_reason(Some("max_tokens")), FinishReason::Length);
    }
}
