//! What a turn offers the model: function tools, the tool choice and the output format, in the Responses shape
//! that a response echoes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A client-side function tool: `{type:"function", name, description, parameters, strict}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "function")]
pub struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

/// How the model may use the tools.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum ToolChoice {
    None,
    #[default]
    Auto,
    Required,
    /// This function, by name.
    Function(String),
    /// Only these functions (by name) may be called; `required`: one of them must be.
    Allowed {
        required: bool,
        tools: Vec<String>,
    },
}

impl ToolChoice {
    /// Whether a backend may be sent tool `name` (all but those an `allowed_tools` choice leaves out).
    pub fn allows(&self, name: &str) -> bool {
        match self {
            ToolChoice::Allowed { tools, .. } => tools.iter().any(|allowed| allowed == name),
            _ => true,
        }
    }

    /// The Responses wire form: `"auto"` … or `{type:"function", name}`.
    pub fn to_value(&self) -> Value {
        match self {
            ToolChoice::None => json!("none"),
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "name": name}),
            ToolChoice::Allowed { required, tools } => json!({
                "type": "allowed_tools",
                "mode": if *required { "required" } else { "auto" },
                "tools": tools.iter().map(|name| json!({"type": "function", "name": name})).collect::<Vec<_>>(),
            }),
        }
    }
}

/// The format of the text output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum TextFormat {
    #[default]
    Text,
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        name: String,
        schema: Value,
        description: Option<String>,
        strict: Option<bool>,
    },
}

impl TextFormat {
    /// The Responses wire form of `text.format`.
    pub fn to_value(&self) -> Value {
        match self {
            TextFormat::Text => json!({"type": "text"}),
            TextFormat::JsonObject => json!({"type": "json_object"}),
            TextFormat::JsonSchema { name, schema, description, strict } => {
                let mut format = json!({"type": "json_schema", "name": name, "schema": schema, "strict": strict});
                if let Some(description) = description {
                    format["description"] = json!(description);
                }
                format
            }
        }
    }
}

/// A function tool in the Chat Completions form, `{type:"function", function:{name, description?, parameters?,
/// strict?}}`: what a chat backend is offered, and what token counts weigh a tool as.
#[derive(Debug, Serialize)]
pub struct ChatTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ChatToolFunction<'a>,
}

impl<'a> ChatTool<'a> {
    /// A function tool as a request offers it.
    pub fn function(tool: &'a FunctionTool) -> Self {
        ChatTool {
            kind: "function",
            function: ChatToolFunction {
                name: &tool.name,
                description: tool.description.as_deref(),
                parameters: tool.parameters.as_ref(),
                strict: tool.strict,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChatToolFunction<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}
