//! Running one turn: resolve the chain, call the upstream, build the Response, store it before answering — either at
//! once, or streamed as events. Either way the turn runs in a tracked task, so it finishes and is stored even if
//! the client leaves, and a shutdown waits for it.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::builder::TurnBuilder;
use super::context::{chat_messages, ContextRun};
use super::events::TurnEvent;
use super::{Engine, EngineError, EngineResult, TurnRequest};
use crate::model::{Item, Pieces, Response, ResponseError, ResponseStatus};
use crate::store::{Chain, NewTurn};
use crate::telemetry;
use crate::upstream::{ChatRequest, DeltaStream, Upstream};

/// The events of a streamed turn, as they happen.
pub type TurnEvents = mpsc::UnboundedReceiver<TurnEvent>;

impl Engine {
    /// Runs a turn to its end and returns the Response; a stored turn is committed before this returns.
    pub async fn respond(self: &Arc<Self>, request: TurnRequest) -> EngineResult<Response> {
        let (upstream, chat, tokens) = self.prepare(&request).await?;
        let builder = TurnBuilder::new(&request, tokens);
        let engine = self.clone();
        let id = builder.id().to_string();
        let turn = self.tasks.spawn(&id, async move { engine.complete(&request, builder, &*upstream, &chat).await });
        turn.await.map_err(|err| EngineError::TurnAborted(err.to_string()))?
    }

    async fn complete(
        &self,
        request: &TurnRequest,
        mut builder: TurnBuilder,
        upstream: &dyn Upstream,
        chat: &ChatRequest,
    ) -> EngineResult<Response> {
        let completion = upstream.complete(chat).await?;
        for delta in completion.into_deltas() {
            builder.apply(delta);
        }
        let (_, response, pieces) = builder.finish(None);
        self.save(request, &response, &pieces).await?;
        Ok(response)
    }

    /// Starts a streamed turn. Failures before the upstream starts answering are returned as errors; later ones
    /// end the stream with a failed response. The turn runs to its end and is stored whether or not the
    /// receiver is still listening.
    pub async fn respond_stream(self: &Arc<Self>, request: TurnRequest) -> EngineResult<TurnEvents> {
        let (upstream, chat, tokens) = self.prepare(&request).await?;
        let deltas = upstream.complete_stream(&chat).await?;
        let builder = TurnBuilder::new(&request, tokens);
        let (events, receiver) = mpsc::unbounded_channel();
        let engine = self.clone();
        let id = builder.id().to_string();
        self.tasks.spawn(&id, async move { engine.drive(request, builder, deltas, events).await });
        Ok(receiver)
    }

    async fn drive(
        &self,
        request: TurnRequest,
        mut builder: TurnBuilder,
        mut deltas: DeltaStream,
        events: mpsc::UnboundedSender<TurnEvent>,
    ) {
        // A send fails only when the client has gone; the turn goes on regardless.
        let send = |event| {
            let _ = events.send(event);
        };
        send(builder.created());
        let mut failure = None;
        while let Some(delta) = deltas.next().await {
            match delta {
                Ok(delta) => builder.apply(delta).into_iter().for_each(send),
                Err(err) => {
                    tracing::warn!(error = %err, "upstream failed mid-stream");
                    failure = Some(ResponseError { code: "server_error".into(), message: err.to_string() });
                    break;
                }
            }
        }
        let (closing, mut response, pieces) = builder.finish(failure);
        closing.into_iter().for_each(send);
        if let Err(err) = self.save(&request, &response, &pieces).await {
            tracing::error!(error = %err, response = %response.id, "a streamed turn could not be stored");
            response.status = ResponseStatus::Failed;
            response.completed_at = None;
            response.error = Some(ResponseError {
                code: "server_error".into(),
                message: "The response could not be stored.".into(),
            });
        }
        send(TurnEvent::Finished(response));
    }

    /// Stores a finished turn: the response if `store`, and its input and output in its conversation unless it
    /// failed — all in one transaction.
    async fn save(&self, request: &TurnRequest, response: &Response, pieces: &Pieces) -> EngineResult<()> {
        telemetry::turn_tokens(response.usage.as_ref());
        let conversation = request.conversation.as_deref().filter(|_| response.status != ResponseStatus::Failed);
        if !request.store && conversation.is_none() {
            return Ok(());
        }
        let turn = NewTurn {
            response,
            input: &request.input,
            // counts come from the engine's token counter
            tokens: &[],
            pieces,
            store_response: request.store,
            conversation,
        };
        Ok(self.store.save_turn(&request.tenant, turn).await?)
    }

    /// Routes the model, resolves the history and assembles the upstream request; returns its estimated tokens too.
    async fn prepare(&self, request: &TurnRequest) -> EngineResult<(Arc<dyn Upstream>, ChatRequest, u64)> {
        let upstream = self.upstreams.route(&request.model)?;
        let history = self.history(request).await?;
        let instructions = request.instructions.as_deref().map(ContextRun::instructions).transpose()?;
        let conversation;
        let mut runs: Vec<&ContextRun> = instructions.iter().collect();
        match &history {
            History::Conversation(items) => {
                conversation = ContextRun::new(items)?;
                runs.push(&conversation);
            }
            History::Chain(chain) => {
                for turn in chain.tip.chain() {
                    runs.push(ContextRun::of_turn(turn)?);
                }
            }
        }
        let input = ContextRun::new(&request.input)?;
        runs.push(&input);
        let (messages, tokens) = chat_messages(&runs)?;
        let chat = ChatRequest {
            model: request.model.clone(),
            messages,
            parameters: request.parameters.clone(),
            request_id: request.request_id.clone(),
        };
        Ok((upstream, chat, tokens))
    }

    /// The history a turn continues: its conversation's items, or the chain of its previous response.
    async fn history(&self, request: &TurnRequest) -> EngineResult<History> {
        let tenant = &request.tenant;
        let started = Instant::now();
        let history = match (&request.previous_response_id, &request.conversation) {
            (_, Some(conversation)) => History::Conversation(
                self.store
                    .conversation_items(tenant, conversation)
                    .await?
                    .map(|items| items.into_iter().map(|(item, _)| item).collect())
                    .ok_or_else(|| EngineError::ConversationNotFound(conversation.clone()))?,
            ),
            (Some(id), None) => {
                let chain = self.store.history(tenant, id, self.max_chain_depth).await?;
                let chain = chain.ok_or_else(|| EngineError::PreviousResponseNotFound(id.clone()))?;
                if chain.status() == ResponseStatus::Failed {
                    return Err(EngineError::PreviousResponseFailed(id.clone()));
                }
                let cache = if chain.cached { "hit" } else { "miss" };
                telemetry::history_resolved(chain.tip.depth() as usize, started.elapsed().as_secs_f64(), cache);
                History::Chain(chain)
            }
            (None, None) => History::Conversation(Vec::new()),
        };
        Ok(history)
    }
}

/// What a turn continues.
enum History {
    Conversation(Vec<Item>),
    Chain(Chain),
}
