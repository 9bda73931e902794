//! Running one turn: resolve the history, fit it into the model's window (compacting or truncating it as asked),
//! call the upstream, build the Response, store it before answering — either at once, or streamed as events. Either
//! way the turn runs in a tracked task, so it finishes and is stored even if the client leaves, and a shutdown waits
//! for it.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::budget::Budget;
use super::builder::{starting, TurnBuilder};
use super::context::{chat_messages, ContextRun, RunContext};
use super::events::TurnEvent;
use super::history::{History, LocalContext};
use super::window::Plan;
use super::{Engine, EngineError, EngineResult, Excess, Truncation, TurnRequest};
use crate::config::{ModelSettings, Strategy};
use crate::model::{new_id, Item, Pieces, Response, ResponseError, ResponseStatus};
use crate::store::NewTurn;
use crate::telemetry;
use crate::tokens::{TokenCounter, REPLY_PRIMING};
use crate::upstream::{ChatRequest, DeltaStream, Upstream, UpstreamError, UpstreamResult};

/// The error of a turn that could not be stored.
const STORE_FAILED: &str = "The response could not be stored.";

/// The events of a streamed turn, as they happen.
pub type TurnEvents = mpsc::UnboundedReceiver<TurnEvent>;

/// A turn ready to send upstream.
pub struct Prepared {
    pub upstream: Arc<dyn Upstream>,
    pub chat: ChatRequest,
    /// Tokens of the context sent, and of the history in it.
    pub tokens: u64,
    /// The budget it was fitted to.
    pub budget: Budget,
    pub history_tokens: u64,
    /// The token count of each input item.
    pub input_tokens: Vec<u32>,
    pub counter: TokenCounter,
    /// The compaction made for this turn: the first item of its output.
    pub compaction: Option<Item>,
    /// A WebSocket's turn: its history and input, for the socket to keep.
    pub context: Option<LocalContext>,
}

/// What a context is prepared for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// To send, in at most `cap` tokens when given (a retry after the backend found the context too long).
    Send { cap: Option<u64> },
    /// To count its tokens (`/v1/responses/input_tokens`): no compaction is made, and too long is no error.
    Count,
}

impl Engine {
    /// Runs a turn to its end and returns the Response; a stored turn is committed before this returns.
    pub async fn respond(self: &Arc<Self>, mut request: TurnRequest) -> EngineResult<Response> {
        self.admit_turn_input(&mut request).await?;
        let id = new_id("resp");
        let engine = self.clone();
        let turn = self.tasks.spawn(&id.clone(), async move { engine.complete(id, request).await });
        turn.await.map_err(|err| EngineError::TurnAborted(err.to_string()))?
    }

    async fn complete(&self, id: String, request: TurnRequest) -> EngineResult<Response> {
        let (prepared, completion) = self.start(&request, |upstream, chat| upstream.complete(chat)).await?;
        let clock = self.store.clock();
        let mut builder = TurnBuilder::new(starting(id, &request, clock), &request, &prepared, clock);
        builder.open();
        for delta in completion.into_deltas() {
            builder.apply(delta);
        }
        self.learn_from_usage(&request.model, &prepared, builder.reported_input());
        let (_, response, pieces) = builder.finish(None);
        self.save(&request, &prepared, &response, &pieces).await?;
        Ok(response)
    }

    /// Starts a streamed turn. Failures before the upstream starts answering are returned as errors; later ones
    /// end the stream with a failed response. The turn runs to its end and is stored whether or not the
    /// receiver is still listening.
    pub async fn respond_stream(self: &Arc<Self>, request: TurnRequest) -> EngineResult<TurnEvents> {
        Ok(self.stream_turn(request).await?.0)
    }

    /// Starts a streamed turn of a WebSocket (`request.local` set), as `respond_stream` does: its events, and its
    /// whole context so far (history, then input, with token counts), which the socket keeps with the output to
    /// continue the response without the store. A warm-up (`generate: false`) completes without calling the model.
    pub async fn respond_local(self: &Arc<Self>, request: TurnRequest) -> EngineResult<(TurnEvents, LocalContext)> {
        let (events, context) = self.stream_turn(request).await?;
        Ok((events, context.unwrap_or_default()))
    }

