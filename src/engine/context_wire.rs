//! What a context run sends, in the two shapes upstreams take: Chat Completions messages (reasoning left out,
//! `developer` sent as `system`, function calls joined to the assistant message before them) and Responses API input
//! items (reasoning items a backend can take back, and assistant phases, kept).

use serde_json::{json, Value};

use crate::model::{ContentPart, Item, Message, Role};
use crate::upstream::{ChatContent, ChatFunction, ChatMessage, ChatRole, ChatToolCall, InputContent, InputItem};

/// One entry of a run: an item, or text standing in for something.
#[derive(Clone, Debug)]
pub(super) enum Sent<'i> {
    Item(&'i Item),
    /// A turn's instructions: a system message.
    Instructions(&'i str),
    /// A summary of earlier turns: a user message.
    Summary(String),
}

impl Sent<'_> {
    /// The text of a system or developer message (what is kept of a run dropped to fit the window).
    pub fn system_text(&self) -> Option<String> {
        match self {
            Sent::Item(Item::Message(message)) if matches!(message.role, Role::System | Role::Developer) => {
                Some(message.text())
            }
            Sent::Instructions(text) => Some(text.to_string()),
            _ => None,
        }
    }
}

/// The entries as Chat Completions messages.
pub(super) fn chat_messages_of(sent: &[Sent<'_>]) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = Vec::new();
    for entry in sent {
        match entry {
            Sent::Item(Item::Message(message)) => {
                let role = match message.role {
                    Role::User => ChatRole::User,
                    Role::Assistant => ChatRole::Assistant,
                    Role::System | Role::Developer => ChatRole::System,
                };
                messages.push(ChatMessage {
                    role,
                    content: content(message),
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                });
            }
            Sent::Item(Item::FunctionCall(call)) => {
                let tool_call = ChatToolCall {
                    id: call.call_id.clone(),
                    kind: "function".into(),
                    function: ChatFunction { name: call.name.clone(), arguments: call.arguments.clone() },
                };
                match messages.last_mut() {
                    Some(last) if last.role == ChatRole::Assistant => last.tool_calls.push(tool_call),
                    _ => messages.push(ChatMessage {
                        role: ChatRole::Assistant,
                        content: ChatContent::Null,
                        tool_calls: vec![tool_call],
                        tool_call_id: None,
                    }),
                }
            }
            Sent::Item(Item::FunctionCallOutput(output)) => messages.push(ChatMessage {
                tool_call_id: Some(output.call_id.clone()),
                ..ChatMessage::text(ChatRole::Tool, output.output.text())
            }),
            // References were resolved when the turn was admitted; none is left to send.
            Sent::Item(Item::Reasoning(_) | Item::Compaction(_) | Item::ItemReference(_)) => {}
            Sent::Instructions(text) => messages.push(ChatMessage::text(ChatRole::System, *text)),
            Sent::Summary(text) => messages.push(ChatMessage::text(ChatRole::User, text.as_str())),
        }
    }
    messages
}

/// The entries as Responses API input items. Reasoning goes back only in the backend's own opaque form (a reasoning
/// item without one is another backend's, which a Responses backend cannot take); ids stay threadline's.
pub(super) fn input_items(sent: &[Sent<'_>]) -> Vec<InputItem> {
    sent.iter()
        .filter_map(|entry| match entry {
            Sent::Item(Item::Message(message)) => Some(input_message(message)),
            Sent::Item(Item::FunctionCall(call)) => Some(InputItem::FunctionCall {
                call_id: call.call_id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            }),
            Sent::Item(Item::FunctionCallOutput(output)) => {
                Some(InputItem::FunctionCallOutput { call_id: output.call_id.clone(), output: output.output.clone() })
            }
            Sent::Item(Item::Reasoning(reasoning)) => {
                reasoning.encrypted_content.as_ref().map(|sealed| InputItem::Reasoning {
                    id: reasoning.id.clone(),
                    summary: reasoning.summary.clone(),
                    encrypted_content: sealed.clone(),
                    content: reasoning.content.clone(),
                })
            }
            Sent::Item(Item::Compaction(_) | Item::ItemReference(_)) => None,
            Sent::Instructions(text) => Some(InputItem::text(Role::System, *text)),
            Sent::Summary(text) => Some(InputItem::text(Role::User, text.as_str())),
        })
        .collect()
}

/// A message as an input item: its text as a string when it is all text, else its parts; an assistant's phase kept.
fn input_message(message: &Message) -> InputItem {
    let all_text = message.content.iter().all(|part| part.text().is_some());
    let content = match all_text {
        true => InputContent::Text(message.text()),
        false => InputContent::Parts(message.content.clone()),
    };
    InputItem::Message { role: message.role, content, phase: message.phase }
}

/// A message's content: a plain string when it is all text, else chat content parts.
fn content(message: &Message) -> ChatContent {
    if message.content.iter().all(|part| part.text().is_some()) {
        return ChatContent::Text(message.text());
    }
    let parts = message.content.iter().map(|part| match part {
        ContentPart::InputImage { image_url, detail } => {
            json!({"type": "image_url", "image_url": {"url": image_url, "detail": detail}})
        }
        ContentPart::InputFile { filename, file_data } => {
            let mut file = json!({"file_data": file_data});
            if let Some(filename) = filename {
                file["filename"] = json!(filename);
            }
            json!({"type": "file", "file": file})
        }
        text => json!({"type": "text", "text": text.text().unwrap_or_default()}),
    });
    ChatContent::Parts(parts.collect::<Vec<Value>>())
}
