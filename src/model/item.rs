//! Conversation items (messages, reasoning) in the Responses API's item shape.

use serde::{Deserialize, Serialize};

/// One item of a conversation: what a turn received as input or produced as output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message(Message),
    Reasoning(Reasoning),
}

impl Item {
    /// The item's id (`msg_…`, `rs_…`).
    pub fn id(&self) -> &str {
        match self {
            Item::Message(m) => &m.id,
            Item::Reasoning(r) => &r.id,
        }
    }

    /// The item as announced when it starts streaming: in progress, with no content yet.
    pub fn started(&self) -> Item {
        match self {
            Item::Message(m) => {
                Item::Message(Message { status: ItemStatus::InProgress, content: Vec::new(), ..m.clone() })
            }
            Item::Reasoning(r) => {
                Item::Reasoning(Reasoning { status: ItemStatus::InProgress, content: Vec::new(), ..r.clone() })
            }
        }
    }

    /// The item's text: a message's text parts, or a reasoning item's reasoning text.
    pub fn text(&self) -> String {
        match self {
            Item::Message(m) => m.text(),
            Item::Reasoning(r) => r.content.iter().map(|part| part.text.as_str()).collect::<Vec<_>>().join("\n"),
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
    Developer,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Developer => "developer",
        }
    }
}

/// Whether an item is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

/// A message item: `{id, type:"message", status, role, content:[parts]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub status: ItemStatus,
    pub role: Role,
    pub content: Vec<ContentPart>,
}

impl Message {
    /// The message's text: its text parts joined by newlines (refusals count as text).
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.content.iter().map(ContentPart::text).collect();
        texts.join("\n")
    }
}

/// A part of a message's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
        #[serde(default)]
        annotations: Vec<serde_json::Value>,
        #[serde(default)]
        logprobs: Vec<serde_json::Value>,
    },
    Refusal {
        refusal: String,
    },
}

impl ContentPart {
    /// An assistant's text part with empty annotations and logprobs.
    pub fn output_text(text: impl Into<String>) -> Self {
        ContentPart::OutputText { text: text.into(), annotations: Vec::new(), logprobs: Vec::new() }
    }

    /// The part's text.
    pub fn text(&self) -> &str {
        match self {
            ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => text,
            ContentPart::Refusal { refusal } => refusal,
        }
    }
}

/// A reasoning item: the model's visible thinking, kept in history but never sent back upstream as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    pub id: String,
    pub summary: Vec<serde_json::Value>,
    pub content: Vec<ReasoningText>,
    pub status: ItemStatus,
}

/// `{type:"reasoning_text", text}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "reasoning_text")]
pub struct ReasoningText {
    pub text: String,
}
