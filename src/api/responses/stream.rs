//! The Responses API's stream events (reference §3) as one serde type, made once from each turn event and rendered
//! by each surface: as SSE (`event:` equal to `type`, `sequence_number` from 0, then `data: [DONE]`), or as a
//! WebSocket's text frames.

use axum::body::Bytes;
use axum::response::Response as HttpResponse;
use futures::{stream, Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::api::sse;
use crate::engine::{DeltaKind, TurnEvent};
use crate::model::{Item, Response, ResponseStatus};

/// One stream event of a response, tagged by its `type`, its fields in the order the wire has them.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type")]
pub enum StreamEvent<'a> {
    #[serde(rename = "response.created")]
    Created { response: &'a Response },
    #[serde(rename = "response.queued")]
    Queued { response: &'a Response },
    #[serde(rename = "response.in_progress")]
    InProgress { response: &'a Response },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: usize, item: &'a Item },
    #[serde(rename = "response.content_part.added")]
    PartAdded { item_id: &'a str, output_index: usize, content_index: usize, part: Part<'a> },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { item_id: &'a str, output_index: usize, content_index: usize, delta: &'a str, logprobs: Vec<Value> },
    #[serde(rename = "response.reasoning_text.delta")]
    ReasoningDelta { item_id: &'a str, output_index: usize, content_index: usize, delta: &'a str },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta { item_id: &'a str, output_index: usize, delta: &'a str },
    #[serde(rename = "response.output_text.done")]
    TextDone { item_id: &'a str, output_index: usize, content_index: usize, text: String, logprobs: Vec<Value> },
    #[serde(rename = "response.reasoning_text.done")]
    ReasoningDone { item_id: &'a str, output_index: usize, content_index: usize, text: String },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone { item_id: &'a str, output_index: usize, name: &'a str, arguments: String },
    #[serde(rename = "response.content_part.done")]
    PartDone { item_id: &'a str, output_index: usize, content_index: usize, part: Part<'a> },
    #[serde(rename = "response.output_item.done")]
    ItemDone { output_index: usize, item: &'a Item },
    #[serde(rename = "response.completed")]
    Completed { response: &'a Response },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: &'a Response },
    #[serde(rename = "response.failed")]
    Failed { response: &'a Response },
    #[serde(rename = "error")]
    Error { error: StreamError<'a> },
}

impl StreamEvent<'_> {
    /// Its `type`, which SSE also names the event by.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::Queued { .. } => "response.queued",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::ItemAdded { .. } => "response.output_item.added",
            StreamEvent::PartAdded { .. } => "response.content_part.added",
            StreamEvent::TextDelta { .. } => "response.output_text.delta",
            StreamEvent::ReasoningDelta { .. } => "response.reasoning_text.delta",
            StreamEvent::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            StreamEvent::TextDone { .. } => "response.output_text.done",
            StreamEvent::ReasoningDone { .. } => "response.reasoning_text.done",
            StreamEvent::ArgumentsDone { .. } => "response.function_call_arguments.done",
            StreamEvent::PartDone { .. } => "response.content_part.done",
            StreamEvent::ItemDone { .. } => "response.output_item.done",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Incomplete { .. } => "response.incomplete",
            StreamEvent::Failed { .. } => "response.failed",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// The content part of a message (with its log probabilities) or of a reasoning item.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    OutputText { text: String, annotations: [(); 0], logprobs: &'a [Value] },
    ReasoningText { text: String },
}

/// The error a failed response's stream carries before `response.failed`.
#[derive(Clone, Debug, Serialize)]
pub struct StreamError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
}

/// A stream event with its place in the stream.
#[derive(Clone, Debug, Serialize)]
pub struct Numbered<'a> {
    #[serde(flatten)]
    pub event: StreamEvent<'a>,
    pub sequence_number: u64,
}

/// The SSE response for a turn's events; events numbered up to `starting_after` are left out.
pub fn into_sse(events: impl Stream<Item = TurnEvent> + Send + 'static, starting_after: Option<u64>) -> HttpResponse {
    let mut sequence_number = 0u64;
    let frames = events
        .flat_map(move |event| {
            let frames: Vec<Bytes> = numbered(&event, &mut sequence_number)
                .into_iter()
                .filter(|numbered| starting_after.is_none_or(|after| numbered.sequence_number > after))
                .map(|numbered| sse::frame(numbered.event.name(), &numbered))
                .collect();
            stream::iter(frames)
        })
        .chain(stream::once(async { Bytes::from_static(b"data: [DONE]\n\n") }));
    sse::response(frames)
}

/// The stream events for one turn event, numbered on from `sequence_number` (the SSE stream's, and a WebSocket's
/// text frames).
pub fn numbered<'a>(event: &'a TurnEvent, sequence_number: &mut u64) -> Vec<Numbered<'a>> {
    let events = stream_events(event);
    let first = *sequence_number;
    *sequence_number += events.len() as u64;
    (first..).zip(events).map(|(sequence_number, event)| Numbered { event, sequence_number }).collect()
}

/// The stream events (without sequence numbers) for one turn event.
fn stream_events(event: &TurnEvent) -> Vec<StreamEvent<'_>> {
    match event {
        TurnEvent::Queued(response) => vec![StreamEvent::Created { response }, StreamEvent::Queued { response }],
        // A background response announced its creation when it was queued.
        TurnEvent::Created(response) if response.background => vec![StreamEvent::InProgress { response }],
        TurnEvent::Created(response) => {
            vec![StreamEvent::Created { response }, StreamEvent::InProgress { response }]
        }
        TurnEvent::ItemAdded { index, item } => item_added(*index, item),
        TurnEvent::Delta { index, item_id, kind, text, logprobs } => {
            let (item_id, output_index, delta) = (item_id.as_str(), *index, text.as_str());
            vec![match kind {
                DeltaKind::Text => StreamEvent::TextDelta {
                    item_id,
                    output_index,
                    content_index: 0,
                    delta,
                    logprobs: event_logprobs(logprobs),
                },
                DeltaKind::Reasoning => StreamEvent::ReasoningDelta { item_id, output_index, content_index: 0, delta },
                DeltaKind::Arguments => StreamEvent::ArgumentsDelta { item_id, output_index, delta },
            }]
        }
        TurnEvent::ItemDone { index, item } => item_done(*index, item),
        TurnEvent::Finished(response) => finished(response),
    }
}

/// The events that open output item `index`: the item added, and its empty content part.
fn item_added(output_index: usize, item: &Item) -> Vec<StreamEvent<'_>> {
    let added = StreamEvent::ItemAdded { output_index, item };
    match part(item, String::new()) {
        Some(part) => vec![added, StreamEvent::PartAdded { item_id: item.id(), output_index, content_index: 0, part }],
        None => vec![added],
    }
}

