//! LM Studio's reply body (`model_instance_id`, `output`, `stats`, `response_id`) and its stream events
//! (`chat.start` … `chat.end`), as serde types made from the engine's turn events.

use std::time::Instant;

use axum::body::Bytes;
use futures::{stream, Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::api::sse;
use crate::engine::{DeltaKind, TurnEvent};
use crate::model::{FunctionCall, Item, Response, ResponseStatus};

/// The reply to a chat: `{model_instance_id, output, stats, response_id?}`.
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    model_instance_id: &'a str,
    output: Vec<Output<'a>>,
    stats: Stats,
    /// The stored response's id, which continues the chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_id: Option<&'a str>,
}

/// One entry of a reply's output.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Output<'a> {
    Reasoning { content: String },
    ToolCall { tool: &'a str, arguments: Value, output: &'static str },
    Message { content: String },
}

/// A reply's token counts and speed.
#[derive(Debug, Serialize)]
struct Stats {
    input_tokens: u64,
    total_output_tokens: u64,
    reasoning_output_tokens: u64,
    tokens_per_second: f64,
    time_to_first_token_seconds: f64,
}

/// The reply for a finished response. `elapsed` is the whole turn in seconds; `first_token` the seconds until the
/// first streamed token (for a turn answered at once, the whole turn).
pub fn reply(response: &Response, elapsed: f64, first_token: Option<f64>) -> Reply<'_> {
    let output = response
        .output
        .iter()
        .filter_map(|item| match item {
            Item::Reasoning(_) => Some(Output::Reasoning { content: item.text() }),
            Item::FunctionCall(call) => {
                Some(Output::ToolCall { tool: &call.name, arguments: arguments(call), output: "" })
            }
            Item::Message(_) | Item::FunctionCallOutput(_) => Some(Output::Message { content: item.text() }),
            // LM Studio's format has no compaction: the summary stays server-side.
            Item::Compaction(_) | Item::ItemReference(_) => None,
        })
        .collect();
    let usage = response.usage.unwrap_or_default();
    let first_token = first_token.unwrap_or(elapsed);
    let generating = elapsed - first_token;
    let tokens_per_second = if generating > 0.0 { usage.output_tokens as f64 / generating } else { 0.0 };
    let stats = Stats {
        input_tokens: usage.input_tokens,
        total_output_tokens: usage.output_tokens,
        reasoning_output_tokens: usage.output_tokens_details.reasoning_tokens,
        tokens_per_second,
        time_to_first_token_seconds: first_token,
    };
    let response_id = response.store.then_some(response.id.as_str());
    Reply { model_instance_id: &response.model, output, stats, response_id }
}

