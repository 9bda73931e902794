//! Compaction: the upstream summarizes the older part of a conversation, and a `compaction` item, its summary sealed
//! inside, stands for that part from then on. Made inside a turn (past a threshold, or asked for), the item is stored
//! in that turn's output, so every later turn of the chain and every branch below it reuses the summary; made by
//! `POST /v1/responses/compact`, it ends a window the client sends back as input.

use super::budget::Budget;
use super::context::{ContextRun, RunContext};
use super::references::ReferenceScope;
use super::seal::Summary;
use super::window::Plan;
use super::{Engine, EngineError, EngineResult, TurnRequest};
use crate::config::Secret;
use crate::model::{new_id, Compaction, ContentPart, Item, Message, Role, Usage};
use crate::tokens::TokenCounter;
use crate::upstream::{ChatMessage, ChatRequest, ChatRole, Context, Parameters, Upstream};

/// What the upstream is asked to do with the transcript.
const INSTRUCTIONS: &str = "You are compacting a conversation so that it can go on within a limited context window. \
Write a concise summary of the conversation below: what the user wants, the facts, decisions and results established \
so far (tool calls and their results included), and what is still open. Write it so that the conversation can \
continue from the summary alone. Answer with the summary only.";

/// A compaction as `POST /v1/responses/compact` asks for it.
#[derive(Clone, Debug)]
pub struct CompactRequest {
    pub tenant: String,
    pub model: String,
    pub input: Vec<Item>,
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    /// Passed on with the summarization call.
    pub prompt_cache_key: Option<String>,
    pub request_id: Option<String>,
    /// The client's own upstream key (`passthrough`).
    pub upstream_key: Option<Secret>,
}

/// Who a summarization call is made for: the model, and the client's request id, prompt cache key and own key.
#[derive(Clone, Copy, Debug)]
struct SummaryCall<'a> {
    model: &'a str,
    request_id: Option<&'a str>,
    prompt_cache_key: Option<&'a str>,
    api_key: Option<&'a Secret>,
}

/// The compacted window: the user messages kept, then the compaction item; and the summarization's usage.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactedWindow {
    pub id: String,
    pub created_at: i64,
    pub output: Vec<Item>,
    pub usage: Usage,
}

/// A summary the upstream wrote, and what writing it took.
struct Written {
    pub text: String,
    pub usage: Usage,
}

impl Engine {
    /// Compacts a conversation (its previous response's chain and the new input) into a window.
    pub async fn compact(&self, mut request: CompactRequest) -> EngineResult<CompactedWindow> {
        let scope = request.previous_response_id.as_deref().map_or(ReferenceScope::Nothing, ReferenceScope::Chain);
        self.resolve_references(&request.tenant, &mut request.input, scope, "input").await?;
        self.admit_input(&request.tenant, &mut request.input)?;
        let upstream = self.upstreams.route(&request.model)?;
        let settings = self.context.for_model(&request.model);
        let window = self.budget(&*upstream, &request.model, None, None, &settings).await.summary_window();
        let cx = RunContext::new(settings.counter, &self.sealer, &request.tenant).in_format(upstream.context_format());
        let history = self.history(&request.tenant, request.previous_response_id.as_deref(), None).await?;
        let segments = history.segments(&cx);
        let turns = history.turns(&segments, &cx);
        let input = ContextRun::new(&request.input, &[], &cx);
        let plan = Plan::new(None, turns, &input, 0);
        let (previous, turns) = plan.to_summarize(plan.history_len());
        let items: Vec<&Item> = turns.iter().flat_map(|turn| turn.items).chain(&request.input).collect();
        let kept = kept_user_messages(&items, window / 4, settings.counter);
        let rest = items.iter().copied().filter(|item| !kept.iter().any(|kept| std::ptr::eq(*kept, *item)));
        let mut transcript = transcript(previous, rest, &cx, window / 2);
        if let Some(instructions) = request.instructions.as_deref().filter(|_| !transcript.is_empty()) {
            transcript = format!("The conversation's instructions: {instructions}\n\n{transcript}");
        }
        let call = SummaryCall {
            model: &request.model,
            request_id: request.request_id.as_deref(),
            prompt_cache_key: request.prompt_cache_key.as_deref(),
            api_key: request.upstream_key.as_ref(),
        };
        let written = self.write_summary(&*upstream, call, &transcript, window).await?;
        let summary = Summary { text: written.text, through: None };
        let compaction =
            Compaction { id: new_id("cmp"), encrypted_content: self.sealer.seal(&request.tenant, &summary) };
        let mut output: Vec<Item> = kept.into_iter().map(renewed).collect();
        output.push(Item::Compaction(compaction));
        Ok(CompactedWindow { id: new_id("resp"), created_at: self.now(), output, usage: written.usage })
    }

    /// Admits the sealed items of a new input: reasoning items sealed here are restored (`open_reasoning`), and the
    /// compaction items must open (sealed by this server, for this tenant); one made in a turn is sealed again as a
    /// plain summary, which stands where it is put and no longer for turns of the chain it came from.
    pub(super) fn admit_input(&self, tenant: &str, items: &mut [Item]) -> EngineResult<()> {
        self.open_reasoning(tenant, items);
        for item in items {
            let Item::Compaction(compaction) = item else { continue };
            let summary = self.sealer.open::<Summary>(tenant, &compaction.encrypted_content);
            let summary = summary.ok_or_else(|| EngineError::InvalidCompaction(compaction.id.clone()))?;
            if summary.through.is_some() {
                let plain = Summary { through: None, ..summary };
                compaction.encrypted_content = self.sealer.seal(tenant, &plain);
            }
        }
        Ok(())
    }

