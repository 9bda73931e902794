//! Responses-API input (`input`: a string or input items) → the engine's items, validated with OpenAI's errors.

use serde_json::Value;

use super::fields::{check_array_length, invalid_type, invalid_value, Fields};
use crate::api::error::{ApiError, ApiResult};
use crate::model::{
    new_id, Compaction, ContentPart, FunctionCall, FunctionCallOutput, Item, ItemReference, ItemStatus, Message, Phase,
    Reasoning, ReasoningText, Role, ToolOutput,
};

const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];
const ITEM_TYPES: [&str; 7] = [
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "compaction",
    "compaction_trigger",
];

/// Refuses a body whose `input` array holds more than `max` items, before any of them is read.
pub fn check_input_items(body: &Value, max: usize) -> ApiResult<()> {
    match body.get("input") {
        Some(Value::Array(items)) => check_array_length("input", items.len(), max),
        _ => Ok(()),
    }
}

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

/// Takes a `{"type":"compaction_trigger"}` item off the end of an `input` array: whether there was one.
pub fn take_compaction_trigger(input: &mut Value) -> ApiResult<bool> {
    let Value::Array(items) = input else { return Ok(false) };
    let Some(last) = items.last() else { return Ok(false) };
    if last.get("type").and_then(Value::as_str) != Some("compaction_trigger") {
        return Ok(false);
    }
    let param = format!("input[{}]", items.len() - 1);
    if let Some(Value::Object(mut trigger)) = items.pop() {
        trigger.remove("type");
        Fields::new(Value::Object(trigger), &param)?.finish()?;
    }
    Ok(true)
}

/// A user message with one text part.
pub fn user_text(text: String) -> Item {
    Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::User,
        content: vec![ContentPart::InputText { text }],
        phase: None,
    })
}

/// A system message holding `text`: LM Studio's `system_prompt` and the MCP tool's, stored with the first turn so
/// that it stays in the conversation when it is continued.
pub fn system_text(text: String) -> Item {
    Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::System,
        content: vec![ContentPart::InputText { text }],
        phase: None,
    })
}

fn parse_item(value: Value, path: &str) -> ApiResult<Item> {
    // An object with only an `id` is an item reference (its `type` is optional); else the type defaults to message.
    let only_id = value.as_object().is_some_and(|object| object.len() == 1 && object.contains_key("id"));
    let mut fields = Fields::new(value, path)?;
    let default_type = if only_id { "item_reference" } else { "message" };
    let kind = fields.string("type")?.unwrap_or_else(|| default_type.into());
    let item = match kind.as_str() {
        "message" => Item::Message(parse_message(&mut fields)?),
        "function_call" => {
            let id = item_id(&mut fields, "fc")?;
            let call_id = fields.required_string("call_id")?;
            let name = fields.required_string("name")?;
            let arguments = fields.required_string("arguments")?;
            Item::FunctionCall(FunctionCall { id, call_id, name, arguments, status: parse_status(&mut fields)? })
        }
        "function_call_output" => {
            let id = item_id(&mut fields, "fco")?;
            let call_id = fields.required_string("call_id")?;
            let output_param = fields.param("output");
            let output = match fields.required("output")? {
                Value::String(text) => ToolOutput::Text(text),
                Value::Array(parts) => ToolOutput::Parts(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, part)| parse_part(part, &format!("{output_param}[{j}]"), Role::User))
                        .collect::<ApiResult<_>>()?,
                ),
                other => return Err(invalid_type(&output_param, "a string or an array of content parts", &other)),
            };
            Item::FunctionCallOutput(FunctionCallOutput { id, call_id, output, status: parse_status(&mut fields)? })
        }
        "compaction" => {
            // Whether the content opens (was sealed by this server, for this tenant) is the engine's check.
            let id = item_id(&mut fields, "cmp")?;
            Item::Compaction(Compaction { id, encrypted_content: fields.required_string("encrypted_content")? })
        }
        "compaction_trigger" => {
            let message = format!("Invalid '{path}': a compaction_trigger must be the last item of a create's input.");
            return Err(ApiError::invalid(message).param(path).code("invalid_value"));
        }
        "reasoning" => Item::Reasoning(parse_reasoning(&mut fields)?),
        // Resolved by the engine, within what the turn continues.
        "item_reference" => Item::ItemReference(ItemReference { id: fields.required_string("id")? }),
        other => return Err(invalid_value(&fields.param("type"), other, &ITEM_TYPES)),
    };
    fields.finish()?;
    Ok(item)
}

