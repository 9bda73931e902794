//! Building a Response from upstream deltas, emitting the turn's events as its output items grow.

use super::events::{DeltaKind, TurnEvent};
use super::TurnRequest;
use crate::model::{
    new_id, ContentPart, IncompleteDetails, Item, ItemStatus, Message, Pieces, Reasoning, ReasoningConfig,
    ReasoningText, Response, ResponseError, ResponseStatus, Role, TextConfig, Usage,
};
use crate::upstream::{estimate_tokens, Delta, FinishReason, TokenCounts};

/// A response under construction.
pub struct TurnBuilder {
    response: Response,
    /// The byte lengths of the deltas of each output item.
    pieces: Pieces,
    /// The output item receiving deltas.
    open: Option<usize>,
    finish: Option<FinishReason>,
    usage: Option<TokenCounts>,
    /// Input tokens to report when the upstream reports no usage.
    estimated_input: u64,
}

impl TurnBuilder {
    /// Starts a response for `request`: a new id, in progress, no output.
    pub fn new(request: &TurnRequest, estimated_input: u64) -> Self {
        let sampling = &request.sampling;
        let response = Response {
            id: new_id("resp"),
            object: "response".into(),
            created_at: chrono::Utc::now().timestamp(),
            status: ResponseStatus::InProgress,
            background: false,
            completed_at: None,
            error: None,
            frequency_penalty: sampling.frequency_penalty.unwrap_or(0.0),
            incomplete_details: None,
            instructions: request.instructions.clone(),
            max_output_tokens: sampling.max_output_tokens,
            max_tool_calls: None,
            model: request.model.clone(),
            moderation: None,
            output: Vec::new(),
            parallel_tool_calls: request.parallel_tool_calls,
            presence_penalty: sampling.presence_penalty.unwrap_or(0.0),
            previous_response_id: request.previous_response_id.clone(),
            prompt_cache_key: sampling.prompt_cache_key.clone(),
            prompt_cache_retention: None,
            reasoning: ReasoningConfig { effort: sampling.reasoning_effort.clone(), summary: None },
            safety_identifier: sampling.safety_identifier.clone(),
            service_tier: "default".into(),
            store: request.store,
            temperature: sampling.temperature.unwrap_or(1.0),
            text: TextConfig {
                verbosity: sampling.verbosity.clone().unwrap_or_else(|| "medium".into()),
                ..TextConfig::default()
            },
            tool_choice: serde_json::json!("auto"),
            tools: Vec::new(),
            top_logprobs: 0,
            top_p: sampling.top_p.unwrap_or(1.0),
            truncation: "disabled".into(),
            usage: None,
            user: sampling.user.clone(),
            metadata: request.metadata.clone(),
        };
        Self { response, pieces: Pieces::new(), open: None, finish: None, usage: None, estimated_input }
    }

    /// The in-progress snapshot sent when the turn starts.
    pub fn created(&self) -> TurnEvent {
        TurnEvent::Created(self.response.in_progress())
    }

    /// Takes one delta and returns the events it causes.
    pub fn apply(&mut self, delta: Delta) -> Vec<TurnEvent> {
        match delta {
            Delta::Text(text) => self.append(DeltaKind::Text, text),
            Delta::Reasoning(text) => self.append(DeltaKind::Reasoning, text),
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

    fn append(&mut self, kind: DeltaKind, text: String) -> Vec<TurnEvent> {
        let mut events = Vec::new();
        let index = match self.open {
            Some(index) if kind_of(&self.response.output[index]) == kind => index,
            _ => {
                events.extend(self.close(ItemStatus::Completed));
                let (index, added) = self.open_item(kind);
                events.push(added);
                index
            }
        };
        match &mut self.response.output[index] {
            Item::Message(message) => push_text(&mut message.content[0], &text),
            Item::Reasoning(reasoning) => reasoning.content[0].text.push_str(&text),
        }
        self.pieces[index].push(text.len());
        let item_id = self.response.output[index].id().to_string();
        events.push(TurnEvent::Delta { index, item_id, kind, text });
        events
    }

    fn open_item(&mut self, kind: DeltaKind) -> (usize, TurnEvent) {
        let item = match kind {
            DeltaKind::Text => Item::Message(Message {
                id: new_id("msg"),
                status: ItemStatus::InProgress,
                role: Role::Assistant,
                content: vec![ContentPart::output_text("")],
            }),
            DeltaKind::Reasoning => Item::Reasoning(Reasoning {
                id: new_id("rs"),
                summary: Vec::new(),
                content: vec![ReasoningText { text: String::new() }],
                status: ItemStatus::InProgress,
            }),
        };
        let index = self.response.output.len();
        let event = TurnEvent::ItemAdded { index, item: item.started() };
        self.response.output.push(item);
        self.pieces.push(Vec::new());
        self.open = Some(index);
        (index, event)
    }

    fn close(&mut self, status: ItemStatus) -> Option<TurnEvent> {
        let index = self.open.take()?;
        let item = &mut self.response.output[index];
        match item {
            Item::Message(message) => message.status = status,
            Item::Reasoning(reasoning) => reasoning.status = status,
        }
        Some(TurnEvent::ItemDone { index, item: item.clone() })
    }

    /// Ends the turn (failed if `failure` is given) and returns the closing events, the final response and the
    /// pieces its output was streamed in.
    pub fn finish(mut self, failure: Option<ResponseError>) -> (Vec<TurnEvent>, Response, Pieces) {
        let mut events = Vec::new();
        let cut_reason = match (&failure, self.finish) {
            (Some(_), _) => None,
            (None, Some(FinishReason::Length)) => Some("max_output_tokens"),
            (None, Some(FinishReason::ContentFilter)) => Some("content_filter"),
            (None, _) => None,
        };
        let cut = failure.is_some() || cut_reason.is_some();
        let has_message = self.response.output.iter().any(|item| matches!(item, Item::Message(_)));
        if failure.is_none() && !has_message {
            events.extend(self.close(ItemStatus::Completed));
            events.push(self.open_item(DeltaKind::Text).1);
        }
        events.extend(self.close(if cut { ItemStatus::Incomplete } else { ItemStatus::Completed }));
        let now = chrono::Utc::now().timestamp();
        let response = &mut self.response;
        response.status = match (&failure, cut_reason) {
            (Some(_), _) => ResponseStatus::Failed,
            (None, Some(_)) => ResponseStatus::Incomplete,
            (None, None) => ResponseStatus::Completed,
        };
        response.completed_at = (response.status == ResponseStatus::Completed).then_some(now);
        response.incomplete_details = cut_reason.map(|reason| IncompleteDetails { reason: reason.into() });
        response.error = failure;
        let counts = self.usage.unwrap_or_else(|| TokenCounts {
            input: self.estimated_input,
            output: response.output.iter().map(|item| estimate_tokens(&item.text())).sum(),
            ..TokenCounts::default()
        });
        response.usage = Some(Usage::new(counts.input, counts.output, counts.cached, counts.reasoning));
        (events, self.response, self.pieces)
    }
}

fn kind_of(item: &Item) -> DeltaKind {
    match item {
        Item::Message(_) => DeltaKind::Text,
        Item::Reasoning(_) => DeltaKind::Reasoning,
    }
}

fn push_text(part: &mut ContentPart, delta: &str) {
    if let ContentPart::OutputText { text, .. } = part {
        text.push_str(delta);
    }
}
