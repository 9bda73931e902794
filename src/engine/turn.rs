//! Running one turn: resolve the chain, call the upstream, build the Response, store it before answering — either at
//! once, or streamed as events. Either way the turn runs in a tracked task, so it finishes and is stored even if
//! the client leaves, and a shutdown waits for it.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::builder::TurnBuilder;
use super::context::chat_messages;
use super::events::TurnEvent;
use super::{Engine, EngineError, EngineResult, TurnRequest};
use crate::model::{Pieces, Response, ResponseError, ResponseStatus};
use crate::store::NewTurn;
use crate::upstream::{estimate_tokens, ChatRequest, DeltaStream, Upstream};

/// The events of a streamed turn, as they happen.
pub type TurnEvents = mpsc::UnboundedReceiver<TurnEvent>;

impl Engine {
    /// Runs a turn to its end and returns the Response; a stored turn is committed before this returns.
    pub async fn respond(self: &Arc<Self>, request: TurnRequest) -> EngineResult<Response> {
        let (upstream, chat) = self.prepare(&request).await?;
        let builder = TurnBuilder::new(&request, estimated_input(&chat));
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
        let (upstream, chat) = self.prepare(&request).await?;
        let deltas = upstream.complete_stream(&chat).await?;
        let builder = TurnBuilder::new(&request, estimated_input(&chat));
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
        let conversation = request.conversation.as_deref().filter(|_| response.status != ResponseStatus::Failed);
        if !request.store && conversation.is_none() {
            return Ok(());
        }
        let turn = NewTurn { response, input: &request.input, pieces, store_response: request.store, conversation };
        Ok(self.store.save_turn(&request.tenant, turn).await?)
    }

    /// Routes the model, resolves the chain and assembles the upstream request.
    async fn prepare(&self, request: &TurnRequest) -> EngineResult<(Arc<dyn Upstream>, ChatRequest)> {
        let upstream = self.upstreams.route(&request.model)?;
        let tenant = &request.tenant;
        let history = match (&request.previous_response_id, &request.conversation) {
            (_, Some(conversation)) => self
                .store
                .conversation_items(tenant, conversation)
                .await?
                .ok_or_else(|| EngineError::ConversationNotFound(conversation.clone()))?,
            (Some(id), None) => {
                let chain = self
                    .store
                    .history(tenant, id, self.max_chain_depth)
                    .await?
                    .ok_or_else(|| EngineError::PreviousResponseNotFound(id.clone()))?;
                if chain.status == ResponseStatus::Failed {
                    return Err(EngineError::PreviousResponseFailed(id.clone()));
                }
                chain.items
            }
            (None, None) => Vec::new(),
        };
        let chat = ChatRequest {
            model: request.model.clone(),
            messages: chat_messages(request.instructions.as_deref(), &history, &request.input)?,
            parameters: request.parameters.clone(),
        };
        Ok((upstream, chat))
    }
}

/// Input tokens to report when the upstream reports none.
fn estimated_input(chat: &ChatRequest) -> u64 {
    chat.messages.iter().map(|m| estimate_tokens(&m.content_text())).sum()
}