    /// Compacts the first `cut` turns of a turn's history (and the summary in force): the compaction item the turn's
    /// output opens with, and the summary's text.
    pub(super) async fn compact_turns(
        &self,
        upstream: &dyn Upstream,
        request: &TurnRequest,
        plan: &Plan<'_>,
        cut: usize,
        cx: &RunContext<'_>,
        budget: &Budget,
    ) -> EngineResult<(Item, String)> {
        let window = budget.summary_window();
        let (previous, turns) = plan.to_summarize(cut);
        let transcript = transcript(previous, turns.iter().flat_map(|turn| turn.items), cx, window / 2);
        let call = SummaryCall {
            model: &request.model,
            request_id: request.request_id.as_deref(),
            prompt_cache_key: request.parameters.prompt_cache_key.as_deref(),
            api_key: request.upstream_key.as_ref(),
        };
        let written = self.write_summary(upstream, call, &transcript, window).await?;
        let summary = Summary { text: written.text, through: Some(plan.position(cut)) };
        let encrypted_content = self.sealer.seal(&request.tenant, &summary);
        Ok((Item::Compaction(Compaction { id: new_id("cmp"), encrypted_content }), summary.text))
    }

    /// Has the upstream summarize `transcript` (no call when there is nothing to summarize).
    async fn write_summary(
        &self,
        upstream: &dyn Upstream,
        call: SummaryCall<'_>,
        transcript: &str,
        window: u64,
    ) -> EngineResult<Written> {
        if transcript.is_empty() {
            return Ok(Written { text: String::new(), usage: Usage::default() });
        }
        let messages =
            [ChatMessage::text(ChatRole::System, INSTRUCTIONS), ChatMessage::text(ChatRole::User, transcript)];
        let chat = ChatRequest {
            model: call.model.to_string(),
            messages: Context::chat(messages.into()),
            parameters: Parameters {
                max_output_tokens: Some((window / 4).max(64)),
                prompt_cache_key: call.prompt_cache_key.map(str::to_string),
                ..Parameters::default()
            },
            request_id: call.request_id.map(str::to_string),
            api_key: call.api_key.cloned(),
            stable_prefix: 0,
        };
        let completion = upstream.complete(&chat).await?;
        let text = completion.text.trim().to_string();
        let counter = self.context.for_model(call.model).counter;
        let counts = completion.usage;
        let input = counts.map_or_else(|| u64::from(counter.message(transcript)) + 20, |counts| counts.input);
        let output = counts.map_or_else(|| u64::from(counter.text(&text)), |counts| counts.output);
        Ok(Written { text, usage: Usage::new(input, output, counts.map_or(0, |c| c.cached), 0) })
    }
}

/// The transcript the upstream summarizes: the summary in force, then the turns to summarize, cut from the oldest
/// end to at most `budget` tokens.
pub fn transcript<'i>(
    previous: Option<&str>,
    items: impl Iterator<Item = &'i Item>,
    cx: &RunContext<'_>,
    budget: u64,
) -> String {
    let lines: Vec<String> = items.filter_map(|item| line(item, cx)).collect();
    let mut spent = previous.map_or(0, |text| u64::from(cx.counter.text(text)));
    let newest = lines.iter().rev().take_while(|line| {
        spent += u64::from(cx.counter.text(line));
        spent <= budget
    });
    let mut kept: Vec<&String> = newest.collect();
    kept.reverse();
    let earlier = previous.filter(|text| !text.is_empty()).map(|text| format!("Summary of what came before: {text}"));
    earlier.iter().chain(kept).map(String::as_str).collect::<Vec<_>>().join("\n\n")
}

/// One item as a line of the transcript.
fn line(item: &Item, cx: &RunContext<'_>) -> Option<String> {
    match item {
        Item::Message(message) => {
            let who = match message.role {
                Role::User => "User",
                Role::Assistant => "Assistant",
                Role::System | Role::Developer => "System",
            };
            let parts = message.content.iter().map(|part| part.text().unwrap_or("[attachment]"));
            Some(format!("{who}: {}", parts.collect::<Vec<_>>().join("\n")))
        }
        Item::FunctionCall(call) => Some(format!("Assistant called {}({})", call.name, call.arguments)),
        Item::FunctionCallOutput(output) => Some(format!("Result of {}: {}", output.call_id, output.output.text())),
        Item::Compaction(compaction) => cx
            .open(compaction)
            .filter(|summary| summary.through.is_none() && !summary.text.is_empty())
            .map(|summary| format!("Summary of what came before: {}", summary.text)),
        Item::Reasoning(_) | Item::ItemReference(_) => None,
    }
}

/// The newest user messages of `items` within `budget` tokens, in order.
fn kept_user_messages<'i>(items: &[&'i Item], budget: u64, counter: TokenCounter) -> Vec<&'i Item> {
    let mut spent = 0;
    let users = items.iter().rev().filter(|item| matches!(item, Item::Message(m) if m.role == Role::User));
    let mut kept: Vec<&Item> = users
        .take_while(|item| {
            spent += u64::from(counter.item(item));
            spent <= budget
        })
        .copied()
        .collect();
    kept.reverse();
    kept
}

/// A kept message as the window returns it: a new id, its content as parts.
fn renewed(item: &Item) -> Item {
    let mut item = item.clone();
    if let Item::Message(Message { id, content, .. }) = &mut item {
        *id = new_id("msg");
        if content.is_empty() {
            content.push(ContentPart::InputText { text: String::new() });
        }
    }
    item
}
