//! Persistence: the `Store` trait every backend implements, and opening the one a database URL names.
//!
//! A stored response is a row with its parent pointer plus its own input and output items; a chain's history is
//! resolved from those in one query, then kept in the history cache. Finished turns go through a writer task that
//! commits them in groups. Every operation is scoped to a tenant; an unknown id is `None` or `false`, and so is an
//! expired one (`retention.rs`), until the purge erases it.

mod background;
mod cache;
mod dialect;
mod error;
pub mod lists;
mod postgres;
mod retention;
mod sql;
mod sql_items;
mod sql_lists;
mod sql_retention;
mod sql_store;
mod sql_writes;
mod sqlite;
mod statement;
#[cfg(unix)]
mod verify_ca;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::DatabaseConfig;
use crate::model::{Conversation, Item, Metadata, Pieces, Response, ResponseStatus};

pub use background::{ClaimedRun, RunStop};
pub use cache::{CachedTurn, HistoryCache};
pub use error::{StoreError, StoreResult};
pub use lists::{ConversationEntry, ListQuery, NodeUsage, ResponseNode, Tree};
pub use postgres::PostgresStore;
pub use retention::{Cutoffs, Purge, PurgeReport, Retention};
pub use sqlite::SqliteStore;

/// A resolved chain: its last turn, which leads to every turn above it.
#[derive(Clone, Debug)]
pub struct Chain {
    pub tip: Arc<CachedTurn>,
    /// Whether it came from the history cache (else from the database).
    pub cached: bool,
}

impl Chain {
    /// The status of its last turn.
    pub fn status(&self) -> ResponseStatus {
        self.tip.status()
    }

    /// The items of every turn from the root down (input, then output, per turn).
    pub fn items(&self) -> Vec<&Item> {
        self.tip.history()
    }
}

/// How a store's resources are used, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes of the history cache in use.
    pub cache_bytes: usize,
    /// Open database connections, and how many of them are idle.
    pub connections: u32,
    pub idle_connections: u32,
}

/// A finished turn to store.
#[derive(Clone, Copy, Debug)]
pub struct NewTurn<'a> {
    /// The response with its output.
    pub response: &'a Response,
    /// The input it received.
    pub input: &'a [Item],
    /// The token count of each of `input`, then of each of `response.output`, in that order (items beyond its end
    /// are stored without a count).
    pub tokens: &'a [u32],
    /// The pieces its output was streamed in.
    pub pieces: &'a Pieces,
    /// Whether to store the response itself (`store`).
    pub store_response: bool,
    /// A conversation to append the input and output to.
    pub conversation: Option<&'a str>,
}

/// A list of items read a page at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemList<'a> {
    /// The input items of the response with this id.
    ResponseInput(&'a str),
    /// The items of the conversation with this id.
    Conversation(&'a str),
}

/// Which page of an item list to read: the items after the one with id `after` (the list's start when `None`),
/// in `order`, at most `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
    pub order: Order,
}

/// The order of a list: by position, oldest first (`Asc`) or newest first (`Desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One page of items and whether more follow it.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub has_more: bool,
}

