//! What a context run sends, in the two shapes upstreams take: Chat Completions messages (reasoning left out,
//! `developer` sent as `system`, function calls joined to the assistant message before them) and Responses API input
//! items (reasoning items a backend can take back, and assistant phases, kept).

use serde_json::{json, Map, Value};

use crate::model::{ContentPart, Item, Message, Role};
use crate::upstream::{ChatContent, ChatFunction, ChatMessage, ChatRole, ChatToolCall};

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
pub(super) fn input_items(sent: &[Sent<'_>]) -> Vec<Value> {
    sent.iter()
        .filter_map(|entry| match entry {
            Sent::Item(Item::Message(message)) => Some(input_message(message)),
            Sent::Item(Item::FunctionCall(call)) => Some(json!({
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            })),
            Sent::Item(Item::FunctionCallOutput(output)) => {
                Some(json!({"type": "function_call_output", "call_id": output.call_id, "output": output.output}))
            }
            Sent::Item(Item::Reasoning(reasoning)) => reasoning.encrypted_content.as_ref().map(|sealed| {
                let mut item = json!({
                    "type": "reasoning",
                    "id": reasoning.id,
                    "summary": reasoning.summary,
                    "encrypted_content": sealed,
                });
                if !reasoning.content.is_empty() {
                    item["content"] = json!(reasoning.content);
                }
                item
            }),
            Sent::Item(Item::Compaction(_) | Item::ItemReference(_)) => None,
            Sent::Instructions(text) => Some(json!({"type": "message", "role": "system", "content": text})),
            Sent::Summary(text) => Some(json!({"type": "message", "role": "user", "content": text})),
        })
        .collect()
}

/// A message as an input item: its text as a string when it is all text, else its parts; an assistant's phase kept.
fn input_message(message: &Message) -> Value {
    let mut item = Map::new();
    item.insert("type".into(), json!("message"));
    item.insert("role".into(), json!(message.role));
    let all_text = message.content.iter().all(|part| part.text().is_some());
    let content = if all_text { json!(message.text()) } else { json!(message.content) };
    item.insert("content".into(), content);
    if let Some(phase) = message.phase {
        item.insert("phase".into(), json!(phase));
    }
    Value::Object(item)
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
