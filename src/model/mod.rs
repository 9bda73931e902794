//! The engine's own types: conversation items, the Response object, usage and ids.
//!
//! Items and responses serialize to exactly the OpenAI Responses wire shape, so the store keeps them as JSON and
//! the Responses surface renders them without translation; other surfaces translate from these types.

mod conversation;
mod ids;
mod item;
mod response;
mod tools;

use serde::{Deserialize, Serialize};

pub use conversation::{Conversation, ConversationRef};
pub use ids::new_id;
pub use item::{
    Compaction, ContentPart, FunctionCall, FunctionCallOutput, Item, ItemReference, ItemStatus, Message, Phase,
    Reasoning, ReasoningText, Role, ToolOutput,
};
pub use response::{
    IncompleteDetails, Metadata, ReasoningConfig, Response, ResponseError, ResponseStatus, TextConfig, Usage,
};

pub use tools::{ChatTool, FunctionTool, TextFormat, ToolChoice};

/// For each output item, the deltas it was streamed in; a replay repeats the same events.
pub type Pieces = Vec<Vec<Piece>>;

/// One delta of an output item: its byte length, and how many log probabilities came with it (asked for with
/// `include: ["message.output_text.logprobs"]`). Stored as the bare length when none did, `[length, logprobs]`
/// else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    pub len: usize,
    pub logprobs: usize,
}

impl From<usize> for Piece {
    fn from(len: usize) -> Self {
        Self { len, logprobs: 0 }
    }
}

impl Serialize for Piece {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.logprobs {
            0 => self.len.serialize(serializer),
            logprobs => (self.len, logprobs).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Piece {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Len(usize),
            WithLogprobs(usize, usize),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Len(len) => Self::from(len),
            Stored::WithLogprobs(len, logprobs) => Self { len, logprobs },
        })
    }
}

/// The output a running turn has produced so far, with its pieces: what a background response shows while it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_without_logprobs_are_stored_as_before() {
        let pieces: Pieces = vec![vec![3.into(), Piece { len: 5, logprobs: 2 }], vec![]];
        let json = serde_json::to_string(&pieces).unwrap();
        assert_eq!(json, "[[3,[5,2]],[]]");
        assert_eq!(serde_json::from_str::<Pieces>(&json).unwrap(), pieces);
        assert_eq!(
            serde_json::from_str::<Pieces>("[[2,3],[5]]").unwrap(),
            vec![vec![2.into(), 3.into()], vec![5.into()]]
        );
    }
}
