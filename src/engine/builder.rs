//! Building a Response from upstream deltas, emitting the turn's events as its output items grow.

use std::collections::BTreeMap;

use serde_json::json;

use super::events::{DeltaKind, TurnEvent};
use super::turn::Prepared;
use super::TurnRequest;
use crate::clock::Clock;
use crate::model::{
    new_id, ContentPart, ConversationRef, FunctionCall, IncompleteDetails, Item, ItemStatus, Message, Piece, Pieces,
    Reasoning, ReasoningConfig, ReasoningText, Response, ResponseError, ResponseStatus, Role, TextConfig, Usage,
};
use crate::tokens::TokenCounter;
use crate::upstream::{Delta, FinishReason, ReasoningEnd, TokenCounts};

/// A response under construction.
pub struct TurnBuilder {
    response: Response,
    /// The byte lengths of the deltas of each output item.
    pieces: Pieces,
    /// The output items still receiving deltas, oldest first: one text or reasoning item, or the function calls
    /// being streamed (a backend may interleave the pieces of several).
    open: Vec<usize>,
    /// The events of function calls started while an earlier one is open, held back until it is done: each item's
    /// events then come whole, in order, as a replay repeats them.
    held: BTreeMap<usize, Vec<TurnEvent>>,
    /// Function calls: the backend's number of each, and its output index.
    calls: Vec<(usize, usize)>,
    max_tool_calls: Option<u64>,
    finish: Option<FinishReason>,
    usage: Option<TokenCounts>,
    /// Input tokens to report when the upstream reports no usage, and the counter of output tokens then.
    counted_input: u64,
    counter: TokenCounter,
    /// An item that opens the output (a compaction made for this turn).
    opening: Option<Item>,
    /// What its timestamps read.
    clock: Clock,
    /// Whether the model is called (a warm-up ends with no output).
    generates: bool,
    /// Whether log probabilities were asked for, and those of the text delta to come.
    logprobs: bool,
    pending_logprobs: Vec<serde_json::Value>,
}

/// Response `id` to `request` as it starts: in progress, created now (by `clock`), no output.
pub fn starting(id: String, request: &TurnRequest, clock: &Clock) -> Response {
    let parameters = &request.parameters;
    Response {
        id,
        object: "response".into(),
        created_at: clock.timestamp(),
        status: ResponseStatus::InProgress,
        background: request.background,
        completed_at: None,
        error: None,
        frequency_penalty: parameters.frequency_penalty.unwrap_or(0.0),
        incomplete_details: None,
        instructions: request.instructions.clone(),
        max_output_tokens: parameters.max_output_tokens,
        max_tool_calls: parameters.max_tool_calls,
        model: request.model.clone(),
        moderation: None,
        output: Vec::new(),
        parallel_tool_calls: parameters.parallel_tool_calls.unwrap_or(true),
        presence_penalty: parameters.presence_penalty.unwrap_or(0.0),
        previous_response_id: request.previous_response_id.clone(),
        prompt_cache_key: parameters.prompt_cache_key.clone(),
        prompt_cache_retention: parameters.prompt_cache_retention.clone(),
        reasoning: ReasoningConfig { effort: parameters.reasoning_effort.clone(), summary: None },
        safety_identifier: parameters.safety_identifier.clone(),
        service_tier: "default".into(),
        store: request.store,
        temperature: parameters.temperature.unwrap_or(1.0),
        text: TextConfig {
            format: parameters.text_format.to_value(),
            verbosity: parameters.verbosity.clone().unwrap_or_else(|| "medium".into()),
        },
        tool_choice: parameters.tool_choice.clone().unwrap_or_default().to_value(),
        tools: parameters.tools.iter().map(|tool| serde_json::json!(tool)).collect(),
        top_logprobs: parameters.top_logprobs.unwrap_or(0),
        top_p: parameters.top_p.unwrap_or(1.0),
        truncation: request.truncation.as_str().into(),
        usage: None,
        user: parameters.user.clone(),
        metadata: request.metadata.clone(),
        conversation: request.conversation.clone().map(|id| ConversationRef { id }),
    }
}

impl TurnBuilder {
    /// Builds `response` (as `starting` made it) for `request` as prepared; its timestamps read `clock`.
    pub fn new(response: Response, request: &TurnRequest, prepared: &Prepared, clock: &Clock) -> Self {
        let parameters = &request.parameters;
        Self {
            response,
            pieces: Pieces::new(),
            open: Vec::new(),
            held: BTreeMap::new(),
            calls: Vec::new(),
            max_tool_calls: parameters.max_tool_calls,
            finish: None,
            usage: None,
            counted_input: prepared.tokens,
            counter: prepared.counter,
            opening: prepared.compaction.clone(),
            clock: clock.clone(),
            generates: request.local.as_ref().is_none_or(|local| local.generate),
            logprobs: parameters.logprobs,
            pending_logprobs: Vec::new(),
        }
    }

