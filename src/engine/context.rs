//! Building the upstream context of a turn from runs of items: this turn's instructions, then the history, then
//! the new input, as Chat Completions messages or Responses input items (`context_wire`) — function calls and their
//! outputs included, so tool use survives across turns.
//!
//! Items become messages a run at a time: a stored turn's run (in each format asked for) is made once, kept with the
//! turn in the history cache (`TurnRuns`) and shared by every chain through it, so a turn's context costs
//! serialising its typed entries into the request, not converting its whole history. A run's tokens are the sum of
//! its items' stored counts: history is never tokenized again.

use std::sync::OnceLock;

use super::context_wire::{chat_messages_of, input_items, Sent};
use super::seal::{Sealer, Summary};
use super::{EngineError, EngineResult};
use crate::model::Item;
use crate::store::CachedTurn;
use crate::tokens::TokenCounter;
use crate::upstream::{Context, ContextFormat, Run};

/// A run of items as upstream messages: typed entries made once, with the tool calls and outputs among them (to pair
/// them across the whole context), their tokens, what must be kept of them when they are dropped, and the compaction
/// made in them.
#[derive(Debug)]
pub struct ContextRun {
    messages: Run,
    tools: Vec<ToolUse>,
    pub tokens: u64,
    /// Its system and developer messages: what is kept of it when it is dropped to fit the window.
    pub pinned: Option<Box<ContextRun>>,
    /// A compaction made in this turn, which the turns after it build on.
    pub compaction: Option<Box<Compacted>>,
}

/// A stored turn's runs, one per format, each made when first needed: what the history cache keeps with each turn
/// for the engine.
#[derive(Debug, Default)]
pub struct TurnRuns {
    chat: OnceLock<ContextRun>,
    responses: OnceLock<ContextRun>,
}

/// A compaction made in a turn: the summary, as text and as the run sent in place of the turns it replaces, and how
/// many turns of the chain (or conversation), from the first, those are.
#[derive(Debug)]
pub struct Compacted {
    pub summary: String,
    pub run: ContextRun,
    pub through: u32,
}

/// A function call made, or answered, by its call id.
#[derive(Debug)]
enum ToolUse {
    Call(String),
    Output(String),
}

/// What turning items into a run needs: their counter (for items without a stored count), the upstream's format,
/// and the tenant and key that open compaction items.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    pub counter: TokenCounter,
    /// The shape the upstream takes the context in.
    pub format: ContextFormat,
    pub sealer: &'a Sealer,
    pub tenant: &'a str,
}

impl<'a> RunContext<'a> {
    /// The context of `tenant`'s items counted by `counter`, in the default format (the format only shapes the runs
    /// sent upstream, not what items count).
    pub fn new(counter: TokenCounter, sealer: &'a Sealer, tenant: &'a str) -> Self {
        Self { counter, format: ContextFormat::default(), sealer, tenant }
    }

    /// The same context, building runs in `format`.
    pub fn in_format(self, format: ContextFormat) -> Self {
        Self { format, ..self }
    }

    /// The summary a compaction item holds, if it was sealed for this tenant.
    pub fn open(&self, item: &crate::model::Compaction) -> Option<Summary> {
        self.sealer.open(self.tenant, &item.encrypted_content)
    }

    /// The tokens `item` adds to a context (what `run` counts it as).
    pub fn item_tokens(&self, item: &Item) -> u32 {
        match item {
            Item::Compaction(compaction) => match self.open(compaction) {
                Some(Summary { text, through: None }) if !text.is_empty() => self.counter.message(&summary_text(&text)),
                _ => 0,
            },
            other => self.counter.item(other),
        }
    }
}

/// The message text a summary is sent as.
pub fn summary_text(summary: &str) -> String {
    format!("Summary of the earlier conversation:\n{summary}")
}

