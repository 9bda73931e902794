//! Building the upstream context of a turn: this turn's instructions, then the chain's history, then the new input,
//! as Chat Completions messages — function calls and their outputs included, so tool use survives across turns.

use serde_json::{json, Value};

use super::{EngineError, EngineResult};
use crate::model::{ContentPart, Item, Message, Role};
use crate::upstream::{ChatContent, ChatFunction, ChatMessage, ChatRole, ChatToolCall};

/// The Chat Completions messages for a turn. `developer` becomes `system` (not every backend knows it); function
/// calls join the assistant message before them; reasoning items are not sent back upstream. Every function call
/// needs its output later in the context, and every output an earlier call (else 400, as on OpenAI).
pub fn chat_messages(instructions: Option<&str>, history: &[Item], input: &[Item]) -> EngineResult<Vec<ChatMessage>> {
    check_tool_pairs(history.iter().chain(input))?;
    let mut messages: Vec<ChatMessage> =
        instructions.map(|text| ChatMessage::text(ChatRole::System, text)).into_iter().collect();
    for item in history.iter().chain(input) {
        match item {
            Item::Message(message) => messages.push(ChatMessage {
                role: match message.role {
                    Role::User => ChatRole::User,
                    Role::Assistant => ChatRole::Assistant,
                    Role::System | Role::Developer => ChatRole::System,
                },
                content: content(message),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }),
            Item::FunctionCall(call) => {
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
            Item::FunctionCallOutput(output) => messages.push(ChatMessage {
                tool_call_id: Some(output.call_id.clone()),
                ..ChatMessage::text(ChatRole::Tool, output.output.text())
            }),
            Item::Reasoning(_) => {}
        }
    }
    Ok(messages)
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

/// Checks that calls and outputs pair up: each output answers an earlier call, each call gets an output.
fn check_tool_pairs<'a>(items: impl Iterator<Item = &'a Item>) -> EngineResult<()> {
    let mut calls: Vec<&str> = Vec::new();
    let mut unanswered: Vec<&str> = Vec::new();
    for item in items {
        match item {
            Item::FunctionCall(call) => {
                calls.push(&call.call_id);
                unanswered.push(&call.call_id);
            }
            Item::FunctionCallOutput(output) => {
                if !calls.contains(&output.call_id.as_str()) {
                    return Err(EngineError::OutputWithoutCall(output.call_id.clone()));
                }
                unanswered.retain(|id| *id != output.call_id);
            }
            _ => {}
        }
    }
    match unanswered.first() {
        Some(id) => Err(EngineError::CallWithoutOutput((*id).to_string())),
        None => Ok(()),
    }
}
