//! A mock Responses API backend: records every request body, and answers with scripted replies, whole or streamed,
//! then `answer to <last user text>` once they run out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::scripted::{named_events, Script};
use super::spawn;

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole response with these output items and this usage (`status` completed unless `incomplete` is given).
    Answer { output: Value, usage: Value, incomplete: Option<&'static str> },
    /// These events, each as `event: <type>` and `data: <json>`.
    Stream(Vec<Value>),
    /// This status and body.
    Fail(u16, Value),
}

/// The usage the Responses API reports.
pub fn responses_usage(input: u64, cached: u64, output: u64, reasoning: u64) -> Value {
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": input + output})
}

/// The events of a streamed response made of `items`: each the item as it is done and the delta events (type and
/// delta) streamed for it; then `response.completed` with this usage.
pub fn responses_stream(items: Vec<(Value, Vec<(&str, &str)>)>, usage: Value) -> Vec<Value> {
    let mut events = vec![json!({"type": "response.created", "response": {"id": "resp_up", "status": "in_progress"}})];
    let mut output = Vec::new();
    for (index, (item, deltas)) in items.into_iter().enumerate() {
        let mut added = item.clone();
        for (key, empty) in [("content", json!([])), ("arguments", json!("")), ("summary", json!([]))] {
            if added.get(key).is_some() {
                added[key] = empty;
            }
        }
        if let Some(object) = added.as_object_mut() {
            object.remove("encrypted_content");
        }
        events.push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
        for (kind, delta) in deltas {
            events.push(json!({"type": kind, "output_index": index, "item_id": item["id"], "delta": delta}));
        }
        events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
        output.push(item);
    }
    events.push(json!({"type": "response.completed", "response": {"id": "resp_up", "status": "completed",
        "output": output, "usage": usage}}));
    events
}

type Recorded = Script<Value, Reply>;

/// A Responses API backend that records what it receives.
#[derive(Clone)]
pub struct ResponsesMock {
    pub url: String,
    state: Arc<Recorded>,
}

impl ResponsesMock {
    pub async fn start() -> Self {
        let state = Arc::new(Recorded::default());
        let router = Router::new()
            .route("/v1/responses", post(responses))
            .route("/v1/models", get(|| async { Json(json!({"object": "list", "data": [{"id": "gpt-up", "object": "model", "created": 1, "owned_by": "up"}]})) }))
            .with_state(state.clone());
        let addr = spawn(router).await;
        Self { url: format!("http://{addr}/v1"), state }
    }

    /// Answers the next request (after the replies queued before) so.
    pub fn push(&self, reply: Reply) {
        self.state.push(reply);
    }

    /// The body of the only request received since the last call.
    pub fn only_body(&self) -> Value {
        self.state.only()
    }
}

/// The text of the last user message.
fn last_user_text(body: &Value) -> String {
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let last = input.iter().rev().find(|item| item["role"] == "user");
    last.and_then(|item| item["content"].as_str()).unwrap_or("nothing").to_string()
}

async fn responses(State(state): State<Arc<Recorded>>, Json(body): Json<Value>) -> Response {
    let reply = state.answer(body.clone()).unwrap_or_else(|| {
        let text = format!("answer to {}", last_user_text(&body));
        let message = json!({"type": "message", "id": "msg_up", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]});
        let usage = responses_usage(10, 0, 3, 0);
        match body["stream"] == true {
            true => {
                Reply::Stream(responses_stream(vec![(message, vec![("response.output_text.delta", &text)])], usage))
            }
            false => Reply::Answer { output: json!([message]), usage, incomplete: None },
        }
    });
    match reply {
        Reply::Answer { output, usage, incomplete } => {
            let status = if incomplete.is_some() { "incomplete" } else { "completed" };
            let details = incomplete.map(|reason| json!({"reason": reason}));
            Json(json!({"id": "resp_up", "object": "response", "status": status, "model": body["model"],
                "output": output, "usage": usage, "incomplete_details": details, "error": null}))
            .into_response()
        }
        Reply::Fail(status, body) => (StatusCode::from_u16(status).unwrap(), Json(body)).into_response(),
        Reply::Stream(events) => named_events(&events),
    }
}
