//! What can go wrong running a turn or serving stored objects, in the engine's terms: the client's own mistakes
//! (unknown ids, unpaired tool calls) and the store's and upstream's failures passed through.

use super::budget::Budget;
use crate::store::StoreError;
use crate::upstream::{Overflow, UpstreamError};

/// A failed engine operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `previous_response_id` is unknown, deleted, never stored or another tenant's.
    #[error("Previous response with id '{0}' not found.")]
    PreviousResponseNotFound(String),
    /// `previous_response_id` names a failed response.
    #[error("Previous response with id '{0}' failed and cannot be continued.")]
    PreviousResponseFailed(String),
    /// `previous_response_id` names a background response still queued or running.
    #[error("Previous response with id '{0}' is still in progress; continue it once it has finished.")]
    PreviousResponseInProgress(String),
    /// A cancel names a response that was not created with `background: true`.
    #[error("Only responses created with background=true can be cancelled; '{0}' was not.")]
    NotBackground(String),
    /// A response addressed by id does not exist for this tenant.
    #[error("Response with id '{0}' not found.")]
    ResponseNotFound(String),
    /// A conversation addressed by id does not exist for this tenant.
    #[error("Conversation with id '{0}' not found.")]
    ConversationNotFound(String),
    /// An item addressed by id is not in its conversation.
    #[error("Item with id '{0}' not found.")]
    ItemNotFound(String),
    /// An `item_reference` names no item of what the turn continues (nor of the tenant).
    /// `param` is the field of the input: `input` of a turn, `items` of a conversation.
    #[error("Item with id '{id}' not found.")]
    ItemReferenceNotFound { id: String, param: &'static str },
    /// A `function_call_output` answers no earlier call.
    #[error("No tool call found for function call output with call_id {0}.")]
    OutputWithoutCall(String),
    /// A `function_call` is left without an output.
    #[error("No tool output found for function call {0}.")]
    CallWithoutOutput(String),
    /// The context does not fit the model's window (counted here, or reported by the backend), and by how much.
    #[error("Your input exceeds the context window of this model{0}. Please adjust your input and try again.")]
    ContextLengthExceeded(Excess),
    /// A compaction item in the input was not made by this server for this tenant.
    #[error(
        "The compaction item '{0}' could not be verified: its encrypted_content was not made by this server for you."
    )]
    InvalidCompaction(String),
    /// A turn's context could not be serialised.
    #[error("the context could not be built: {0}")]
    Context(String),
    /// A turn's task stopped without an answer (it panicked).
    #[error("a turn stopped unexpectedly: {0}")]
    TurnAborted(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Upstream(UpstreamError),
}

/// By how much a context is too long, as far as known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Excess {
    /// Counted here: its tokens and the most that fit the model's window, less the reply's share.
    Counted { tokens: u64, limit: u64, budget: Budget },
    /// The backend refused it, with its own numbers where it gave them.
    Backend(Overflow),
}

impl std::fmt::Display for Excess {
    /// The numbers, as the end of a sentence (nothing when none are known).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Excess::Counted { tokens, limit, budget } => {
                write!(f, ": it is {tokens} tokens, and {limit} fit")?;
                match budget.window {
                    Some(window) => {
                        write!(f, " (the window is {window} tokens, {} kept for the output)", budget.reserve)
                    }
                    None => Ok(()),
                }
            }
            Excess::Backend(Overflow { prompt_tokens, window }) => match (prompt_tokens, window) {
                (Some(tokens), Some(window)) => {
                    write!(f, ": the backend counted {tokens} tokens, and its context window is {window} tokens")
                }
                (Some(tokens), None) => write!(f, ": the backend counted {tokens} tokens"),
                (None, Some(window)) => write!(f, ": the backend's context window is {window} tokens"),
                (None, None) => Ok(()),
            },
        }
    }
}

/// The result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

impl From<UpstreamError> for EngineError {
    /// A backend's own context-overflow error is the same as one counted here, with the backend's numbers.
    fn from(err: UpstreamError) -> Self {
        match err.overflow() {
            Some(overflow) => Self::ContextLengthExceeded(Excess::Backend(overflow)),
            None => Self::Upstream(err),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ConversationNotFound(id) => Self::ConversationNotFound(id),
            other => Self::Store(other),
        }
    }
}
