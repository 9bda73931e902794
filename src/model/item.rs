//! Conversation items (messages, function calls and their outputs, reasoning) in the Responses API's item shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::new_id;

/// One item of a conversation: what a turn received as input or produced as output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message(Message),
    FunctionCall(FunctionCall),
    FunctionCallOutput(FunctionCallOutput),
    Reasoning(Reasoning),
    /// What a compaction left of the conversation before it: its summary, sealed.
    Compaction(Compaction),
    /// An input item standing for a stored item by its id: the engine replaces it with a copy of that item before
    /// the turn runs, so none is ever sent upstream, stored or returned.
    ItemReference(ItemReference),
}

impl Item {
    /// The item's id (`msg_…`, `fc_…`, `fco_…`, `rs_…`).
    pub fn id(&self) -> &str {
        match self {
            Item::Message(m) => &m.id,
            Item::FunctionCall(c) => &c.id,
            Item::FunctionCallOutput(o) => &o.id,
            Item::Reasoning(r) => &r.id,
            Item::Compaction(c) => &c.id,
            Item::ItemReference(r) => &r.id,
        }
    }

    /// A copy of the item under a new id of its type's prefix: what an item reference becomes in the turn that
    /// names it (ids stay unique within a conversation and a chain).
    pub fn renamed(&self) -> Item {
        let mut item = self.clone();
        match &mut item {
            Item::Message(m) => m.id = new_id("msg"),
            Item::FunctionCall(c) => c.id = new_id("fc"),
            Item::FunctionCallOutput(o) => o.id = new_id("fco"),
            Item::Reasoning(r) => r.id = new_id("rs"),
            Item::Compaction(c) => c.id = new_id("cmp"),
            Item::ItemReference(_) => {}
        }
        item
    }

    /// The item as announced when it starts streaming: in progress, with no content yet.
    pub fn started(&self) -> Item {
        let status = ItemStatus::InProgress;
        match self {
            Item::Message(m) => Item::Message(Message { status, content: Vec::new(), ..m.clone() }),
            Item::FunctionCall(c) => Item::FunctionCall(FunctionCall { status, arguments: String::new(), ..c.clone() }),
            Item::FunctionCallOutput(o) => Item::FunctionCallOutput(FunctionCallOutput { status, ..o.clone() }),
            Item::Reasoning(r) => Item::Reasoning(Reasoning { status, content: Vec::new(), ..r.clone() }),
            Item::Compaction(_) | Item::ItemReference(_) => self.clone(),
        }
    }

    /// The item's text: a message's text parts, a call's arguments, an output's text, or the reasoning text (a
    /// compaction's summary is sealed: none).
    pub fn text(&self) -> String {
        match self {
            Item::Message(m) => m.text(),
            Item::FunctionCall(c) => c.arguments.clone(),
            Item::FunctionCallOutput(o) => o.output.text(),
            Item::Reasoning(r) => r.content.iter().map(|part| part.text.as_str()).collect::<Vec<_>>().join("\n"),
            Item::Compaction(_) | Item::ItemReference(_) => String::new(),
        }
    }

    /// The item's status (a compaction is always complete).
    pub fn status(&self) -> ItemStatus {
        match self {
            Item::Message(m) => m.status,
            Item::FunctionCall(c) => c.status,
            Item::FunctionCallOutput(o) => o.status,
            Item::Reasoning(r) => r.status,
            Item::Compaction(_) | Item::ItemReference(_) => ItemStatus::Completed,
        }
    }

    /// Appends streamed text: to a message's first text part or a reasoning item's text (made if there is none
    /// yet), or to a call's arguments. Other items take no text.
    pub fn append_text(&mut self, text: &str) {
        match self {
            Item::Message(m) => {
                if m.content.is_empty() {
                    m.content.push(ContentPart::output_text(""));
                }
                if let ContentPart::OutputText { text: whole, .. } = &mut m.content[0] {
                    whole.push_str(text);
                }
            }
            Item::Reasoning(r) => match r.content.first_mut() {
                Some(part) => part.text.push_str(text),
                None => r.content.push(ReasoningText { text: text.into() }),
            },
            Item::FunctionCall(c) => c.arguments.push_str(text),
            Item::FunctionCallOutput(_) | Item::Compaction(_) | Item::ItemReference(_) => {}
        }
    }

