//! What can go wrong reading or writing stored conversations, in the store's own terms (no HTTP here).

/// A failed store operation. Absence (an unknown id) is not an error: operations return `Option` or `bool`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable, saturated, shutting down or too slow; the operation may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// An item id is already in the conversation (its unique key).
    #[error("an item id is already in the conversation")]
    DuplicateItem,
    /// The conversation a turn was to be appended to is unknown or deleted.
    #[error("conversation '{0}' not found")]
    ConversationNotFound(String),
    /// The paging cursor (`after`) names no item of the list.
    #[error("no item with id '{0}' in this list")]
    CursorNotFound(String),
    /// A chain has more turns than the configured limit.
    #[error("the chain is longer than {0} turns")]
    ChainTooDeep(u32),
    /// Stored data could not be encoded or decoded.
    #[error("stored data could not be encoded or decoded: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    /// Lost or garbled connections (a peer that hangs up mid-handshake shows as a protocol error), pool and
    /// statement timeouts and database shutdowns are `Unavailable`; the rest `Database`.
    fn from(err: sqlx::Error) -> Self {
        let unavailable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // Postgres: connection exceptions, server shutdowns, too many connections, statement timeout.
                // SQLite: the database stayed busy or locked past the busy timeout.
                code.starts_with("08")
                    || ["57P01", "57P02", "57P03", "53300", "57014", "5", "6", "517"].contains(&code.as_ref())
            }),
            _ => false,
        };
        if unavailable {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        Self::Corrupt(err.to_string())
    }
}
