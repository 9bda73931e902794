//! Persistence: the `Store` trait every backend implements, and opening the one a database URL names.
//!
//! A stored response is a row with its parent pointer plus its own input and output items; a chain's history is
//! resolved from those in one query. Every operation is scoped to a tenant.

mod postgres;
mod sql;
mod sqlite;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::DatabaseConfig;
use crate::error::ApiResult;
use crate::model::{Conversation, Item, Metadata, Pieces, Response, ResponseStatus};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A resolved chain: the status of its last turn and the items of every turn from the root down (input, then
/// output, per turn).
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub status: ResponseStatus,
    pub items: Vec<Item>,
}

/// A finished turn to store.
#[derive(Clone, Copy, Debug)]
pub struct NewTurn<'a> {
    /// The response with its output.
    pub response: &'a Response,
    /// The input it received.
    pub input: &'a [Item],
    /// The pieces its output was streamed in.
    pub pieces: &'a Pieces,
    /// Whether to store the response itself (`store`).
    pub store_response: bool,
    /// A conversation to append the input and output to.
    pub conversation: Option<&'a str>,
}

/// Conversation storage.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a finished turn in one transaction: the response (if `store_response`), and the input and output
    /// appended to its conversation (if any; 404 if that conversation is gone).
    async fn save_turn(&self, tenant: &str, turn: NewTurn<'_>) -> ApiResult<()>;

    /// The stored response with its output and pieces, unless unknown or deleted.
    async fn response(&self, tenant: &str, id: &str) -> ApiResult<Option<(Response, Pieces)>>;

    /// The history up to and including response `id` in one query; `None` if `id` is unknown or deleted.
    /// Deleted ancestors contribute nothing. A chain of more than `max_depth` turns is a 400.
    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> ApiResult<Option<Chain>>;

    /// The input items of response `id` in order; `None` if unknown or deleted.
    async fn input_items(&self, tenant: &str, id: &str) -> ApiResult<Option<Vec<Item>>>;

    /// Erases a response's content, keeping a tombstone with its parent link; false if unknown or deleted.
    async fn delete_response(&self, tenant: &str, id: &str) -> ApiResult<bool>;

    /// Creates a conversation with its first items.
    async fn create_conversation(&self, tenant: &str, conversation: &Conversation, items: &[Item]) -> ApiResult<()>;

    /// A conversation, unless unknown or deleted.
    async fn conversation(&self, tenant: &str, id: &str) -> ApiResult<Option<Conversation>>;

    /// Replaces a conversation's metadata; `None` if unknown or deleted.
    async fn update_conversation(&self, tenant: &str, id: &str, metadata: &Metadata)
        -> ApiResult<Option<Conversation>>;

    /// Deletes a conversation and its items; false if unknown or deleted.
    async fn delete_conversation(&self, tenant: &str, id: &str) -> ApiResult<bool>;

    /// Appends items to a conversation in one transaction; false if it is unknown or deleted, 400
    /// `item_already_in_conversation` if an item id is in it already.
    async fn add_conversation_items(&self, tenant: &str, id: &str, items: &[Item]) -> ApiResult<bool>;

    /// A conversation's items, oldest first; `None` if it is unknown or deleted.
    async fn conversation_items(&self, tenant: &str, id: &str) -> ApiResult<Option<Vec<Item>>>;

    /// Removes one item from a conversation; false if it is not there.
    async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> ApiResult<bool>;

    /// Checks that the database answers.
    async fn ping(&self) -> ApiResult<()>;

    /// How many read statements this store has run (for tests and metrics).
    fn reads(&self) -> u64;
}

/// Opens (creating if needed) and migrates the store a database URL names.
pub async fn open(database_url: &str, config: &DatabaseConfig) -> anyhow::Result<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(database_url, config).await?))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(database_url, config).await?))
    } else {
        anyhow::bail!("unsupported database URL (expected sqlite://PATH or postgres://…)")
    }
}

/// A counter of statements a store ran.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// 404 for a conversation that is unknown, deleted or another tenant's.
pub fn conversation_not_found(id: &str) -> crate::error::ApiError {
    crate::error::ApiError::not_found(format!("Conversation with id '{id}' not found."))
}

/// The error for a chain deeper than the configured limit.
pub fn chain_too_deep(max_depth: u32) -> crate::error::ApiError {
    crate::error::ApiError::invalid(
        format!("The chain of previous responses is longer than this server's limit of {max_depth} turns."),
        Some("previous_response_id".to_string()),
        Some("chain_too_deep"),
    )
}