    async fn stream_turn(
        self: &Arc<Self>,
        mut request: TurnRequest,
    ) -> EngineResult<(TurnEvents, Option<LocalContext>)> {
        self.admit_turn_input(&mut request).await?;
        let generate = request.local.as_ref().is_none_or(|local| local.generate);
        let (mut prepared, deltas) = self
            .start(&request, |upstream, chat| match generate {
                true => upstream.complete_stream(chat),
                false => Box::pin(async { Ok(futures::stream::empty().boxed()) }),
            })
            .await?;
        let clock = self.store.clock();
        let builder = TurnBuilder::new(starting(new_id("resp"), &request, clock), &request, &prepared, clock);
        let (events, receiver) = mpsc::unbounded_channel();
        let engine = self.clone();
        let id = builder.id().to_string();
        let context = prepared.context.take();
        self.tasks.spawn(&id, async move { engine.drive(request, prepared, builder, deltas, events).await });
        Ok((receiver, context))
    }

    /// The token count of each of `items` in a context of `tenant` on `model`.
    pub fn item_tokens(&self, tenant: &str, model: &str, items: &[Item]) -> Vec<Option<u32>> {
        let counter = self.context.for_model(model).counter;
        let cx = RunContext::new(counter, &self.sealer, tenant);
        items.iter().map(|item| Some(cx.item_tokens(item))).collect()
    }

    /// The tokens of the context a create would send (`/v1/responses/input_tokens`), in the backend's count as far as
    /// it is known to compare with threadline's.
    pub async fn count_input_tokens(&self, mut request: TurnRequest) -> EngineResult<u64> {
        self.admit_turn_input(&mut request).await?;
        let prepared = self.prepare(&request, Purpose::Count).await?;
        Ok(prepared.budget.in_backend_tokens(prepared.tokens))
    }

    /// Prepares the turn and makes the upstream call with `call`. When the backend finds the context too long, what
    /// its answer tells is remembered for the model, and a turn with `truncation: auto` is fitted again — to the
    /// backend's own numbers where it gave them, else with half of its history dropped — and tried once more.
    pub(super) async fn start<T>(
        &self,
        request: &TurnRequest,
        call: impl for<'c> Fn(&'c dyn Upstream, &'c ChatRequest) -> BoxFuture<'c, UpstreamResult<T>>,
    ) -> EngineResult<(Prepared, T)> {
        let started = Instant::now();
        let prepared = self.prepare(request, Purpose::Send { cap: None }).await?;
        let err = match call(&*prepared.upstream, &prepared.chat).await {
            Ok(answer) => return Ok((prepared, answer)),
            Err(err) => err,
        };
        let Some(overflow) = err.overflow() else { return Err(waited(err, started)) };
        self.calibrations.overflowed(prepared.upstream.name(), &request.model, prepared.tokens, overflow);
        if request.truncation != Truncation::Auto || prepared.history_tokens == 0 {
            return Err(err.into());
        }
        let fitted = prepared.budget.after_overflow(prepared.tokens, overflow).limit();
        let halved = prepared.tokens - prepared.history_tokens.div_ceil(2);
        let cap = fitted.filter(|limit| *limit < prepared.tokens).unwrap_or(halved);
        tracing::info!(
            sent = prepared.tokens,
            cap,
            ?overflow,
            "the upstream found the context too long; fitting again"
        );
        let retry = self.prepare(request, Purpose::Send { cap: Some(cap) }).await?;
        let answer = call(&*retry.upstream, &retry.chat).await.map_err(|err| waited(err, started))?;
        Ok((retry, answer))
    }