/// Conversation storage. Below, "deleted" includes expired: expired data answers exactly as deleted data.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a finished turn in one transaction: the response (if `store_response`), and the input and output
    /// appended to its conversation (if any; `ConversationNotFound` if that conversation is gone).
    async fn save_turn(&self, tenant: &str, turn: NewTurn<'_>) -> StoreResult<()>;

    /// Stores a background response as queued — its row and its input items — with the turn it is to run (`job`),
    /// for a worker of any server to claim.
    async fn enqueue(&self, tenant: &str, queued: NewTurn<'_>, job: &str) -> StoreResult<()>;

    /// Claims the oldest queued background response for `worker` until `lease_until` (ms since the epoch) and marks
    /// it in progress; `None` when none is waiting. Two servers never claim the same one.
    async fn claim(&self, worker: &str, lease_until: i64) -> StoreResult<Option<ClaimedRun>>;

    /// Renews `worker`'s claim on background response `id` until `lease_until`, saving its progress (JSON) when
    /// given; false when the run is no longer its own (cancelled, or taken as interrupted): its worker stops.
    async fn renew(&self, id: &str, worker: &str, lease_until: i64, progress: Option<&str>) -> StoreResult<bool>;

    /// Stores the end of a background response that `worker` ran in place of its queued row (appending it to its
    /// conversation, if any); false, storing nothing, when the run is no longer its own.
    async fn finish_run(&self, tenant: &str, turn: NewTurn<'_>, worker: &str) -> StoreResult<bool>;

    /// Ends a background response still queued or running as `stop` says, with the output it has so far; false when
    /// it has ended already (or its lease has not lapsed, when that is asked).
    async fn stop_run(&self, tenant: &str, id: &str, stop: &RunStop) -> StoreResult<bool>;

    /// How many background responses wait, queued, for a worker of any server.
    async fn waiting_runs(&self) -> StoreResult<u64>;

    /// Up to `limit` running background responses, as (tenant, id), whose lease lapsed before `now` (ms).
    async fn lapsed_runs(&self, now: i64, limit: u32) -> StoreResult<Vec<(String, String)>>;

    /// The stored response with its output and pieces, unless unknown or deleted; a background response still
    /// queued or running has the output it has produced so far.
    async fn response(&self, tenant: &str, id: &str) -> StoreResult<Option<(Response, Pieces)>>;

    /// The history up to and including response `id` in one query; `None` if `id` is unknown or deleted.
    /// Deleted ancestors contribute nothing. A chain of more than `max_depth` turns is `ChainTooDeep`.
    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> StoreResult<Option<Chain>>;

    /// A page of an item list; `None` if its response or conversation is unknown or deleted, `CursorNotFound` if
    /// `after` is not one of its items.
    async fn items_page(&self, tenant: &str, list: ItemList<'_>, page: &PageRequest) -> StoreResult<Option<Page>>;

    /// The stored items of the tenant with these ids, at most one per id, in no particular order: the input and output
    /// items of its responses (not deleted or expired; newest response first should two hold one id), else the items
    /// of its conversations (likewise). An id found nowhere has no item. What an `item_reference` resolves to
    /// when the turn's own chain or conversation does not hold it.
    async fn stored_items(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Item>>;

    /// Erases a response's content, keeping a tombstone with its parent link; false if unknown or deleted.
    async fn delete_response(&self, tenant: &str, id: &str) -> StoreResult<bool>;

    /// Creates a conversation with its first items and their token counts (parallel to `items`).
    async fn create_conversation(
        &self,
        tenant: &str,
        conversation: &Conversation,
        items: &[Item],
        tokens: &[u32],
    ) -> StoreResult<()>;

    /// A conversation, unless unknown or deleted.
    async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>>;

    /// Replaces a conversation's metadata; `None` if unknown or deleted.
    async fn update_conversation(
        &self,
        tenant: &str,
        id: &str,
        metadata: &Metadata,
    ) -> StoreResult<Option<Conversation>>;

    /// Deletes a conversation and its items; false if unknown or deleted.
    async fn delete_conversation(&self, tenant: &str, id: &str) -> StoreResult<bool>;

    /// Appends items, with their token counts (parallel to `items`), to a conversation in one transaction; false if
    /// it is unknown or deleted, `DuplicateItem` if an item id is in it already.
    async fn add_conversation_items(&self, tenant: &str, id: &str, items: &[Item], tokens: &[u32])
        -> StoreResult<bool>;

    /// All of a conversation's items, oldest first (a turn's history), each with its stored token count (`None`
    /// when stored without one); `None` if it is unknown or deleted.
    async fn conversation_items(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<(Item, Option<u32>)>>>;

    /// One item of a conversation, by id: `None` if the conversation is unknown or deleted, `Some(None)` if the
    /// item is not in it.
    async fn conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<Option<Option<Item>>>;

    /// Removes one item from a conversation; false if it is not there.
    async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<bool>;

    /// A page of the conversations, newest or oldest first, as `list` filters them, and whether more follow.
    async fn list_conversations(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ConversationEntry>, bool)>;

    /// A page of the stored responses (not deleted), newest or oldest first, as `list` filters them, and whether more
    /// follow.
    async fn list_responses(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ResponseNode>, bool)>;

    /// Response `id` and the responses that continue it, at most `depth` levels below it and `limit` nodes; `None`
    /// if it is unknown or deleted. A deleted response that is continued is a node of its own.
    async fn response_tree(&self, tenant: &str, id: &str, depth: u32, limit: u32) -> StoreResult<Option<Tree>>;

    /// The server's own value under `name`, storing `default` first if there is none (the first replica to ask sets
    /// it for all).
    async fn setting(&self, name: &str, default: &str) -> StoreResult<String>;

    /// Erases what `scope` names and reports what it deleted: in batches of `retention.purge_batch` rows, each its own
    /// short transaction, until a batch finds nothing. Several replicas may purge at once.
    async fn purge(&self, scope: Purge<'_>) -> StoreResult<PurgeReport>;

    /// The clock every stored timestamp and every expiry decision reads.
    fn clock(&self) -> &Clock;

    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// How its resources are used now.
    fn stats(&self) -> StoreStats;

    /// Shuts the store down: commits every turn already queued, stops and waits for the tasks it runs, and closes
    /// its connections. It answers nothing afterwards. (A store that runs no task of its own has nothing to do.)
    async fn close(&self) {}
}

/// Opens (creating if needed) and migrates the store a database URL names, keeping data as `retention` says.
pub async fn open(database_url: &str, config: &DatabaseConfig, retention: Retention) -> anyhow::Result<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(database_url, config, retention).await?))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(database_url, config, retention).await?))
    } else {
        anyhow::bail!("unsupported database URL (expected sqlite://PATH or postgres://…)")
    }
}