/// A reasoning item sent back (a client without `store` resends the previous output): kept in history as given, and
/// — like reasoning a backend produced — not sent to Chat Completions backends, which take none.
fn parse_reasoning(fields: &mut Fields) -> ApiResult<Reasoning> {
    let id = item_id(fields, "rs")?;
    let summary_param = fields.param("summary");
    let summary = fields.array("summary")?.ok_or_else(|| super::fields::missing(&summary_param))?;
    let summary = summary.into_iter().enumerate().map(|(j, part)| {
        let text = typed_text(part, &format!("{summary_param}[{j}]"), "summary_text")?;
        Ok(serde_json::json!({"type": "summary_text", "text": text}))
    });
    let summary = summary.collect::<ApiResult<_>>()?;
    let content_param = fields.param("content");
    let content = fields.array("content")?.unwrap_or_default().into_iter().enumerate().map(|(j, part)| {
        Ok(ReasoningText { text: typed_text(part, &format!("{content_param}[{j}]"), "reasoning_text")? })
    });
    let content = content.collect::<ApiResult<_>>()?;
    let encrypted_content = fields.string("encrypted_content")?;
    Ok(Reasoning { id, summary, content, encrypted_content, status: parse_status(fields)? })
}

/// The text of a `{type: kind, text}` part.
fn typed_text(part: Value, path: &str, kind: &str) -> ApiResult<String> {
    let mut part = Fields::new(part, path)?;
    part.choice("type", &[kind])?.ok_or_else(|| super::fields::missing(&part.param("type")))?;
    let text = part.required_string("text")?;
    part.finish()?;
    Ok(text)
}

/// The item's `id`, which must have the item type's prefix; a new one when absent.
fn item_id(fields: &mut Fields, prefix: &str) -> ApiResult<String> {
    match fields.string("id")? {
        Some(id) if !id.starts_with(&format!("{prefix}_")) => Err(ApiError::invalid(format!(
            "Invalid '{}': '{id}'. Expected an ID that begins with '{prefix}'.",
            fields.param("id")
        ))
        .param(fields.param("id"))
        .code("invalid_value")),
        Some(id) => {
            super::ids::new_item_id(&fields.param("id"), &id)?;
            Ok(id)
        }
        None => Ok(new_id(prefix)),
    }
}

/// The item's `status` (completed when absent).
fn parse_status(fields: &mut Fields) -> ApiResult<ItemStatus> {
    Ok(match fields.choice("status", &["in_progress", "completed", "incomplete"])?.as_deref() {
        Some("in_progress") => ItemStatus::InProgress,
        Some("incomplete") => ItemStatus::Incomplete,
        _ => ItemStatus::Completed,
    })
}

fn parse_message(fields: &mut Fields) -> ApiResult<Message> {
    let role_name = fields.string("role")?.ok_or_else(|| super::fields::missing(&fields.param("role")))?;
    let role = match role_name.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        "developer" => Role::Developer,
        other => return Err(invalid_value(&fields.param("role"), other, &ROLES)),
    };
    let id = item_id(fields, "msg")?;
    let status = parse_status(fields)?;
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
    let phase = match fields.choice("phase", &["commentary", "final_answer"])?.as_deref() {
        None => None,
        Some(_) if role != Role::Assistant => {
            let message = format!("Invalid '{}': only assistant messages have a phase.", fields.param("phase"));
            return Err(ApiError::invalid(message).param(fields.param("phase")).code("invalid_value"));
        }
        Some("commentary") => Some(Phase::Commentary),
        Some(_) => Some(Phase::FinalAnswer),
    };
    Ok(Message { id, status, role, content, phase })
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
        "input_image" => {
            fields.reject("file_id", "Images by file_id (there is no Files API here; use image_url)")?;
            let image_url = fields.required_string("image_url")?;
            let detail =
                fields.choice("detail", &["low", "high", "auto", "original"])?.unwrap_or_else(|| "auto".into());
            ContentPart::InputImage { image_url, detail }
        }
        "input_file" => {
            fields.reject("file_id", "Files by file_id (there is no Files API here; use file_data)")?;
            fields.reject("file_url", "Files by file_url (use file_data)")?;
            let filename = fields.string("filename")?;
            let file_data = fields.required_string("file_data")?;
            ContentPart::InputFile { filename, file_data }
        }
        other => return Err(invalid_value(&fields.param("type"), other, allowed)),
    };
    fields.finish()?;
    Ok(part)
}
