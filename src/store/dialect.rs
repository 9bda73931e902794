//! What sets the two SQL databases apart for the store: the `Dialect` trait, implemented for sqlx's `Sqlite` and
//! `Postgres` (in `sqlite.rs` and `postgres.rs`), gives the few statements and fragments that differ, what a
//! store of that database keeps besides its pools, and how it knows its history cache is current. Everything else
//! is one implementation, generic over the database type (`sql_store.rs`).

use futures::future::BoxFuture;

use super::sql_store::SqlStore;
use super::StoreResult;

/// A SQL database the store runs on, with what differs from the other one.
pub trait Dialect: sqlx::Database {
    /// What a store of this database keeps besides its pools and its cache (Postgres: what it has heard of other
    /// replicas' deletions).
    type State: Send + Sync + 'static;

    /// What goes before, between and after the INSERTs of responses and of their items to make one atomic
    /// statement of them (one round trip).
    const AT_ONCE: (&'static str, &'static str, &'static str);

    /// The statement that claims the oldest queued background run for worker `$1` until `$2`.
    const CLAIM: &'static str;

    /// The statement (binding tenant and id) that tells other replicas a response was deleted, if there are any.
    const FORGET_NOTICE: Option<&'static str>;

    /// The statement that begins a write transaction.
    const BEGIN_WRITE: &'static str;

    /// The four pieces around a JSON object expression, a key and a value that test a metadata entry.
    const METADATA_MATCH: [&'static str; 4];
    /// The JSON object expression of a response's (`r`) metadata.
    const RESPONSE_METADATA: &'static str;
    /// The JSON object expression of a conversation's (`c`) metadata.
    const CONVERSATION_METADATA: &'static str;

    /// What follows a statement picking rows to purge: lock them, skipping those another transaction holds.
    const SKIP_LOCKED: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Whether the store's cache has heard of every deletion of `tenant` committed so far.
    fn cache_is_current<'a>(store: &'a SqlStore<Self>, tenant: &'a str) -> BoxFuture<'a, StoreResult<bool>>;
}