/// The events that close output item `index`: its text or arguments done, its content part done, the item done.
fn item_done(output_index: usize, item: &Item) -> Vec<StreamEvent<'_>> {
    let (text, item_id, content_index) = (item.text(), item.id(), 0);
    let mut events = match item {
        Item::Message(_) => {
            let logprobs = event_logprobs(item.logprobs());
            vec![StreamEvent::TextDone { item_id, output_index, content_index, text: text.clone(), logprobs }]
        }
        Item::Reasoning(_) => {
            vec![StreamEvent::ReasoningDone { item_id, output_index, content_index, text: text.clone() }]
        }
        Item::FunctionCall(call) => {
            let (name, arguments) = (call.name.as_str(), text.clone());
            vec![StreamEvent::ArgumentsDone { item_id, output_index, name, arguments }]
        }
        Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => Vec::new(),
    };
    if let Some(part) = part(item, text) {
        events.push(StreamEvent::PartDone { item_id, output_index, content_index, part });
    }
    events.push(StreamEvent::ItemDone { output_index, item });
    events
}

/// The terminal events: `response.completed`, `response.incomplete`, or `error` then `response.failed`; a cancelled
/// response ends with `response.failed` alone (the API has no event of its own for it; its status says cancelled).
fn finished(response: &Response) -> Vec<StreamEvent<'_>> {
    match response.status {
        ResponseStatus::Cancelled => vec![StreamEvent::Failed { response }],
        ResponseStatus::Failed => {
            let (code, message) =
                response.error.as_ref().map(|e| (e.code.as_str(), e.message.as_str())).unwrap_or_default();
            let error = StreamError { kind: "server_error", code, message, param: None };
            vec![StreamEvent::Error { error }, StreamEvent::Failed { response }]
        }
        ResponseStatus::Incomplete => vec![StreamEvent::Incomplete { response }],
        _ => vec![StreamEvent::Completed { response }],
    }
}

/// The content part of a message or reasoning item with the given text (and a message's log probabilities); other
/// items have none.
fn part(item: &Item, text: String) -> Option<Part<'_>> {
    match item {
        Item::Message(_) => Some(Part::OutputText { text, annotations: [], logprobs: item.logprobs() }),
        Item::Reasoning(_) => Some(Part::ReasoningText { text }),
        Item::FunctionCall(_) | Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => None,
    }
}

/// Log probabilities as the text events carry them: `{token, logprob, top_logprobs:[{token, logprob}]}`, without
/// the `bytes` an `output_text` part's have (OpenAI's `ResponseLogProb`).
fn event_logprobs(logprobs: &[Value]) -> Vec<Value> {
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
    logprobs.iter().map(each).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FunctionCall, ItemStatus, Message, Reasoning, Role};

    /// Every item event's SSE name is its `type` (the response events are checked by the stream tests).
    #[test]
    fn the_name_of_every_item_event_is_its_type() {
        let status = ItemStatus::Completed;
        let message = Message { id: "msg_1".into(), status, role: Role::Assistant, content: Vec::new(), phase: None };
        let call =
            FunctionCall { id: "fc_1".into(), call_id: "c".into(), name: "f".into(), arguments: "{}".into(), status };
        let reasoning =
            Reasoning { id: "rs_1".into(), summary: Vec::new(), content: Vec::new(), encrypted_content: None, status };
        let mut events = Vec::new();
        for (index, item) in
            [Item::Message(message), Item::FunctionCall(call), Item::Reasoning(reasoning)].into_iter().enumerate()
        {
            events.push(TurnEvent::ItemAdded { index, item: item.clone() });
            let (item_id, kind, text, logprobs) = (item.id().into(), DeltaKind::of(&item), "a".into(), Vec::new());
            events.push(TurnEvent::Delta { index, item_id, kind, text, logprobs });
            events.push(TurnEvent::ItemDone { index, item });
        }
        let mut sequence_number = 0;
        let wire: Vec<Numbered<'_>> = events.iter().flat_map(|event| numbered(event, &mut sequence_number)).collect();
        assert_eq!(wire.len(), 16);
        for (n, numbered) in wire.iter().enumerate() {
            let json = serde_json::to_value(numbered).unwrap();
            assert_eq!(json["type"], numbered.event.name());
            assert_eq!(json["sequence_number"], n);
        }
    }
}
