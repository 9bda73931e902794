//! Building the upstream context of a turn: this turn's instructions, then the chain's history, then the new input.

use crate::model::{Item, Role};
use crate::upstream::ChatMessage;

/// The Chat Completions messages for a turn. `developer` becomes `system` (not every backend knows it);
/// reasoning items are not sent back upstream.
pub fn chat_messages(instructions: Option<&str>, history: &[Item], input: &[Item]) -> Vec<ChatMessage> {
    let instructions = instructions.map(|text| ChatMessage { role: "system", content: text.to_string() });
    let items = history.iter().chain(input).filter_map(|item| match item {
        Item::Message(message) => Some(ChatMessage {
            role: match message.role {
                Role::Developer => Role::System.as_str(),
                role => role.as_str(),
            },
            content: message.text(),
        }),
        Item::Reasoning(_) => None,
    });
    instructions.into_iter().chain(items).collect()
}