/// One event of LM Studio's stream, tagged by its `type` (which its SSE `event:` repeats).
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum ChatEvent<'a> {
    #[serde(rename = "chat.start")]
    ChatStart { model_instance_id: &'a str },
    #[serde(rename = "prompt_processing.start")]
    PromptStart {},
    #[serde(rename = "prompt_processing.end")]
    PromptEnd {},
    #[serde(rename = "tool_call.start")]
    ToolCallStart { tool: &'a str },
    #[serde(rename = "tool_call.arguments")]
    ToolCallArguments { tool: &'a str, arguments: Value },
    #[serde(rename = "message.start")]
    MessageStart {},
    #[serde(rename = "message.delta")]
    MessageDelta { content: &'a str },
    #[serde(rename = "message.end")]
    MessageEnd {},
    #[serde(rename = "reasoning.start")]
    ReasoningStart {},
    #[serde(rename = "reasoning.delta")]
    ReasoningDelta { content: &'a str },
    #[serde(rename = "reasoning.end")]
    ReasoningEnd {},
    #[serde(rename = "error")]
    Error { error: ChatError<'a> },
    #[serde(rename = "chat.end")]
    ChatEnd { result: Reply<'a> },
}

impl ChatEvent<'_> {
    /// Its `type`, which SSE also names the event by.
    fn name(&self) -> &'static str {
        match self {
            ChatEvent::ChatStart { .. } => "chat.start",
            ChatEvent::PromptStart {} => "prompt_processing.start",
            ChatEvent::PromptEnd {} => "prompt_processing.end",
            ChatEvent::ToolCallStart { .. } => "tool_call.start",
            ChatEvent::ToolCallArguments { .. } => "tool_call.arguments",
            ChatEvent::MessageStart {} => "message.start",
            ChatEvent::MessageDelta { .. } => "message.delta",
            ChatEvent::MessageEnd {} => "message.end",
            ChatEvent::ReasoningStart {} => "reasoning.start",
            ChatEvent::ReasoningDelta { .. } => "reasoning.delta",
            ChatEvent::ReasoningEnd {} => "reasoning.end",
            ChatEvent::Error { .. } => "error",
            ChatEvent::ChatEnd { .. } => "chat.end",
        }
    }

    /// The event as its SSE frame.
    fn frame(&self) -> Bytes {
        sse::frame(self.name(), self)
    }
}

/// The error of a failed chat: `{type: "internal_error", message}`.
#[derive(Debug, Serialize)]
struct ChatError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// The frames of LM Studio's event stream for a running turn.
pub fn stream(events: impl Stream<Item = TurnEvent> + Send + 'static, started: Instant) -> impl Stream<Item = Bytes> {
    let mut renderer = Renderer { started, first_token: None, prompt_done: false };
    events.flat_map(move |event| stream::iter(renderer.render(event)))
}

struct Renderer {
    started: Instant,
    first_token: Option<f64>,
    prompt_done: bool,
}

impl Renderer {
    fn render(&mut self, event: TurnEvent) -> Vec<Bytes> {
        let mut out = Vec::new();
        match &event {
            TurnEvent::Created(response) => {
                out.push(ChatEvent::ChatStart { model_instance_id: &response.model }.frame());
                out.push(ChatEvent::PromptStart {}.frame());
            }
            // LM Studio's chats never run in the background; a compaction is not part of its reply.
            TurnEvent::Queued(_)
            | TurnEvent::ItemAdded { item: Item::Compaction(_), .. }
            | TurnEvent::ItemDone { item: Item::Compaction(_), .. } => {}
            TurnEvent::ItemAdded { item, .. } => {
                self.end_prompt(&mut out);
                out.push(match item {
                    Item::FunctionCall(call) => ChatEvent::ToolCallStart { tool: &call.name }.frame(),
                    Item::Reasoning(_) => ChatEvent::ReasoningStart {}.frame(),
                    _ => ChatEvent::MessageStart {}.frame(),
                });
            }
            TurnEvent::Delta { kind, text, .. } => {
                self.first_token.get_or_insert_with(|| self.started.elapsed().as_secs_f64());
                match kind {
                    DeltaKind::Text => out.push(ChatEvent::MessageDelta { content: text }.frame()),
                    DeltaKind::Reasoning => out.push(ChatEvent::ReasoningDelta { content: text }.frame()),
                    // A tool call's arguments are sent whole when it ends.
                    DeltaKind::Arguments => {}
                }
            }
            TurnEvent::ItemDone { item, .. } => out.push(match item {
                Item::FunctionCall(call) => {
                    ChatEvent::ToolCallArguments { tool: &call.name, arguments: arguments(call) }.frame()
                }
                Item::Reasoning(_) => ChatEvent::ReasoningEnd {}.frame(),
                _ => ChatEvent::MessageEnd {}.frame(),
            }),
            TurnEvent::Finished(response) => self.finished(response, &mut out),
        }
        out
    }

    /// The end of the chat: its error, if it failed, and its reply.
    fn finished(&mut self, response: &Response, out: &mut Vec<Bytes>) {
        self.end_prompt(out);
        if response.status == ResponseStatus::Failed {
            let message = response.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default();
            out.push(ChatEvent::Error { error: ChatError { kind: "internal_error", message } }.frame());
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        out.push(ChatEvent::ChatEnd { result: reply(response, elapsed, self.first_token) }.frame());
    }

    fn end_prompt(&mut self, out: &mut Vec<Bytes>) {
        if !self.prompt_done {
            self.prompt_done = true;
            out.push(ChatEvent::PromptEnd {}.frame());
        }
    }
}

/// A call's arguments as the JSON object LM Studio shows (the raw string when it is not JSON).
fn arguments(call: &FunctionCall) -> Value {
    serde_json::from_str(&call.arguments).unwrap_or_else(|_| Value::String(call.arguments.clone()))
}
