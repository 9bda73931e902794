//! A mock Anthropic Messages API: records every request body with its `x-api-key` and `anthropic-version` headers,
//! and answers with scripted replies, plain or streamed, then `answer to <last user text>` once they run out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::scripted::{named_events, Script};
use super::spawn;

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole message with these content blocks, this stop reason and usage.
    Message { content: Value, stop_reason: &'static str, usage: Value },
    /// These events, each as `event: <type>` and `data: <json>`.
    Stream(Vec<Value>),
    /// This status and body.
    Fail(u16, Value),
}

/// The usage Anthropic reports: uncached input, cache reads and writes, output.
pub fn anthropic_usage(input: u64, read: u64, written: u64, output: u64) -> Value {
    json!({"input_tokens": input, "cache_read_input_tokens": read, "cache_creation_input_tokens": written,
        "output_tokens": output})
}

/// The events of a streamed answer made of `blocks` (each the start block and its deltas), with this stop reason
/// and usage.
pub fn anthropic_stream(blocks: Vec<(Value, Vec<Value>)>, stop_reason: &str, usage: Value) -> Vec<Value> {
    let start_usage = json!({"input_tokens": usage["input_tokens"], "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"], "output_tokens": 1});
    let mut events = vec![json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "content": [], "model": "claude", "stop_reason": null, "usage": start_usage}})];
    events.push(json!({"type": "ping"}));
    for (index, (block, deltas)) in blocks.into_iter().enumerate() {
        events.push(json!({"type": "content_block_start", "index": index, "content_block": block}));
        for delta in deltas {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": usage["output_tokens"]}}));
    events.push(json!({"type": "message_stop"}));
    events
}

/// One request received: its body and the headers that matter.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub api_key: Option<String>,
    pub version: Option<String>,
}

type Recorded = Script<Received, Reply>;

/// A Messages API backend that records what it receives.
#[derive(Clone)]
pub struct AnthropicMock {
    pub url: String,
    state: Arc<Recorded>,
}

impl AnthropicMock {
    pub async fn start() -> Self {
        let state = Arc::new(Recorded::default());
        let router = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(models))
            .with_state(state.clone());
        let addr = spawn(router).await;
        Self { url: format!("http://{addr}/v1"), state }
    }

    /// Answers the next request (after the replies queued before) so.
    pub fn push(&self, reply: Reply) {
        self.state.push(reply);
    }

    /// Every request received so far, emptying the record.
    pub fn take(&self) -> Vec<Received> {
        self.state.take()
    }

    /// The body of the only request received since the last `take`.
    pub fn only_body(&self) -> Value {
        self.state.only().body
    }
}

/// The text of the last user message's last text block.
fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    let blocks = last.and_then(|m| m["content"].as_array().cloned()).unwrap_or_default();
    let text = blocks.iter().rev().find_map(|b| b["text"].as_str().map(str::to_string));
    text.unwrap_or_else(|| "nothing".into())
}

async fn messages(State(state): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap().to_string());
    let received = Received { body: body.clone(), api_key: header("x-api-key"), version: header("anthropic-version") };
    let reply = state.answer(received).unwrap_or_else(|| {
        let text = format!("answer to {}", last_user_text(&body));
        let usage = anthropic_usage(10, 0, 0, 3);
        match body["stream"] == true {
            true => Reply::Stream(anthropic_stream(
                vec![(json!({"type": "text", "text": ""}), vec![json!({"type": "text_delta", "text": text})])],
                "end_turn",
                usage,
            )),
            false => {
                Reply::Message { content: json!([{"type": "text", "text": text}]), stop_reason: "end_turn", usage }
            }
        }
    });
    match reply {
        Reply::Message { content, stop_reason, usage } => Json(json!({"id": "msg_1", "type": "message",
            "role": "assistant", "model": body["model"], "content": content, "stop_reason": stop_reason,
            "stop_sequence": null, "usage": usage}))
        .into_response(),
        Reply::Fail(status, body) => (StatusCode::from_u16(status).unwrap(), Json(body)).into_response(),
        Reply::Stream(events) => named_events(&events),
    }
}

async fn models() -> Json<Value> {
    Json(json!({"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z"}], "has_more": false, "first_id": "claude-sonnet-4-5",
        "last_id": "claude-sonnet-4-5"}))
}