    /// The id of the response.
    pub fn id(&self) -> &str {
        &self.response.id
    }

    /// Starts the turn: the in-progress snapshot, then the item that opens the output, if any, whole.
    pub fn open(&mut self) -> Vec<TurnEvent> {
        let mut events = vec![TurnEvent::Created(self.response.in_progress())];
        if let Some(item) = self.opening.take() {
            let index = self.response.output.len();
            events.push(TurnEvent::ItemAdded { index, item: item.started() });
            events.push(TurnEvent::ItemDone { index, item: item.clone() });
            self.response.output.push(item);
            self.pieces.push(Vec::new());
        }
        events
    }

    /// Takes one delta and returns the events it causes.
    pub fn apply(&mut self, delta: Delta) -> Vec<TurnEvent> {
        match delta {
            Delta::Text(text) => self.append(DeltaKind::Text, text),
            Delta::Reasoning(text) => self.append(DeltaKind::Reasoning, text),
            Delta::ReasoningEnd(end) => self.end_reasoning(end),
            // Kept for the text delta they come with, when asked for: without the include, nothing changes.
            Delta::Logprobs(logprobs) => {
                if self.logprobs {
                    self.pending_logprobs = logprobs;
                }
                Vec::new()
            }
            Delta::ToolCall { index, id, name, arguments } => self.tool_call(index, id, name, arguments),
            Delta::Finish(reason) => {
                self.finish = Some(reason);
                Vec::new()
            }
            Delta::Usage(counts) => {
                self.usage = Some(counts);
                Vec::new()
            }
        }
    }

    /// The input tokens the backend reported for the context, if it did.
    pub fn reported_input(&self) -> Option<u64> {
        self.usage.map(|usage| usage.input).filter(|input| *input > 0)
    }

    /// Text or reasoning: appended to the open item of that kind, or to a new one.
    fn append(&mut self, kind: DeltaKind, text: String) -> Vec<TurnEvent> {
        let mut events = Vec::new();
        let index = match self.open.last() {
            Some(&index) if DeltaKind::of(&self.response.output[index]) == kind => index,
            _ => self.start(empty_item(kind), &mut events),
        };
        events.push(self.grow(index, kind, text));
        events
    }

    /// Ends the open reasoning item (or an empty new one) with a backend's summary and opaque form.
    fn end_reasoning(&mut self, end: ReasoningEnd) -> Vec<TurnEvent> {
        let mut events = Vec::new();
        let index = match self.open.last() {
            Some(&index) if DeltaKind::of(&self.response.output[index]) == DeltaKind::Reasoning => index,
            _ => self.start(empty_item(DeltaKind::Reasoning), &mut events),
        };
        if let Item::Reasoning(reasoning) = &mut self.response.output[index] {
            reasoning.summary =
                end.summary.into_iter().map(|text| json!({"type": "summary_text", "text": text})).collect();
            reasoning.encrypted_content = end.encrypted_content;
            reasoning.content.retain(|part| !part.text.is_empty());
        }
        self.open.retain(|&open| open != index);
        events.extend(self.close(vec![index], ItemStatus::Completed));
        events
    }

    /// A piece of function call `upstream` (the backend's numbering); calls past `max_tool_calls` are dropped.
    fn tool_call(&mut self, upstream: usize, id: Option<String>, name: Option<String>, args: String) -> Vec<TurnEvent> {
        let mut events = Vec::new();
        let index = match self.calls.iter().find(|(number, _)| *number == upstream) {
            Some(&(_, index)) => index,
            None if self.max_tool_calls.is_some_and(|max| self.calls.len() as u64 >= max) => return events,
            None => {
                let call = FunctionCall {
                    id: new_id("fc"),
                    call_id: id.unwrap_or_else(|| new_id("call")),
                    name: name.clone().unwrap_or_default(),
                    arguments: String::new(),
                    status: ItemStatus::InProgress,
                };
                let index = self.start(Item::FunctionCall(call), &mut events);
                self.calls.push((upstream, index));
                index
            }
        };
        if let (Item::FunctionCall(call), Some(name)) = (&mut self.response.output[index], name) {
            if call.name.is_empty() {
                call.name = name;
            }
        }
        if !args.is_empty() {
            let delta = self.grow(index, DeltaKind::Arguments, args);
            self.emit(index, delta, &mut events);
        }
        events
    }

    /// Opens `item` and returns its index, closing the open items first — but the function calls, when it is one:
    /// their pieces may still come, and every event of an item comes before its done event.
    fn start(&mut self, item: Item, events: &mut Vec<TurnEvent>) -> usize {
        let call = matches!(item, Item::FunctionCall(_));
        let (calls, others): (Vec<usize>, Vec<usize>) =
            self.open.iter().partition(|&&index| matches!(self.response.output[index], Item::FunctionCall(_)));
        let (kept, closing) = if call { (calls, others) } else { (Vec::new(), [calls, others].concat()) };
        self.open = kept;
        events.extend(self.close(closing, ItemStatus::Completed));
        let index = self.response.output.len();
        if call && !self.open.is_empty() {
            self.held.insert(index, Vec::new());
        }
        self.emit(index, TurnEvent::ItemAdded { index, item: item.started() }, events);
        self.response.output.push(item);
        self.pieces.push(Vec::new());
        self.open.push(index);
        index
    }

