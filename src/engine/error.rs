//! What can go wrong running a turn or serving stored objects, in the engine's terms: the client's own mistakes
//! (unknown ids, unpaired tool calls) and the store's and upstream's failures passed through.

use crate::store::StoreError;
use crate::upstream::UpstreamError;

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
    /// The context does not fit the model's window (counted here, or reported by the backend).
    #[error("Your input exceeds the context window of this model. Please adjust your input and try again.")]
    ContextLengthExceeded,
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

/// The result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

impl From<UpstreamError> for EngineError {
    /// A backend's own context-overflow error is the same as one counted here.
    fn from(err: UpstreamError) -> Self {
        match err.is_context_overflow() {
            true => Self::ContextLengthExceeded,
            false => Self::Upstream(err),
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