    /// Appends the log probabilities of streamed text to a message's first text part (other items take none).
    pub fn append_logprobs(&mut self, logprobs: &[serde_json::Value]) {
        if let Item::Message(Message { content, .. }) = self {
            if let Some(ContentPart::OutputText { logprobs: all, .. }) = content.first_mut() {
                all.extend_from_slice(logprobs);
            }
        }
    }

    /// The log probabilities of a message's first text part (none for other items).
    pub fn logprobs(&self) -> &[serde_json::Value] {
        match self {
            Item::Message(Message { content, .. }) => match content.first() {
                Some(ContentPart::OutputText { logprobs, .. }) => logprobs,
                _ => &[],
            },
            _ => &[],
        }
    }

    /// Sets the item's status.
    pub fn set_status(&mut self, status: ItemStatus) {
        match self {
            Item::Message(m) => m.status = status,
            Item::FunctionCall(c) => c.status = status,
            Item::FunctionCallOutput(o) => o.status = status,
            Item::Reasoning(r) => r.status = status,
            Item::Compaction(_) | Item::ItemReference(_) => {}
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
    Developer,
}

/// Whether an item is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

/// A message item: `{id, type:"message", status, role, content:[parts]}`, and an assistant message's `phase` when
/// the client gave one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub status: ItemStatus,
    pub role: Role,
    pub content: Vec<ContentPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

/// What an assistant message is in an agent's turn: working notes (`commentary`) or its answer (`final_answer`).
/// Kept and returned as given; no Chat Completions backend has it, so it is not sent upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Commentary,
    FinalAnswer,
}

impl Message {
    /// The message's text: its text parts joined by newlines (refusals count as text, images and files not).
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.content.iter().filter_map(ContentPart::text).collect();
        texts.join("\n")
    }
}

/// A part of a message's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    /// An image by URL or data URL.
    InputImage {
        image_url: String,
        detail: String,
    },
    /// A file given inline as a data URL (or bare base64).
    InputFile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        file_data: String,
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

    /// The part's text, if it is a text part.
    pub fn text(&self) -> Option<&str> {
        match self {
            ContentPart::InputText { text } | ContentPart::OutputText { text, .. } => Some(text),
            ContentPart::Refusal { refusal } => Some(refusal),
            ContentPart::InputImage { .. } | ContentPart::InputFile { .. } => None,
        }
    }
}

/// A call of a client-side function tool made by the model: `{id:"fc_…", call_id, name, arguments, status}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub id: String,
    pub call_id: String,
    pub name: String,
    /// The arguments as a JSON string, as the model wrote them.
    pub arguments: String,
    pub status: ItemStatus,
}

/// The client's result of a function call: `{id, call_id, output, status}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallOutput {
    pub id: String,
    pub call_id: String,
    pub output: ToolOutput,
    pub status: ItemStatus,
}

/// A function call's output: a string, or content parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ToolOutput {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl ToolOutput {
    /// The output's text (text parts joined by newlines).
    pub fn text(&self) -> String {
        match self {
            ToolOutput::Text(text) => text.clone(),
            ToolOutput::Parts(parts) => parts.iter().filter_map(ContentPart::text).collect::<Vec<_>>().join("\n"),
        }
    }
}

/// A reasoning item: the model's visible thinking, kept in history but never sent back upstream as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reasoning {
    pub id: String,
    pub summary: Vec<serde_json::Value>,
    pub content: Vec<ReasoningText>,
    /// Internal: the backend's opaque form of the reasoning (a Responses backend's encrypted reasoning, or a blob a
    /// client sent that did not open as threadline's). Never shown as it is: `engine::Presenter` shows it sealed, or
    /// not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    pub status: ItemStatus,
}

/// `{type:"reasoning_text", text}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename = "reasoning_text")]
pub struct ReasoningText {
    pub text: String,
}

/// A compaction item: `{type:"compaction", id:"cmp_…", encrypted_content}`. The content is opaque to clients: the
/// summary, sealed to its tenant with the server's key, and (for a compaction made inside a chain) the last turn it
/// stands for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Compaction {
    pub id: String,
    pub encrypted_content: String,
}

/// An item reference: `{type:"item_reference", id}`, the id of a stored item the turn's input includes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemReference {
    pub id: String,
}
