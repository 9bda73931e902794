//! Rendering turn events as the Responses API's SSE events (reference §3): `event:` equal to `type`,
//! `sequence_number` from 0, then `data: [DONE]`. A WebSocket sends the same events, one text frame each.

use axum::body::Bytes;
use axum::response::Response as HttpResponse;
use futures::{stream, Stream, StreamExt};
use serde_json::{json, Value};

use crate::api::sse;
use crate::engine::{DeltaKind, TurnEvent};
use crate::model::{Item, Response, ResponseStatus};

/// The SSE response for a turn's events; events numbered up to `starting_after` are left out.
pub fn into_sse(events: impl Stream<Item = TurnEvent> + Send + 'static, starting_after: Option<u64>) -> HttpResponse {
    let mut sequence_number = 0u64;
    let frames = events
        .flat_map(move |event| {
            let frames: Vec<Bytes> = numbered(event, &mut sequence_number)
                .into_iter()
                .filter_map(|wire| {
                    let n = wire["sequence_number"].as_u64().unwrap_or_default();
                    let name = wire["type"].as_str().unwrap_or_default().to_string();
                    starting_after.is_none_or(|after| n > after).then(|| sse::frame(&name, &wire))
                })
                .collect();
            stream::iter(frames)
        })
        .chain(stream::once(async { Bytes::from_static(b"data: [DONE]\n\n") }));
    sse::response(frames)
}

/// The wire events for one turn event, numbered on from `sequence_number` (the SSE stream's, and a WebSocket's
/// text frames).
pub fn numbered(event: TurnEvent, sequence_number: &mut u64) -> Vec<Value> {
    let mut events = wire_events(event);
    for wire in &mut events {
        wire["sequence_number"] = json!(*sequence_number);
        *sequence_number += 1;
    }
    events
}

/// The wire events (without sequence numbers) for one turn event.
fn wire_events(event: TurnEvent) -> Vec<Value> {
    match event {
        TurnEvent::Queued(response) => vec![
            json!({"type": "response.created", "response": response}),
            json!({"type": "response.queued", "response": response}),
        ],
        // A background response announced its creation when it was queued.
        TurnEvent::Created(response) if response.background => {
            vec![json!({"type": "response.in_progress", "response": response})]
        }
        TurnEvent::Created(response) => vec![
            json!({"type": "response.created", "response": response}),
            json!({"type": "response.in_progress", "response": response}),
        ],
        TurnEvent::ItemAdded { index, item } => {
            let added = json!({"type": "response.output_item.added", "output_index": index, "item": item});
            match part(&item, "") {
                Some(part) => vec![
                    added,
                    json!({"type": "response.content_part.added", "item_id": item.id(), "output_index": index,
                        "content_index": 0, "part": part}),
                ],
                None => vec![added],
            }
        }
        TurnEvent::Delta { index, item_id, kind: DeltaKind::Text, text, logprobs } => vec![json!({
            "type": "response.output_text.delta", "item_id": item_id, "output_index": index, "content_index": 0,
            "delta": text, "logprobs": event_logprobs(&logprobs),
        })],
        TurnEvent::Delta { index, item_id, kind: DeltaKind::Reasoning, text, .. } => vec![json!({
            "type": "response.reasoning_text.delta", "item_id": item_id, "output_index": index, "content_index": 0,
            "delta": text,
        })],
        TurnEvent::Delta { index, item_id, kind: DeltaKind::Arguments, text, .. } => vec![json!({
            "type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": index,
            "delta": text,
        })],
        TurnEvent::ItemDone { index, item } => item_done(index, &item),
        TurnEvent::Finished(response) => finished(response),
    }
}

/// The events that close output item `index`: its text or arguments done, its content part done, the item done.
fn item_done(index: usize, item: &Item) -> Vec<Value> {
    let text = item.text();
    let id = item.id();
    let mut events = match item {
        Item::Message(_) => vec![json!({"type": "response.output_text.done", "item_id": id,
            "output_index": index, "content_index": 0, "text": text, "logprobs": event_logprobs(item.logprobs())})],
        Item::Reasoning(_) => vec![json!({"type": "response.reasoning_text.done", "item_id": id,
            "output_index": index, "content_index": 0, "text": text})],
        Item::FunctionCall(call) => vec![json!({"type": "response.function_call_arguments.done",
            "item_id": id, "output_index": index, "name": call.name, "arguments": text})],
        Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => Vec::new(),
    };
    if let Some(part) = part(item, &text) {
        events.push(json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
            "content_index": 0, "part": part}));
    }
    events.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
    events
}

/// The terminal events: `response.completed`, `response.incomplete`, or `error` then `response.failed`; a cancelled
/// response ends with `response.failed` alone (the API has no event of its own for it; its status says cancelled).
fn finished(response: Response) -> Vec<Value> {
    match response.status {
        ResponseStatus::Cancelled => vec![json!({"type": "response.failed", "response": response})],
        ResponseStatus::Failed => {
            let (code, message) = response.error.clone().map(|e| (e.code, e.message)).unwrap_or_default();
            vec![
                json!({"type": "error", "error": {"type": "server_error", "code": code, "message": message, "param": null}}),
                json!({"type": "response.failed", "response": response}),
            ]
        }
        ResponseStatus::Incomplete => vec![json!({"type": "response.incomplete", "response": response})],
        _ => vec![json!({"type": "response.completed", "response": response})],
    }
}

/// The content part of a message or reasoning item with the given text (and a message's log probabilities); other
/// items have none.
fn part(item: &Item, text: &str) -> Option<Value> {
    match item {
        Item::Message(_) => {
            Some(json!({"type": "output_text", "text": text, "annotations": [], "logprobs": item.logprobs()}))
        }
        Item::Reasoning(_) => Some(json!({"type": "reasoning_text", "text": text})),
        Item::FunctionCall(_) | Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => None,
    }
}

/// Log probabilities as the text events carry them: `{token, logprob, top_logprobs:[{token, logprob}]}`, without
/// the `bytes` an `output_text` part's have (OpenAI's `ResponseLogProb`).
fn event_logprobs(logprobs: &[Value]) -> Value {
    let strip = |logprob: &Value| {
        let mut logprob = logprob.clone();
        if let Some(fields) = logprob.as_object_mut() {
            fields.remove("bytes");
        }
        logprob
    };
    let each = |logprob: &Value| {
        let mut logprob = strip(logprob);
        if let Some(top) = logprob.get_mut("top_logprobs").and_then(Value::as_array_mut) {
            *top = top.iter().map(strip).collect();
        }
        logprob
    };
    Value::Array(logprobs.iter().map(each).collect())
}
