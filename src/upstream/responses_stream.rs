//! Reading a streamed Responses API answer: its Server-Sent Events (decoded as for every upstream, see `stream`)
//! read into deltas — text and reasoning as they stream, function calls by output index, each reasoning item's
//! summary and opaque form when it is done, the finish and usage from `response.completed` (or `incomplete`).

use super::http::ByteStream;
use super::responses_wire::{self as wire, Event, OutputItem};
use super::scrub::Scrubber;
use super::stream::{read_deltas, Answer, EventFormat};
use super::{Delta, DeltaStream, ReasoningEnd};

/// The deltas of a streamed answer from `upstream`, whose body is `bytes` (capped by `HttpBackend::bytes`: a body
/// past the cap ends the deltas with `TooLarge`); `scrubber` scrubs its errors.
pub fn deltas(upstream: String, scrubber: Scrubber, bytes: ByteStream) -> DeltaStream {
    read_deltas(upstream, scrubber, bytes, ResponseEvents::default())
}

/// Responses API events, and what they told so far.
#[derive(Default)]
struct ResponseEvents {
    /// The output index of each function call, in order: a call's position is its index in the deltas.
    calls: Vec<usize>,
    /// Output items whose text (or arguments) came in deltas: their done items add nothing.
    streamed: Vec<usize>,
    /// The output index of the latest item added, for events that give none.
    latest: Option<usize>,
}

impl ResponseEvents {
    /// The output index of an event: its own, else the latest item added's (the item an `added` event adds comes
    /// after it).
    fn index(&mut self, given: Option<usize>, adds: bool) -> usize {
        let index = match (given, self.latest) {
            (Some(index), _) => index,
            (None, Some(latest)) if adds => latest + 1,
            (None, latest) => latest.unwrap_or(0),
        };
        if adds {
            self.latest = Some(index);
        }
        index
    }

    /// Notes that text came for output item `index`.
    fn stream(&mut self, index: usize) {
        if !self.streamed.contains(&index) {
            self.streamed.push(index);
        }
    }

    /// The delta starting the function call at output index `index`.
    fn start_call(&mut self, index: usize, call_id: String, name: String, arguments: String) -> Delta {
        if !arguments.is_empty() {
            self.stream(index);
        }
        self.calls.push(index);
        Delta::ToolCall { index: self.calls.len() - 1, id: Some(call_id), name: Some(name), arguments }
    }
}

impl ResponseEvents {
    /// Output item `index` is done: what of it did not come in deltas.
    fn item_done(&mut self, index: usize, item: OutputItem, answer: &mut Answer) {
        let streamed = self.streamed.contains(&index);
        match item {
            OutputItem::Message { content } if !streamed => {
                answer.text(wire::text_of(&content), wire::logprobs_of(&content));
            }
            OutputItem::FunctionCall { call_id, name, arguments } => {
                match self.calls.iter().position(|&call| call == index) {
                    None => answer.push(self.start_call(index, call_id, name, arguments)),
                    Some(position) if !streamed => {
                        answer.push(Delta::ToolCall { index: position, id: None, name: None, arguments });
                    }
                    Some(_) => {}
                }
            }
            OutputItem::Reasoning { summary, content, encrypted_content } => {
                let text = wire::text_of(&content);
                if !streamed && !text.is_empty() {
                    answer.push(Delta::Reasoning(text));
                }
                let summary = wire::texts_of(&summary);
                answer.push(Delta::ReasoningEnd(ReasoningEnd { summary, encrypted_content }));
            }
            OutputItem::Message { .. } | OutputItem::Other => {}
        }
    }
}

impl EventFormat for ResponseEvents {
    fn read(&mut self, data: &str, answer: &mut Answer) {
        let event: Event = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(err) => return answer.fail(&format!("an event that does not parse ({err})")),
        };
        match event {
            Event::ItemAdded { output_index, item } => {
                let index = self.index(output_index, true);
                if let OutputItem::FunctionCall { call_id, name, arguments } = item {
                    answer.push(self.start_call(index, call_id, name, arguments));
                }
            }
            Event::Other => {}
            Event::TextDelta { output_index, delta, logprobs } => {
                let index = self.index(output_index, false);
                self.stream(index);
                answer.text(delta, wire::logprobs(logprobs));
            }
            Event::ReasoningDelta { output_index, delta } => {
                let index = self.index(output_index, false);
                self.stream(index);
                answer.push(Delta::Reasoning(delta));
            }
            Event::ArgumentsDelta { output_index, delta } => {
                let index = self.index(output_index, false);
                let Some(position) = self.calls.iter().position(|&call| call == index) else {
                    return answer.fail(&format!("arguments for output item {index}, which is no function call"));
                };
                self.stream(index);
                answer.push(Delta::ToolCall { index: position, id: None, name: None, arguments: delta });
            }
            Event::ItemDone { output_index, item } => {
                let index = self.index(output_index, false);
                self.item_done(index, item, answer);
            }
            Event::Ended { response } => {
                if let Some(failure) = response.failure() {
                    return answer.fail(&failure);
                }
                answer.finish(response.finish_reason(!self.calls.is_empty()));
                if let Some(usage) = &response.usage {
                    answer.push(Delta::Usage(usage.counts()));
                }
                answer.end(true);
            }
            Event::Error { message } => answer.fail(&message),
        }
    }
}
