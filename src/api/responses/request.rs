//! Reading a create request (`POST /v1/responses`) into a turn, with OpenAI's validation errors.

use serde_json::Value;

use crate::api::fields::{check_length, invalid_type, invalid_value, missing, Fields};
use crate::api::input::parse_input;
use crate::engine::TurnRequest;
use crate::error::{ApiError, ApiResult};
use crate::model::Metadata;
use crate::upstream::Sampling;

/// A create request: the turn, and whether to stream it.
pub struct CreateRequest {
    pub turn: TurnRequest,
    pub stream: bool,
}

/// Reads a create request body, rejecting what this server does not implement.
pub fn parse_create(body: Value, tenant: String) -> ApiResult<CreateRequest> {
    let mut f = Fields::new(body, "")?;
    if f.take("messages").is_some() {
        return Err(ApiError::invalid(
            "Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to 'input'.",
            Some("messages".into()),
            Some("unsupported_parameter"),
        ));
    }
    let model = f.required_string("model")?;
    let input = match f.take("input") {
        Some(value) => parse_input(value, "input")?,
        None => Vec::new(),
    };
    let previous_response_id = f.string("previous_response_id")?;
    if input.is_empty() && previous_response_id.is_none() {
        return Err(ApiError::invalid(
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided.",
            Some("input".into()),
            Some("missing_required_parameter"),
        ));
    }
    let instructions = f.string("instructions")?;
    let store = f.bool("store")?.unwrap_or(true);
    let metadata = parse_metadata(&mut f)?;
    let sampling = Sampling {
        temperature: f.number("temperature", 0.0, 2.0)?,
        top_p: f.number("top_p", 0.0, 1.0)?,
        max_output_tokens: f.integer("max_output_tokens", 16)?,
        presence_penalty: f.number("presence_penalty", -2.0, 2.0)?,
        frequency_penalty: f.number("frequency_penalty", -2.0, 2.0)?,
        reasoning_effort: parse_reasoning(&mut f)?,
        verbosity: parse_text(&mut f)?,
        user: f.string("user")?,
        safety_identifier: f.short_string("safety_identifier", 64)?,
        prompt_cache_key: f.string("prompt_cache_key")?,
    };
    let parallel_tool_calls = f.bool("parallel_tool_calls")?.unwrap_or(true);
    let stream = parse_stream(&mut f)?;
    reject_unimplemented(&mut f)?;
    f.finish()?;
    let turn = TurnRequest {
        tenant,
        model,
        input,
        instructions,
        previous_response_id,
        store,
        metadata,
        sampling,
        parallel_tool_calls,
    };
    Ok(CreateRequest { turn, stream })
}

/// `stream`, and `stream_options` (`include_obfuscation`), which only a streamed request may carry.
fn parse_stream(f: &mut Fields) -> ApiResult<bool> {
    let stream = f.bool("stream")?.unwrap_or(false);
    if let Some(mut options) = f.object("stream_options")? {
        if !stream {
            return Err(ApiError::invalid(
                "stream_options is only allowed when stream is true.",
                Some("stream_options".into()),
                Some("invalid_value"),
            ));
        }
        // threadline adds no obfuscation padding to its events, whichever value is asked for.
        options.bool("include_obfuscation")?;
        options.finish()?;
    }
    Ok(stream)
}

/// `metadata`: at most 16 string values, keys up to 64 and values up to 512 characters.
pub fn parse_metadata(f: &mut Fields) -> ApiResult<Metadata> {
    let Some(value) = f.take("metadata") else {
        return Ok(Metadata::new());
    };
    let Value::Object(map) = value else {
        return Err(invalid_type("metadata", "an object", &value));
    };
    if map.len() > 16 {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.",
                map.len()
            ),
            Some("metadata".into()),
            Some("object_above_max_properties"),
        ));
    }
    map.into_iter()
        .map(|(key, value)| {
            check_length("metadata", &key, 64)?;
            let param = format!("metadata.{key}");
            match value {
                Value::String(s) => {
                    check_length(&param, &s, 512)?;
                    Ok((key, s))
                }
                other => Err(invalid_type(&param, "a string", &other)),
            }
        })
        .collect()
}

/// `reasoning`: the effort is forwarded upstream; summaries are not produced by this server.
fn parse_reasoning(f: &mut Fields) -> ApiResult<Option<String>> {
    let Some(mut reasoning) = f.object("reasoning")? else {
        return Ok(None);
    };
    let effort = reasoning.choice("effort", &["none", "minimal", "low", "medium", "high", "xhigh"])?;
    reasoning.reject("summary", "Reasoning summaries")?;
    reasoning.finish()?;
    Ok(effort)
}

/// `text`: plain text output only (structured formats come later); the verbosity is forwarded upstream.
fn parse_text(f: &mut Fields) -> ApiResult<Option<String>> {
    let Some(mut text) = f.object("text")? else {
        return Ok(None);
    };
    if let Some(mut format) = text.object("format")? {
        let kind = format.string("type")?.ok_or_else(|| missing("text.format.type"))?;
        match kind.as_str() {
            "text" => format.finish()?,
            "json_object" | "json_schema" => return Err(ApiError::unsupported("text.format", "Structured output")),
            other => return Err(invalid_value("text.format.type", other, &["text", "json_object", "json_schema"])),
        }
    }
    let verbosity = text.choice("verbosity", &["low", "medium", "high"])?;
    text.finish()?;
    Ok(verbosity)
}

/// Fields of the Responses API this server does not implement: a clear 400 rather than silence.
fn reject_unimplemented(f: &mut Fields) -> ApiResult<()> {
    if f.array("tools")?.is_some_and(|tools| !tools.is_empty()) {
        return Err(ApiError::unsupported("tools", "Tools"));
    }
    match f.take("tool_choice") {
        None => {}
        Some(Value::String(choice)) if choice == "auto" => {}
        Some(_) => return Err(ApiError::unsupported("tool_choice", "A tool_choice other than 'auto'")),
    }
    f.reject("max_tool_calls", "max_tool_calls")?;
    if f.choice("truncation", &["auto", "disabled"])?.as_deref() == Some("auto") {
        return Err(ApiError::unsupported("truncation", "truncation 'auto'"));
    }
    if f.bool("background")? == Some(true) {
        return Err(ApiError::unsupported("background", "Background responses"));
    }
    f.reject("conversation", "The conversation parameter")?;
    if let Some(include) = f.array("include")?.filter(|i| !i.is_empty()) {
        return Err(ApiError::unsupported("include", &format!("include {}", Value::Array(include))));
    }
    let tier = f.choice("service_tier", &["auto", "default", "flex", "scale", "priority"])?;
    if tier.is_some_and(|tier| tier != "auto" && tier != "default") {
        return Err(ApiError::unsupported("service_tier", "A service_tier other than 'auto' or 'default'"));
    }
    if f.integer("top_logprobs", 0)?.is_some_and(|n| n > 0) {
        return Err(ApiError::unsupported("top_logprobs", "Log probabilities"));
    }
    for key in ["prompt", "prompt_cache_retention", "context_management", "moderation"] {
        f.reject(key, &format!("The '{key}' parameter"))?;
    }
    Ok(())
}
