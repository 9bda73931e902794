//! The engine shared by every surface: runs turns (history → context → upstream → stored response) and serves
//! stored responses. It speaks the model types only, never a surface's wire JSON.

mod builder;
mod context;
mod conversations;
pub mod events;
mod turn;

use std::sync::Arc;

use crate::error::{ApiError, ApiResult};
use crate::model::{Item, Metadata, Pieces, Response};
use crate::store::Store;
use crate::upstream::{Parameters, Upstreams};

pub use events::{DeltaKind, TurnEvent};
pub use turn::TurnEvents;

/// One turn as a surface asks for it.
#[derive(Clone, Debug)]
pub struct TurnRequest {
    pub tenant: String,
    pub model: String,
    /// The new input items, each with its id.
    pub input: Vec<Item>,
    /// System instructions for this turn only (not carried over to later turns).
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    /// Whether to store the response (false: it is not kept; a conversation still gets the turn appended).
    pub store: bool,
    pub metadata: Metadata,
    pub parameters: Parameters,
    /// The conversation whose items are this turn's history, and which gets its input and output appended.
    pub conversation: Option<String>,
}

/// The engine: a store, the upstreams and the limits.
pub struct Engine {
    store: Arc<dyn Store>,
    upstreams: Upstreams,
    max_chain_depth: u32,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, upstreams: Upstreams, max_chain_depth: u32) -> Self {
        Self { store, upstreams, max_chain_depth }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The upstreams, for the stateless surfaces.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// A stored response, or 404.
    pub async fn response(&self, tenant: &str, id: &str) -> ApiResult<Response> {
        Ok(self.stored_response(tenant, id).await?.0)
    }

    /// The events that replay a stored response as it was streamed, or 404.
    pub async fn replay(&self, tenant: &str, id: &str) -> ApiResult<Vec<TurnEvent>> {
        let (response, pieces) = self.stored_response(tenant, id).await?;
        Ok(events::replay(&response, &pieces))
    }

    async fn stored_response(&self, tenant: &str, id: &str) -> ApiResult<(Response, Pieces)> {
        self.store.response(tenant, id).await?.ok_or_else(|| response_not_found(id))
    }

    /// The input items of a stored response, or 404.
    pub async fn input_items(&self, tenant: &str, id: &str) -> ApiResult<Vec<Item>> {
        self.store.input_items(tenant, id).await?.ok_or_else(|| response_not_found(id))
    }

    /// Deletes a stored response, or 404.
    pub async fn delete_response(&self, tenant: &str, id: &str) -> ApiResult<()> {
        match self.store.delete_response(tenant, id).await? {
            true => Ok(()),
            false => Err(response_not_found(id)),
        }
    }
}

fn response_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Response with id '{id}' not found."))
}