    pub(super) async fn drive(
        &self,
        request: TurnRequest,
        prepared: Prepared,
        mut builder: TurnBuilder,
        mut deltas: DeltaStream,
        events: mpsc::UnboundedSender<TurnEvent>,
    ) {
        // A send fails only when the client has gone; the turn goes on regardless.
        let send = |event| {
            let _ = events.send(event);
        };
        builder.open().into_iter().for_each(send);
        let mut failure = None;
        while let Some(delta) = deltas.next().await {
            match delta {
                Ok(delta) => builder.apply(delta).into_iter().for_each(send),
                Err(err) => {
                    tracing::warn!(error = %err, "upstream failed mid-stream");
                    let code = if err.is_context_overflow() { "context_length_exceeded" } else { "server_error" };
                    failure = Some(ResponseError { code: code.into(), message: err.to_string() });
                    break;
                }
            }
        }
        if failure.is_none() {
            self.learn_from_usage(&request.model, &prepared, builder.reported_input());
        }
        let (closing, mut response, pieces) = builder.finish(failure);
        closing.into_iter().for_each(send);
        if let Err(err) = self.save(&request, &prepared, &response, &pieces).await {
            tracing::error!(error = %err, response = %response.id, "a streamed turn could not be stored");
            response.status = ResponseStatus::Failed;
            response.completed_at = None;
            response.error = Some(ResponseError { code: "server_error".into(), message: STORE_FAILED.into() });
        }
        send(TurnEvent::Finished(response));
    }

    /// Stores a finished turn: the response if `store`, and its input and output in its conversation unless it
    /// failed — all in one transaction — each item with its token count. A background turn's end replaces its queued
    /// row.
    async fn save(
        &self,
        request: &TurnRequest,
        prepared: &Prepared,
        response: &Response,
        pieces: &Pieces,
    ) -> EngineResult<()> {
        telemetry::turn_tokens(response.usage.as_ref());
        let conversation = request.conversation.as_deref().filter(|_| response.status != ResponseStatus::Failed);
        if !request.store && conversation.is_none() {
            return Ok(());
        }
        let cx = RunContext::new(prepared.counter, &self.sealer, &request.tenant);
        let mut tokens = prepared.input_tokens.clone();
        tokens.extend(response.output.iter().map(|item| cx.item_tokens(item)));
        let turn = NewTurn {
            response,
            input: &request.input,
            pieces,
            tokens: &tokens,
            store_response: request.store,
            conversation,
        };
        if !request.background {
            return Ok(self.store.save_turn(&request.tenant, turn).await?);
        }
        // Not stored when the run is no longer this server's: its cancel (or the server that took it over) ended it.
        match self.store.finish_run(&request.tenant, turn, self.storing_run(&response.id)).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = ResponseError { code: "server_error".into(), message: STORE_FAILED.into() };
                self.end_failed(&request.tenant, &response.id, failure).await;
                Err(err.into())
            }
        }
    }

    /// Routes the model, resolves the history, fits it into the model's window and assembles the upstream request.
    async fn prepare(&self, request: &TurnRequest, purpose: Purpose) -> EngineResult<Prepared> {
        let upstream = self.upstreams.route(&request.model)?;
        let settings = self.context.for_model(&request.model);
        let (model, max_output) = (&request.model, request.parameters.max_output_tokens);
        let budget = self.budget(&*upstream, model, request.context.window, max_output, &settings).await;
        let counter = settings.counter;
        let format = upstream.context_format();
        let cx = RunContext::new(counter, &self.sealer, &request.tenant).in_format(format);
        let history = self.turn_history(request).await?;
        let segments = history.segments(&cx);
        let instructions = request.instructions.as_deref().map(|text| ContextRun::instructions(text, &cx));
        let input_tokens: Vec<u32> = request.input.iter().map(|item| cx.item_tokens(item)).collect();
        let counts: Vec<Option<u32>> = input_tokens.iter().copied().map(Some).collect();
        let input = ContextRun::new(&request.input, &counts, &cx);
        let fixed = u64::from(counter.tools(&request.parameters.tools) + REPLY_PRIMING);
        let (summary_text, summary_run);
        let mut plan = Plan::new(instructions.as_ref(), history.turns(&segments, &cx), &input, fixed);
        if settings.strategy == Strategy::LastTurns {
            plan.keep_last(settings.last_turns as usize);
        }
        let mut compaction = None;
        // A count makes no compaction, nor does a retry (the first try's summary is not made twice).
        let compacts = purpose == Purpose::Send { cap: None };
        if let Some(cut) = self.compaction_cut(request, &settings, &budget, &plan).filter(|_| compacts) {
            let (item, text) = self.compact_turns(&*upstream, request, &plan, cut, &cx, &budget).await?;
            summary_text = text;
            summary_run = ContextRun::summary(&summary_text, &cx);
            plan.compact(cut, (&summary_run, &summary_text));
            compaction = Some(item);
        }
        fit(request, purpose, &mut plan, &budget, compaction.is_some())?;
        let chat = ChatRequest {
            model: request.model.clone(),
            messages: chat_messages(&plan.runs(), format)?,
            parameters: request.parameters.clone(),
            request_id: request.request_id.clone(),
            api_key: request.upstream_key.clone(),
            stable_prefix: plan.stable_prefix(),
        };
        let (tokens, history_tokens) = (plan.tokens(), plan.history_tokens());
        let context = request.local.as_ref().map(|_| {
            let mut context = history.context();
            context.start_turn();
            context.extend(request.input.iter().cloned(), counts.iter().copied());
            context
        });
        Ok(Prepared { upstream, chat, tokens, budget, history_tokens, input_tokens, counter, compaction, context })
    }

    /// The history a turn continues: the socket's kept context, or the chain or conversation from the store.
    async fn turn_history(&self, request: &TurnRequest) -> EngineResult<History> {
        if let Some(kept) = request.local.as_ref().and_then(|local| local.history.clone()) {
            return Ok(History::Local(kept));
        }
        let tenant = &request.tenant;
        self.history(tenant, request.previous_response_id.as_deref(), request.conversation.as_deref()).await
    }

    /// How many turns a compaction in this turn summarizes, when it makes one: asked for (`compaction_trigger`), or
    /// the context is past the threshold of `context_management` or of the model's `summarize` strategy. The
    /// newest turns within a quarter of the threshold stay as they are (none when asked for).
    fn compaction_cut(
        &self,
        request: &TurnRequest,
        settings: &ModelSettings,
        budget: &Budget,
        plan: &Plan<'_>,
    ) -> Option<usize> {
        if request.context.compact_now {
            return plan.compaction_cut(0);
        }
        if !request.context.compaction && settings.strategy != Strategy::Summarize {
            return None;
        }
        let configured = budget.counted_window().map(|window| (window as f64 * settings.compact_threshold) as u64);
        let threshold = request.context.compact_threshold.or(configured)?;
        (plan.tokens() > threshold).then(|| plan.compaction_cut(threshold / 4)).flatten()
    }
}

