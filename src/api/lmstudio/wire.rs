//! LM Studio's reply body (`model_instance_id`, `output`, `stats`, `response_id`) and its stream events
//! (`chat.start` … `chat.end`).

use std::time::Instant;

use axum::body::Bytes;
use futures::{stream, Stream, StreamExt};
use serde_json::{json, Value};

use crate::api::sse;
use crate::engine::{DeltaKind, TurnEvent};
use crate::model::{FunctionCall, Item, Response, ResponseStatus};

/// The reply for a finished response. `elapsed` is the whole turn in seconds; `first_token` the seconds until the
/// first streamed token (for a turn answered at once, the whole turn).
pub fn reply(response: &Response, elapsed: f64, first_token: Option<f64>) -> Value {
    let output: Vec<Value> = response
        .output
        .iter()
        .filter_map(|item| match item {
            Item::Reasoning(_) => Some(json!({"type": "reasoning", "content": item.text()})),
            Item::FunctionCall(call) => {
                Some(json!({"type": "tool_call", "tool": call.name, "arguments": arguments(call), "output": ""}))
            }
            Item::Message(_) | Item::FunctionCallOutput(_) => Some(json!({"type": "message", "content": item.text()})),
            // LM Studio's format has no compaction: the summary stays server-side.
            Item::Compaction(_) | Item::ItemReference(_) => None,
        })
        .collect();
    let usage = response.usage.unwrap_or_default();
    let first_token = first_token.unwrap_or(elapsed);
    let generating = elapsed - first_token;
    let tokens_per_second = if generating > 0.0 { usage.output_tokens as f64 / generating } else { 0.0 };
    let mut body = json!({
        "model_instance_id": response.model,
        "output": output,
        "stats": {
            "input_tokens": usage.input_tokens,
            "total_output_tokens": usage.output_tokens,
            "reasoning_output_tokens": usage.output_tokens_details.reasoning_tokens,
            "tokens_per_second": tokens_per_second,
            "time_to_first_token_seconds": first_token,
        },
    });
    if response.store {
        body["response_id"] = json!(response.id);
    }
    body
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
        match event {
            TurnEvent::Created(response) => {
                out.push(event_frame("chat.start", json!({"model_instance_id": response.model})));
                out.push(event_frame("prompt_processing.start", json!({})));
            }
            // LM Studio's chats never run in the background; a compaction is not part of its reply.
            TurnEvent::Queued(_)
            | TurnEvent::ItemAdded { item: Item::Compaction(_), .. }
            | TurnEvent::ItemDone { item: Item::Compaction(_), .. } => {}
            TurnEvent::ItemAdded { item, .. } => {
                self.end_prompt(&mut out);
                match &item {
                    Item::FunctionCall(call) => out.push(event_frame("tool_call.start", json!({"tool": call.name}))),
                    _ => out.push(event_frame(&format!("{}.start", block(&item)), json!({}))),
                }
            }
            TurnEvent::Delta { kind, text, .. } => {
                self.first_token.get_or_insert_with(|| self.started.elapsed().as_secs_f64());
                match kind {
                    DeltaKind::Text => out.push(event_frame("message.delta", json!({"content": text}))),
                    DeltaKind::Reasoning => out.push(event_frame("reasoning.delta", json!({"content": text}))),
                    // A tool call's arguments are sent whole when it ends.
                    DeltaKind::Arguments => {}
                }
            }
            TurnEvent::ItemDone { item, .. } => match &item {
                Item::FunctionCall(call) => {
                    out.push(event_frame(
                        "tool_call.arguments",
                        json!({"tool": call.name, "arguments": arguments(call)}),
                    ));
                }
                _ => out.push(event_frame(&format!("{}.end", block(&item)), json!({}))),
            },
            TurnEvent::Finished(response) => {
                self.end_prompt(&mut out);
                if response.status == ResponseStatus::Failed {
                    let message = response.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
                    out.push(event_frame("error", json!({"error": {"type": "internal_error", "message": message}})));
                }
                let elapsed = self.started.elapsed().as_secs_f64();
                out.push(event_frame("chat.end", json!({"result": reply(&response, elapsed, self.first_token)})));
            }
        }
        out
    }

    fn end_prompt(&mut self, out: &mut Vec<Bytes>) {
        if !self.prompt_done {
            self.prompt_done = true;
            out.push(event_frame("prompt_processing.end", json!({})));
        }
    }
}

/// A call's arguments as the JSON object LM Studio shows (the raw string when it is not JSON).
fn arguments(call: &FunctionCall) -> Value {
    serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!(call.arguments))
}

fn block(item: &Item) -> &'static str {
    match item {
        Item::Reasoning(_) => "reasoning",
        _ => "message",
    }
}

/// `event: <name>` with a payload that repeats the name in `type`.
fn event_frame(name: &str, payload: Value) -> Bytes {
    let mut data = json!({"type": name});
    if let (Some(data), Value::Object(fields)) = (data.as_object_mut(), payload) {
        data.extend(fields);
    }
    sse::frame(name, &data)
}
