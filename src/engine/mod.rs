//! The engine shared by every surface: runs turns (history → context → upstream → stored response) and serves
//! stored responses and conversations. It speaks the model types only, never a surface's wire JSON.

mod background;
mod browse;
mod budget;
mod builder;
mod compaction;
mod context;
mod context_wire;
mod conversations;
mod error;
pub mod events;
mod history;
mod present;
mod references;
mod seal;
mod tasks;
mod turn;
mod window;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{BackgroundConfig, ContextConfig, Secret};
use crate::model::{Item, Metadata, Pieces, Response};
use crate::store::{ItemList, Page, PageRequest, Store};
use crate::upstream::{ContextWindows, Parameters, Upstreams};

pub use background::INTERRUPTED;
pub use budget::Budget;
pub use compaction::{CompactRequest, CompactedWindow};
pub use context::TurnRuns;
pub use seal::Sealer;

pub use error::{EngineError, EngineResult, Excess};
pub use events::{DeltaKind, TurnEvent};
pub use history::LocalContext;
pub use present::Presenter;
pub use tasks::TurnTasks;
pub use turn::TurnEvents;

/// One turn as a surface asks for it (serialised as it waits to run in the background, without the client's key).
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// The client request's id, passed to the upstream request (`x-request-id`).
    pub request_id: Option<String>,
    /// The client's own upstream key (`passthrough` authentication), sent in place of the configured one.
    #[serde(skip)]
    pub upstream_key: Option<Secret>,
    /// What to do when the context does not fit the model's window.
    pub truncation: Truncation,
    /// Compaction and window settings of this turn.
    pub context: ContextOptions,
    /// Whether it runs in the background: answered at once as queued, run by a worker, polled by id.
    pub background: bool,
    /// A turn on a WebSocket: the context it continues, when the socket kept it, and whether it calls the model.
    #[serde(skip)]
    pub local: Option<LocalTurn>,
}

/// What a WebSocket adds to a turn.
#[derive(Clone, Debug)]
pub struct LocalTurn {
    /// The whole context of the previous response, kept by the socket: the history, read in place of the store's.
    pub history: Option<Arc<LocalContext>>,
    /// Whether the model is called (false: a warm-up, which resolves the context and completes without output).
    pub generate: bool,
}

/// `truncation`: what a turn whose context does not fit the model's window does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Truncation {
    /// Fail with `context_length_exceeded`, without calling the upstream.
    #[default]
    Disabled,
    /// Drop the oldest whole turns of history until it fits.
    Auto,
}

impl Truncation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Auto => "auto",
        }
    }
}

/// A turn's own compaction and window settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextOptions {
    /// `context_management` asks for compaction: summarize when the context passes `compact_threshold` tokens
    /// (else the model's configured share of its window).
    pub compaction: bool,
    pub compact_threshold: Option<u64>,
    /// `compaction_trigger`: compact the history in this turn.
    pub compact_now: bool,
    /// The context window to fit (LM Studio's `context_length`), over the model's own.
    pub window: Option<u64>,
}

/// The engine: a store, the upstreams, the turns in flight, the limits, and how contexts are fitted to windows.
pub struct Engine {
    store: Arc<dyn Store>,
    upstreams: Upstreams,
    tasks: TurnTasks,
    max_chain_depth: u32,
    context: ContextConfig,
    windows: ContextWindows,
    /// What backends' overflow answers taught of their models' windows.
    calibrations: budget::Calibrations,
    sealer: Sealer,
    background: background::Background,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        upstreams: Upstreams,
        max_chain_depth: u32,
        context: ContextConfig,
        sealer: Sealer,
        background: BackgroundConfig,
    ) -> Self {
        let windows = ContextWindows::default();
        let background = background::Background::new(background);
        let calibrations = budget::Calibrations::default();
        let tasks = TurnTasks::default();
        Self { store, upstreams, tasks, max_chain_depth, context, windows, calibrations, sealer, background }
    }

    /// Stops this server's background workers from claiming more responses (at shutdown; the runs in progress are
    /// drained with the other turns).
    pub fn stop_background(&self) {
        self.background.stop();
    }

    /// The store, for the server's own maintenance tasks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The time now (Unix seconds) by the store's clock, which every stored timestamp reads.
    fn now(&self) -> i64 {
        self.store.clock().timestamp()
    }

    /// The upstreams, for the stateless surfaces.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The turns in flight, which a shutdown waits for.
    pub fn tasks(&self) -> &TurnTasks {
        &self.tasks
    }

    /// A stored response.
    pub async fn response(&self, tenant: &str, id: &str) -> EngineResult<Response> {
        Ok(self.stored_response(tenant, id).await?.0)
    }

    async fn stored_response(&self, tenant: &str, id: &str) -> EngineResult<(Response, Pieces)> {
        self.store.response(tenant, id).await?.ok_or_else(|| EngineError::ResponseNotFound(id.into()))
    }

    /// A page of the input items of a stored response.
    pub async fn input_items(&self, tenant: &str, id: &str, page: &PageRequest) -> EngineResult<Page> {
        let list = ItemList::ResponseInput(id);
        self.store.items_page(tenant, list, page).await?.ok_or_else(|| EngineError::ResponseNotFound(id.into()))
    }

    /// Deletes a stored response.
    pub async fn delete_response(&self, tenant: &str, id: &str) -> EngineResult<()> {
        match self.store.delete_response(tenant, id).await? {
            true => Ok(()),
            false => Err(EngineError::ResponseNotFound(id.into())),
        }
    }
}
