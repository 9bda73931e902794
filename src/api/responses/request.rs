//! Reading a create request (`POST /v1/responses`) into a turn, with OpenAI's validation errors.

use serde_json::Value;

use super::tools::{parse_text, parse_tool_choice, parse_tools};
use crate::api::auth::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::api::fields::{invalid_type, missing, parse_metadata, Fields};
use crate::api::ids;
use crate::api::include::Include;
use crate::api::input::{parse_input, take_compaction_trigger};
use crate::engine::{CompactRequest, ContextOptions, EngineError, Truncation, TurnRequest};
use crate::upstream::{Parameters, PromptCacheOptions};

/// A create request: the turn, whether to stream it, and the extras it shows.
pub struct CreateRequest {
    pub turn: TurnRequest,
    pub stream: bool,
    pub include: Include,
}

/// Reads a create request body, rejecting what this server does not implement.
pub fn parse_create(body: Value, caller: Caller, request_id: String) -> ApiResult<CreateRequest> {
    let mut f = Fields::new(body, "")?;
    if f.take("messages").is_some() {
        return Err(ApiError::invalid(
            "Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to 'input'.",
        )
        .param("messages")
        .code("unsupported_parameter"));
    }
    let model = f.required_string("model")?;
    let mut compact_now = false;
    let input = match f.take("input") {
        Some(mut value) => {
            compact_now = take_compaction_trigger(&mut value)?;
            parse_input(value, "input")?
        }
        None => Vec::new(),
    };
    let previous_response_id = f.string("previous_response_id")?;
    let conversation = parse_conversation(&mut f)?;
    if conversation.is_some() && previous_response_id.is_some() {
        return Err(ApiError::invalid("Mutually exclusive parameters: ''. Ensure you are only providing one of: 'previous_response_id' or 'conversation'.").code("mutually_exclusive_parameters"));
    }
    if input.is_empty() && !compact_now && previous_response_id.is_none() && conversation.is_none() {
        return Err(ApiError::invalid(
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be provided.",
        )
        .param("input")
        .code("missing_required_parameter"));
    }
    let instructions = f.string("instructions")?;
    let store = f.bool("store")?.unwrap_or(true);
    let background = f.bool("background")?.unwrap_or(false);
    if background && !store {
        return Err(ApiError::invalid(
            "Background responses must be stored: 'background' requires 'store' to be true.",
        )
        .param("background")
        .code("invalid_value"));
    }
    let metadata = parse_metadata(&mut f)?;
    let include = Include::from_body(&mut f)?;
    let mut parameters = parse_parameters(&mut f)?;
    parameters.logprobs = include.logprobs;
    let stream = parse_stream(&mut f)?;
    let truncation = match f.choice("truncation", &["auto", "disabled"])?.as_deref() {
        Some("auto") => Truncation::Auto,
        _ => Truncation::Disabled,
    };
    let (compaction, compact_threshold) = parse_context_management(&mut f)?;
    let context = ContextOptions { compaction, compact_threshold, compact_now, window: None };
    reject_unimplemented(&mut f)?;
    f.finish()?;
    ids::known_if_some(previous_response_id.as_deref(), EngineError::PreviousResponseNotFound)?;
    ids::known_if_some(conversation.as_deref(), EngineError::ConversationNotFound)?;
    let turn = TurnRequest {
        tenant: caller.tenant,
        model,
        input,
        instructions,
        previous_response_id,
        store,
        metadata,
        parameters,
        conversation,
        request_id: Some(request_id),
        upstream_key: caller.upstream_key,
        truncation,
        context,
        background,
        local: None,
    };
    Ok(CreateRequest { turn, stream, include })
}

/// The fields `POST /v1/responses/input_tokens` takes: those of a create that shape the context.
const COUNT_FIELDS: [&str; 12] = [
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "conversation",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "truncation",
    "context_management",
];

/// Reads an input-tokens request: a create's context fields, read as a create reads them.
pub fn parse_count(body: Value, caller: Caller, request_id: String) -> ApiResult<TurnRequest> {
    if let Value::Object(fields) = &body {
        if let Some(key) = fields.keys().find(|key| !COUNT_FIELDS.contains(&key.as_str())) {
            return Err(ApiError::invalid(format!("Unknown parameter: '{key}'."))
                .param(key.clone())
                .code("unknown_parameter"));
        }
    }
    Ok(parse_create(body, caller, request_id)?.turn)
}

/// Reads a compact request (`POST /v1/responses/compact`).
pub fn parse_compact(body: Value, caller: Caller, request_id: String) -> ApiResult<CompactRequest> {
    let mut f = Fields::new(body, "")?;
    let model = f.required_string("model")?;
    let input = match f.take("input") {
        Some(value) => parse_input(value, "input")?,
        None => Vec::new(),
    };
    let request = CompactRequest {
        tenant: caller.tenant,
        model,
        input,
        instructions: f.string("instructions")?,
        previous_response_id: f.string("previous_response_id")?,
        prompt_cache_key: f.string("prompt_cache_key")?,
        request_id: Some(request_id),
        upstream_key: caller.upstream_key,
    };
    f.finish()?;
    ids::known_if_some(request.previous_response_id.as_deref(), EngineError::PreviousResponseNotFound)?;
    Ok(request)
}