    /// Sends an event of output item `index`, or holds it back with the item's other events.
    fn emit(&mut self, index: usize, event: TurnEvent, events: &mut Vec<TurnEvent>) {
        match self.held.get_mut(&index) {
            Some(held) => held.push(event),
            None => events.push(event),
        }
    }

    /// Appends text to output item `index`, with the log probabilities that came with it.
    fn grow(&mut self, index: usize, kind: DeltaKind, text: String) -> TurnEvent {
        let logprobs = match kind {
            DeltaKind::Text => std::mem::take(&mut self.pending_logprobs),
            DeltaKind::Reasoning | DeltaKind::Arguments => Vec::new(),
        };
        let item = &mut self.response.output[index];
        item.append_text(&text);
        item.append_logprobs(&logprobs);
        self.pieces[index].push(Piece { len: text.len(), logprobs: logprobs.len() });
        let item_id = item.id().to_string();
        TurnEvent::Delta { index, item_id, kind, text, logprobs }
    }

    /// Closes output items `indexes` (in order) with `status`: each one's held events, then its done event.
    fn close(&mut self, mut indexes: Vec<usize>, status: ItemStatus) -> Vec<TurnEvent> {
        indexes.sort_unstable();
        let mut events = Vec::new();
        for index in indexes {
            events.extend(self.held.remove(&index).unwrap_or_default());
            let item = &mut self.response.output[index];
            item.set_status(status);
            events.push(TurnEvent::ItemDone { index, item: item.clone() });
        }
        events
    }

    /// Ends the turn (failed if `failure` is given) and returns the closing events, the final response and the
    /// pieces its output was streamed in.
    pub fn finish(mut self, failure: Option<ResponseError>) -> (Vec<TurnEvent>, Response, Pieces) {
        let mut events = Vec::new();
        let cut_reason = match (&failure, self.finish) {
            (None, Some(FinishReason::Length)) => Some("max_output_tokens"),
            (None, Some(FinishReason::ContentFilter)) => Some("content_filter"),
            _ => None,
        };
        let cut = failure.is_some() || cut_reason.is_some();
        let answered = self.response.output.iter().any(|item| matches!(item, Item::Message(_) | Item::FunctionCall(_)));
        if failure.is_none() && !answered && self.generates {
            self.start(empty_item(DeltaKind::Text), &mut events);
        }
        // A cut leaves the item streamed last incomplete; the others had ended.
        let mut open = std::mem::take(&mut self.open);
        let last = open.pop();
        events.extend(self.close(open, ItemStatus::Completed));
        let status = if cut { ItemStatus::Incomplete } else { ItemStatus::Completed };
        events.extend(self.close(last.into_iter().collect(), status));
        let now = self.clock.timestamp();
        let response = &mut self.response;
        response.status = match (&failure, cut_reason) {
            (Some(_), _) => ResponseStatus::Failed,
            (None, Some(_)) => ResponseStatus::Incomplete,
            (None, None) => ResponseStatus::Completed,
        };
        response.completed_at = (response.status == ResponseStatus::Completed).then_some(now);
        response.incomplete_details = cut_reason.map(|reason| IncompleteDetails { reason: reason.into() });
        response.error = failure;
        let counter = self.counter;
        // A backend's usage wins, unless it says no input at all (some report zeros): then the count here.
        let counts = self.usage.filter(|usage| usage.input > 0).unwrap_or_else(|| TokenCounts {
            input: self.counted_input,
            output: response.output.iter().map(|item| u64::from(counter.text(&item.text()))).sum(),
            ..TokenCounts::default()
        });
        let mut usage = Usage::new(counts.input, counts.output, counts.cached, counts.reasoning);
        usage.input_tokens_details.cache_write_tokens = counts.cache_write;
        response.usage = Some(usage);
        (events, self.response, self.pieces)
    }
}

/// A new, empty reasoning item or assistant message.
fn empty_item(kind: DeltaKind) -> Item {
    match kind {
        DeltaKind::Reasoning => Item::Reasoning(Reasoning {
            id: new_id("rs"),
            summary: Vec::new(),
            content: vec![ReasoningText { text: String::new() }],
            encrypted_content: None,
            status: ItemStatus::InProgress,
        }),
        _ => Item::Message(Message {
            id: new_id("msg"),
            status: ItemStatus::InProgress,
            role: Role::Assistant,
            content: vec![ContentPart::output_text("")],
            phase: None,
        }),
    }
}