impl ContextRun {
    /// The run of `items` with their stored token counts (`None`, or missing: counted now), in the format the
    /// upstream takes. A compaction item sent as input becomes its summary, and one made in a turn (it names how many
    /// turns it replaces) is recorded for the chain to apply. A compaction item that no longer opens (the server's
    /// key changed) is left out with a warning: new input was checked already.
    pub fn new<'i>(items: impl IntoIterator<Item = &'i Item>, tokens: &[Option<u32>], cx: &RunContext<'_>) -> Self {
        let mut sent: Vec<Sent<'i>> = Vec::new();
        let mut tools = Vec::new();
        let mut total = 0;
        let mut compaction = None;
        for (i, item) in items.into_iter().enumerate() {
            total += u64::from(tokens.get(i).copied().flatten().unwrap_or_else(|| cx.item_tokens(item)));
            match item {
                Item::FunctionCall(call) => tools.push(ToolUse::Call(call.call_id.clone())),
                Item::FunctionCallOutput(output) => tools.push(ToolUse::Output(output.call_id.clone())),
                _ => {}
            }
            match item {
                Item::Compaction(item) => match cx.open(item) {
                    Some(Summary { text, through: Some(through) }) => {
                        let run = Self::summary(&text, cx);
                        compaction = Some(Box::new(Compacted { summary: text, run, through }));
                    }
                    Some(Summary { text, through: None }) => {
                        if !text.is_empty() {
                            sent.push(Sent::Summary(summary_text(&text)));
                        }
                    }
                    None => tracing::warn!(item = %item.id, "a stored compaction item does not open; left out"),
                },
                item => sent.push(Sent::Item(item)),
            }
        }
        let system: Vec<Sent<'_>> = sent.iter().filter(|entry| entry.system_text().is_some()).cloned().collect();
        let pinned = match system.is_empty() {
            true => None,
            false => {
                let texts = system.iter().filter_map(Sent::system_text);
                let tokens = texts.map(|text| u64::from(cx.counter.message(&text))).sum();
                Some(Box::new(Self::of(&system, Vec::new(), tokens, cx.format)))
            }
        };
        Self { pinned, compaction, ..Self::of(&sent, tools, total, cx.format) }
    }

    /// The run of a stored turn, made the first time a chain needs it and kept with the cached turn.
    pub fn of_turn<'t>(turn: &'t CachedTurn, cx: &RunContext<'_>) -> &'t Self {
        let runs = turn.runs();
        let slot = match cx.format {
            ContextFormat::ChatMessages => &runs.chat,
            ContextFormat::ResponsesInput => &runs.responses,
        };
        slot.get_or_init(|| Self::new(turn.items(), turn.tokens(), cx))
    }

    /// A turn's instructions, as a system message.
    pub fn instructions(text: &str, cx: &RunContext<'_>) -> Self {
        let tokens = u64::from(cx.counter.message(text));
        Self::of(&[Sent::Instructions(text)], Vec::new(), tokens, cx.format)
    }

    /// A summary of earlier turns, as the message that stands for them.
    pub fn summary(text: &str, cx: &RunContext<'_>) -> Self {
        let text = summary_text(text);
        let tokens = u64::from(cx.counter.message(&text));
        Self::of(&[Sent::Summary(text)], Vec::new(), tokens, cx.format)
    }

    fn of(sent: &[Sent<'_>], tools: Vec<ToolUse>, tokens: u64, format: ContextFormat) -> Self {
        let messages = match format {
            ContextFormat::ChatMessages => Run::Chat(chat_messages_of(sent).into()),
            ContextFormat::ResponsesInput => Run::Responses(input_items(sent).into()),
        };
        Self { messages, tools, tokens, pinned: None, compaction: None }
    }

    /// Whether it answers a function call that none of `earlier` makes.
    pub fn answers_missing_call<'a>(&self, earlier: impl Iterator<Item = &'a ContextRun> + Clone) -> bool {
        self.tools.iter().any(|tool_use| match tool_use {
            ToolUse::Output(id) => {
                let made_here = self.tools.iter().any(|other| matches!(other, ToolUse::Call(call) if call == id));
                !made_here && !earlier.clone().any(|run| run.makes_call(id))
            }
            ToolUse::Call(_) => false,
        })
    }

    /// How many upstream messages it is.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    fn makes_call(&self, id: &str) -> bool {
        self.tools.iter().any(|tool_use| matches!(tool_use, ToolUse::Call(call) if call == id))
    }
}

/// The context made of `runs`, in order. Every function call needs its output later in the context, and every
/// output an earlier call (else 400, as on OpenAI).
pub fn chat_messages(runs: &[&ContextRun], format: ContextFormat) -> EngineResult<Context> {
    check_tool_pairs(runs.iter().flat_map(|run| &run.tools))?;
    Context::join(format, runs.iter().map(|run| &run.messages)).map_err(|err| EngineError::Context(err.to_string()))
}

/// Checks that calls and outputs pair up: each output answers an earlier call, each call gets an output.
fn check_tool_pairs<'a>(uses: impl Iterator<Item = &'a ToolUse>) -> EngineResult<()> {
    let mut calls: Vec<&str> = Vec::new();
    let mut unanswered: Vec<&str> = Vec::new();
    for tool_use in uses {
        match tool_use {
            ToolUse::Call(id) => {
                calls.push(id);
                unanswered.push(id);
            }
            ToolUse::Output(id) => {
                if !calls.contains(&id.as_str()) {
                    return Err(EngineError::OutputWithoutCall(id.clone()));
                }
                unanswered.retain(|call| call != id);
            }
        }
    }
    match unanswered.first() {
        Some(id) => Err(EngineError::CallWithoutOutput((*id).to_string())),
        None => Ok(()),
    }
}