/// `context_management`: `[{"type":"compaction","compact_threshold":N}]` (N at least 1000 tokens; without it, the
/// model's configured threshold): whether compaction is asked for, and its threshold.
fn parse_context_management(f: &mut Fields) -> ApiResult<(bool, Option<u64>)> {
    let (mut compaction, mut threshold) = (false, None);
    for (i, entry) in f.array("context_management")?.unwrap_or_default().into_iter().enumerate() {
        let mut entry = Fields::new(entry, &format!("context_management[{i}]"))?;
        entry.choice("type", &["compaction"])?.ok_or_else(|| missing(&entry.param("type")))?;
        compaction = true;
        threshold = entry.integer("compact_threshold", 1000)?.or(threshold);
        entry.finish()?;
    }
    Ok((compaction, threshold))
}

/// The sampling parameters, tools and output controls forwarded upstream.
fn parse_parameters(f: &mut Fields) -> ApiResult<Parameters> {
    let tools = parse_tools(f)?;
    let tool_choice = parse_tool_choice(f, &tools)?;
    let (text_format, verbosity) = parse_text(f)?;
    Ok(Parameters {
        temperature: f.number("temperature", 0.0, 2.0)?,
        top_p: f.number("top_p", 0.0, 1.0)?,
        max_output_tokens: f.integer("max_output_tokens", 16)?,
        presence_penalty: f.number("presence_penalty", -2.0, 2.0)?,
        frequency_penalty: f.number("frequency_penalty", -2.0, 2.0)?,
        reasoning_effort: parse_reasoning(f)?,
        verbosity,
        user: f.string("user")?,
        safety_identifier: f.short_string("safety_identifier", 64)?,
        prompt_cache_key: f.string("prompt_cache_key")?,
        prompt_cache_retention: f.choice("prompt_cache_retention", &["in_memory", "24h"])?,
        prompt_cache_options: parse_prompt_cache_options(f)?,
        parallel_tool_calls: f.bool("parallel_tool_calls")?,
        max_tool_calls: f.integer("max_tool_calls", 1)?,
        tool_choice,
        tools,
        text_format,
        logprobs: false,
        top_logprobs: f.integer_within("top_logprobs", 0, 20)?,
    })
}

/// `prompt_cache_options`: `{mode: "implicit"|"explicit", ttl}`, forwarded to the backend as given.
fn parse_prompt_cache_options(f: &mut Fields) -> ApiResult<Option<PromptCacheOptions>> {
    let Some(mut options) = f.object("prompt_cache_options")? else { return Ok(None) };
    let mode = options.choice("mode", &["implicit", "explicit"])?;
    let ttl = options.string("ttl")?;
    options.finish()?;
    Ok(Some(PromptCacheOptions { mode, ttl }))
}

/// `conversation`: an id, or `{id}`.
fn parse_conversation(f: &mut Fields) -> ApiResult<Option<String>> {
    match f.take("conversation") {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(value @ Value::Object(_)) => {
            let mut conversation = Fields::new(value, "conversation")?;
            let id = conversation.required_string("id")?;
            conversation.finish()?;
            Ok(Some(id))
        }
        Some(other) => Err(invalid_type("conversation", "a string or an object", &other)),
    }
}

/// `stream`, and `stream_options` (`include_obfuscation`), which only a streamed request may carry.
fn parse_stream(f: &mut Fields) -> ApiResult<bool> {
    let stream = f.bool("stream")?.unwrap_or(false);
    if let Some(mut options) = f.object("stream_options")? {
        if !stream {
            return Err(ApiError::invalid("stream_options is only allowed when stream is true.")
                .param("stream_options")
                .code("invalid_value"));
        }
        // threadline adds no obfuscation padding to its events, whichever value is asked for.
        options.bool("include_obfuscation")?;
        options.finish()?;
    }
    Ok(stream)
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

/// Fields of the Responses API this server does not implement: a clear 400 rather than silence.
fn reject_unimplemented(f: &mut Fields) -> ApiResult<()> {
    let tier = f.choice("service_tier", &["auto", "default", "flex", "scale", "priority"])?;
    if tier.is_some_and(|tier| tier != "auto" && tier != "default") {
        return Err(ApiError::unsupported("service_tier", "A service_tier other than 'auto' or 'default'"));
    }
    for key in ["prompt", "moderation"] {
        f.reject(key, &format!("The '{key}' parameter"))?;
    }
    Ok(())
}
