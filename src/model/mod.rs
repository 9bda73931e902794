//! The engine's own types: conversation items, the Response object, usage and ids.
//!
//! Items and responses serialize to exactly the OpenAI Responses wire shape, so the store keeps them as JSON and
//! the Responses surface renders them without translation; other surfaces translate from these types.

mod conversation;
mod ids;
mod item;
mod response;
mod tools;

pub use conversation::{Conversation, ConversationRef};
pub use ids::new_id;
pub use item::{
    Compaction, ContentPart, FunctionCall, FunctionCallOutput, Item, ItemReference, ItemStatus, Message, Phase,
    Reasoning, ReasoningText, Role, ToolOutput,
};
pub use response::{
    IncompleteDetails, Metadata, ReasoningConfig, Response, ResponseError, ResponseStatus, TextConfig, Usage,
};

pub use tools::{FunctionTool, TextFormat, ToolChoice};

/// For each output item, the byte lengths of the deltas it was streamed in; a replay repeats the same events.
pub type Pieces = Vec<Vec<usize>>;

/// The output a running turn has produced so far, with its pieces: what a background response shows while it runs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub output: Vec<Item>,
    pub pieces: Pieces,
}

impl Progress {
    /// The output as it stands when the turn is stopped: items still growing are cut short (incomplete).
    pub fn stopped(mut self) -> Self {
        for item in &mut self.output {
            if item.status() == ItemStatus::InProgress {
                item.set_status(ItemStatus::Incomplete);
            }
        }
        self
    }
}