impl Engine {
    /// Learns from a turn's usage how the backend's count compares with threadline's, where it matters: a context
    /// fitted to a known window that fills at least half of it (so the template's few fixed tokens weigh little).
    fn learn_from_usage(&self, model: &str, prepared: &Prepared, reported: Option<u64>) {
        let Some(limit) = prepared.budget.limit() else { return };
        if let Some(reported) = reported.filter(|_| prepared.tokens >= limit / 2) {
            self.calibrations.counted(prepared.upstream.name(), model, prepared.tokens, reported);
        }
    }
}

/// Fits the planned context into its limit (the budget's, and a retry's cap), truncating it where the request lets
/// it; a context that does not fit is refused (unless it is only counted).
fn fit(
    request: &TurnRequest,
    purpose: Purpose,
    plan: &mut Plan<'_>,
    budget: &Budget,
    compacted: bool,
) -> EngineResult<()> {
    let mut limit = budget.limit();
    if let Purpose::Send { cap: Some(cap) } = purpose {
        limit = Some(limit.map_or(cap, |limit| limit.min(cap)));
    }
    let fits =
        limit.is_none_or(|limit| plan.tokens() <= limit || (request.truncation == Truncation::Auto && plan.fit(limit)));
    if purpose == Purpose::Count {
        return Ok(());
    }
    telemetry::context_fit(match (fits, compacted, plan.truncated()) {
        (false, ..) => "too_long",
        (true, true, _) => "compacted",
        (true, false, true) => "truncated",
        (true, false, false) => "whole",
    });
    if !fits {
        let (tokens, limit) = (plan.tokens(), limit.unwrap_or_default());
        return Err(EngineError::ContextLengthExceeded(Excess::Counted { tokens, limit, budget: *budget }));
    }
    Ok(())
}

/// An upstream's error, a timeout stating how long the turn waited for the upstream (discovery included).
fn waited(err: UpstreamError, started: Instant) -> EngineError {
    match err {
        UpstreamError::Timeout { upstream, .. } => UpstreamError::timeout(upstream, started.elapsed()).into(),
        other => other.into(),
    }
}
