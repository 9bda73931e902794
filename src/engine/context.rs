//! Building the upstream context of a turn: this turn's instructions, then the history, then the new input, as Chat
//! Completions messages — function calls and their outputs included, so tool use survives across turns.
//!
//! Items become messages a run at a time: a stored turn's run is made once, kept with the turn in the history cache
//! and shared by every chain through it, so a turn's context costs copying bytes, not converting its whole history.

use serde_json::{json, Value};

use super::{EngineError, EngineResult};
use crate::model::{ContentPart, Item, Message, Role};
use crate::store::CachedTurn;
use crate::upstream::{
    estimate_tokens, ChatContent, ChatFunction, ChatMessage, ChatMessages, ChatRole, ChatToolCall, MessageRun,
};

/// A run of items as upstream messages: serialised once, with the tool calls and outputs among them (to pair them
/// across the whole context) and an estimate of their tokens.
#[derive(Debug)]
pub struct ContextRun {
    messages: MessageRun,
    tools: Vec<ToolUse>,
    tokens: u64,
}

/// A function call made, or answered, by its call id.
#[derive(Debug)]
enum ToolUse {
    Call(String),
    Output(String),
}

impl ContextRun {
    /// The messages of `items`. `developer` becomes `system` (not every backend knows it); function calls join the
    /// assistant message before them in the run; reasoning items are not sent back upstream.
    pub fn new<'a>(items: impl IntoIterator<Item = &'a Item>) -> EngineResult<Self> {
        let mut messages: Vec<ChatMessage> = Vec::new();
        let mut tools = Vec::new();
        for item in items {
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
                    tools.push(ToolUse::Call(call.call_id.clone()));
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
                Item::FunctionCallOutput(output) => {
                    tools.push(ToolUse::Output(output.call_id.clone()));
                    messages.push(ChatMessage {
                        tool_call_id: Some(output.call_id.clone()),
                        ..ChatMessage::text(ChatRole::Tool, output.output.text())
                    });
                }
                Item::Reasoning(_) => {}
            }
        }
        Self::of(&messages, tools)
    }

    /// The run of a stored turn, made the first time a chain needs it and kept with the cached turn.
    pub fn of_turn(turn: &CachedTurn) -> EngineResult<&Self> {
        let run = turn.derived(|items, _| Self::new(items).map_err(|err| err.to_string()));
        match run {
            Some(Ok(run)) => Ok(run),
            Some(Err(err)) => Err(EngineError::Context(err.clone())),
            None => Err(EngineError::Context("a cached turn holds something else".into())),
        }
    }

    /// A turn's instructions, as a system message.
    pub fn instructions(text: &str) -> EngineResult<Self> {
        Self::of(&[ChatMessage::text(ChatRole::System, text)], Vec::new())
    }

    fn of(messages: &[ChatMessage], tools: Vec<ToolUse>) -> EngineResult<Self> {
        let tokens = messages.iter().map(|message| estimate_tokens(&message.content_text())).sum();
        let run = MessageRun::new(messages).map_err(|err| EngineError::Context(err.to_string()))?;
        Ok(Self { messages: run, tools, tokens })
    }
}

/// The context made of `runs`, in order, and its estimated tokens. Every function call needs its output later in the
/// context, and every output an earlier call (else 400, as on OpenAI).
pub fn chat_messages(runs: &[&ContextRun]) -> EngineResult<(ChatMessages, u64)> {
    check_tool_pairs(runs.iter().flat_map(|run| &run.tools))?;
    let messages = ChatMessages::join(runs.iter().map(|run| &run.messages));
    Ok((messages, runs.iter().map(|run| run.tokens).sum()))
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
fn check_tool_pairs<'a>(uses: impl Iterator<Item = &'a ToolUse>) -> EngineResult<()> {
    let mut calls: Vec<&str> = Vec::new();
    let mut unanswered: Vec<&str> = Vec::new();
    for tool_use in uses {
        match tool_use {
            ToolUse::Call(id) => {
                calls.push(id);
                unanswered.push(id);
            }
            ToolUse::Output(id) => {
                if !calls.contains(&id.as_str()) {
                    return Err(EngineError::OutputWithoutCall(id.clone()));
                }
                unanswered.retain(|call| call != id);
            }
        }
    }
    match unanswered.first() {
        Some(id) => Err(EngineError::CallWithoutOutput((*id).to_string())),
        None => Ok(()),
    }
}
