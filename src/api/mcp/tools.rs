//! The MCP tools' arguments, as Rust types whose JSON Schemas are the tools' input schemas, and the tool list.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// `stateful_chat`: one turn of a conversation kept by the server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatefulChat {
    /// What to say in this turn.
    pub prompt: String,
    /// Continue from this stored turn (any earlier turn's id, to branch); null or absent starts a conversation.
    #[serde(default)]
    pub response_id: Option<String>,
    /// The model to ask; default: the server's `mcp.default_model`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub model: Option<String>,
    /// Instructions kept for the whole conversation: only when starting one (with `response_id`, it is ignored).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Return the model's reasoning text or summary, when it produced one.
    #[serde(default)]
    pub include_reasoning: bool,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    #[schemars(range(min = 0, max = 2))]
    pub temperature: Option<f64>,
    /// Most tokens the answer may have.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
}

/// `get_conversation`: the turns of a chain.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConversation {
    /// The last turn of the chain to read.
    pub response_id: String,
    /// Most turns to return, the newest ones (1 to 100).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: u32,
}

fn default_limit() -> u32 {
    20
}

/// `delete_conversation_turn`: delete one stored turn.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteTurn {
    /// The turn to delete.
    pub response_id: String,
}

/// The input schema of an argument type: its JSON Schema, without the root's `$schema`, `title` and (Rust-facing)
/// `description`, nor the `"default": null` of optional fields.
fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut schema = (*rmcp::handler::server::common::schema_for_type::<T>()).clone();
    for key in ["$schema", "title", "description"] {
        schema.remove(key);
    }
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut().filter_map(Value::as_object_mut) {
            if property.get("default") == Some(&Value::Null) {
                property.remove("default");
            }
        }
    }
    Arc::new(schema)
}

/// Every tool the server offers.
pub fn list() -> Vec<Tool> {
    vec![
        Tool::new(
            "stateful_chat",
            "Say something to a model in a conversation the server keeps. Start one without `response_id`; continue \
             it later (or branch from any earlier turn) by passing the `response_id` a turn returned.",
            schema::<StatefulChat>(),
        ),
        Tool::new(
            "get_conversation",
            "The turns of the conversation ending at `response_id`, oldest first: each turn's prompt and answer.",
            schema::<GetConversation>(),
        ),
        Tool::new(
            "delete_conversation_turn",
            "Delete a stored turn: it can no longer be read or continued.",
            schema::<DeleteTurn>(),
        ),
    ]
}
