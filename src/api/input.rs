//! Responses-API input (`input`: a string or input items) → the engine's items, validated with OpenAI's errors.

use serde_json::Value;

use super::fields::{invalid_type, invalid_value, Fields};
use crate::error::{ApiError, ApiResult};
use crate::model::{new_id, ContentPart, Item, ItemStatus, Message, Role};

const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];
const ITEM_TYPES: [&str; 5] = ["message", "function_call", "function_call_output", "reasoning", "item_reference"];

/// The items of `input`, each with an id; an empty string or array gives no items.
pub fn parse_input(value: Value, param: &str) -> ApiResult<Vec<Item>> {
    match value {
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![user_text(text)]),
        Value::Array(items) => {
            items.into_iter().enumerate().map(|(i, item)| parse_item(item, &format!("{param}[{i}]"))).collect()
        }
        other => Err(invalid_type(param, "a string or an array of input items", &other)),
    }
}

/// A user message with one text part.
pub fn user_text(text: String) -> Item {
    Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::User,
        content: vec![ContentPart::InputText { text }],
    })
}

fn parse_item(value: Value, path: &str) -> ApiResult<Item> {
    let mut fields = Fields::new(value, path)?;
    let kind = fields.string("type")?.unwrap_or_else(|| "message".into());
    match kind.as_str() {
        "message" => parse_message(fields).map(Item::Message),
        "function_call" | "function_call_output" | "reasoning" | "item_reference" => {
            Err(ApiError::unsupported(&fields.param("type"), &format!("An input item of type '{kind}'")))
        }
        other => Err(invalid_value(&fields.param("type"), other, &ITEM_TYPES)),
    }
}

fn parse_message(mut fields: Fields) -> ApiResult<Message> {
    let role_name = fields.string("role")?.ok_or_else(|| super::fields::missing(&fields.param("role")))?;
    let role = match role_name.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        "developer" => Role::Developer,
        other => return Err(invalid_value(&fields.param("role"), other, &ROLES)),
    };
    let id = match fields.string("id")? {
        Some(id) if !id.starts_with("msg_") => {
            return Err(ApiError::invalid(
                format!("Invalid '{}': '{id}'. Expected an ID that begins with 'msg'.", fields.param("id")),
                Some(fields.param("id")),
                Some("invalid_value"),
            ))
        }
        Some(id) => id,
        None => new_id("msg"),
    };
    let status = match fields.choice("status", &["in_progress", "completed", "incomplete"])?.as_deref() {
        Some("in_progress") => ItemStatus::InProgress,
        Some("incomplete") => ItemStatus::Incomplete,
        _ => ItemStatus::Completed,
    };
    let content_param = fields.param("content");
    let content = match fields.required("content")? {
        Value::String(text) if role == Role::Assistant => vec![ContentPart::output_text(text)],
        Value::String(text) => vec![ContentPart::InputText { text }],
        Value::Array(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| parse_part(part, &format!("{content_param}[{j}]"), role))
            .collect::<ApiResult<_>>()?,
        other => return Err(invalid_type(&content_param, "a string or an array of content parts", &other)),
    };
    fields.finish()?;
    Ok(Message { id, status, role, content })
}

fn parse_part(value: Value, path: &str, role: Role) -> ApiResult<ContentPart> {
    let mut fields = Fields::new(value, path)?;
    let kind = fields.required_string("type")?;
    let allowed: &[&str] = match role {
        Role::Assistant => &["output_text", "refusal"],
        _ => &["input_text", "input_image", "input_file"],
    };
    if !allowed.contains(&kind.as_str()) {
        return Err(invalid_value(&fields.param("type"), &kind, allowed));
    }
    let part = match kind.as_str() {
        "input_text" => ContentPart::InputText { text: fields.required_string("text")? },
        "output_text" => {
            let text = fields.required_string("text")?;
            let annotations = fields.array("annotations")?.unwrap_or_default();
            let logprobs = fields.array("logprobs")?.unwrap_or_default();
            ContentPart::OutputText { text, annotations, logprobs }
        }
        "refusal" => ContentPart::Refusal { refusal: fields.required_string("refusal")? },
        other => {
            return Err(ApiError::unsupported(&fields.param("type"), &format!("A content part of type '{other}'")))
        }
    };
    fields.finish()?;
    Ok(part)
}
