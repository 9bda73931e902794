//! Reading `tools`, `tool_choice` and `text.format` of a create request.

use serde_json::Value;

use crate::api::error::{ApiError, ApiResult};
use crate::api::fields::{invalid_type, invalid_value, missing, Fields};
use crate::model::{FunctionTool, TextFormat, ToolChoice};

/// `tools`: flat function tools `{type:"function", name, description?, parameters?, strict?}`.
pub fn parse_tools(f: &mut Fields) -> ApiResult<Vec<FunctionTool>> {
    let tools = f.array("tools")?.unwrap_or_default();
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let mut tool = Fields::new(tool, &format!("tools[{i}]"))?;
            let kind = tool.required_string("type")?;
            if kind != "function" {
                return Err(ApiError::unsupported(&tool.param("type"), &format!("A tool of type '{kind}'")));
            }
            let name = tool.required_string("name")?;
            check_name(&tool.param("name"), &name)?;
            let description = tool.string("description")?;
            let parameters = match tool.take("parameters") {
                None => None,
                Some(schema @ Value::Object(_)) => Some(schema),
                Some(other) => return Err(invalid_type(&tool.param("parameters"), "an object", &other)),
            };
            let strict = tool.bool("strict")?;
            tool.finish()?;
            Ok(FunctionTool { name, description, parameters, strict })
        })
        .collect()
}

/// `tool_choice`: `none`, `auto`, `required`, or `{type:"function", name}` naming one of `tools`.
pub fn parse_tool_choice(f: &mut Fields, tools: &[FunctionTool]) -> ApiResult<Option<ToolChoice>> {
    let choice = match f.take("tool_choice") {
        None => return Ok(None),
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => return Err(invalid_value("tool_choice", other, &["none", "auto", "required"])),
        },
        Some(value @ Value::Object(_)) => {
            let mut choice = Fields::new(value, "tool_choice")?;
            let kind = choice.required_string("type")?;
            let parsed = match kind.as_str() {
                "function" => ToolChoice::Function(known_tool(choice.required_string("name")?, tools)?),
                "allowed_tools" => parse_allowed_tools(&mut choice, tools)?,
                _ => return Err(ApiError::unsupported("tool_choice.type", &format!("tool_choice of type '{kind}'"))),
            };
            choice.finish()?;
            parsed
        }
        Some(other) => return Err(invalid_type("tool_choice", "a string or an object", &other)),
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
        return Err(ApiError::invalid("Tool choice 'required' needs at least one tool in 'tools'.")
            .param("tool_choice")
            .code("invalid_value"));
    }
    Ok(Some(choice))
}

/// `{type:"allowed_tools", mode:"auto"|"required", tools:[{type:"function", name}]}`: the functions the model may call
/// this turn, each one of `tools`.
fn parse_allowed_tools(choice: &mut Fields, tools: &[FunctionTool]) -> ApiResult<ToolChoice> {
    let mode = choice.choice("mode", &["auto", "required"])?.ok_or_else(|| missing("tool_choice.mode"))?;
    let listed = choice.array("tools")?.ok_or_else(|| missing("tool_choice.tools"))?;
    if listed.is_empty() {
        return Err(ApiError::invalid("'tool_choice.tools' must name at least one tool.")
            .param("tool_choice.tools")
            .code("invalid_value"));
    }
    let names = listed.into_iter().enumerate().map(|(i, tool)| {
        let mut tool = Fields::new(tool, &format!("tool_choice.tools[{i}]"))?;
        let kind = tool.required_string("type")?;
        if kind != "function" {
            return Err(ApiError::unsupported(&tool.param("type"), &format!("An allowed tool of type '{kind}'")));
        }
        let name = known_tool(tool.required_string("name")?, tools)?;
        tool.finish()?;
        Ok(name)
    });
    Ok(ToolChoice::Allowed { required: mode == "required", tools: names.collect::<ApiResult<_>>()? })
}

/// `name`, when it names one of `tools`.
fn known_tool(name: String, tools: &[FunctionTool]) -> ApiResult<String> {
    if !tools.iter().any(|tool| tool.name == name) {
        return Err(ApiError::invalid(format!("Tool choice '{name}' not found in 'tools' parameter."))
            .param("tool_choice")
            .code("invalid_value"));
    }
    Ok(name)
}

/// `text`: the output format (`text`, `json_object`, or a flat `json_schema`) and the verbosity.
pub fn parse_text(f: &mut Fields) -> ApiResult<(TextFormat, Option<String>)> {
    let Some(mut text) = f.object("text")? else {
        return Ok((TextFormat::Text, None));
    };
    let format = match text.object("format")? {
        None => TextFormat::Text,
        Some(mut format) => {
            let kind = format.string("type")?.ok_or_else(|| missing("text.format.type"))?;
            let parsed = match kind.as_str() {
                "text" => TextFormat::Text,
                "json_object" => TextFormat::JsonObject,
                "json_schema" => {
                    let name = format.required_string("name")?;
                    check_name("text.format.name", &name)?;
                    let schema = match format.required("schema")? {
                        schema @ Value::Object(_) => schema,
                        other => return Err(invalid_type("text.format.schema", "an object", &other)),
                    };
                    let description = format.string("description")?;
                    let strict = format.bool("strict")?;
                    TextFormat::JsonSchema { name, schema, description, strict }
                }
                other => return Err(invalid_value("text.format.type", other, &["text", "json_object", "json_schema"])),
            };
            format.finish()?;
            parsed
        }
    };
    let verbosity = text.choice("verbosity", &["low", "medium", "high"])?;
    text.finish()?;
    Ok((format, verbosity))
}

/// Function and schema names: 1–64 of `a-z A-Z 0-9 _ -`.
fn check_name(param: &str, name: &str) -> ApiResult<()> {
    let valid =
        (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "Invalid '{param}': '{name}'. Expected a string of 1 to 64 letters, digits, underscores or dashes."
    ))
    .param(param)
    .code("invalid_value"))
}
