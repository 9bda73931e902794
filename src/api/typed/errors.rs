//! serde's errors while reading a typed body, in OpenAI's wording: `missing field` is `missing_required_parameter`,
//! `unknown field` is `unknown_parameter`, `invalid type` is `invalid_type` (a `null` where a value is required counts
//! as missing), `unknown variant` is `invalid_value` listing the supported values. The parameter is the path
//! `serde_path_to_error` tracked (`input[2].content[0].text`).
//!
//! A type's own `Deserialize` speaks through serde's custom errors in two marked forms: a refusal (`refuse`) carries
//! its code and message, and a value read in a second pass (`nested`) carries its inner path and error, to be joined
//! to the outer path here.

use serde::de;
use serde_path_to_error::{Error, Path, Segment};

use crate::api::error::ApiError;
use crate::api::wording::{invalid_value, missing, unknown, wrong_type};

/// Opens a refusal: `REFUSAL code REFUSAL message`.
const REFUSAL: char = '\u{1}';
/// Opens a nested error: `NESTED path NESTED inner error`.
const NESTED: char = '\u{2}';
/// Stands for the parameter's path in a refusal's message.
pub const PARAM: &str = "\u{3}";

/// The OpenAI error of a failed typed read.
pub fn to_api_error(err: Error<serde_json::Error>) -> ApiError {
    let param = param_of(err.path());
    describe(&param, &err.inner().to_string())
}

/// A refusal: OpenAI's error built with `PARAM` for the parameter, which stands for the value's path once it is known.
pub fn refuse<E: de::Error>(err: ApiError) -> E {
    let code = err.body.code.unwrap_or_default();
    E::custom(format!("{REFUSAL}{code}{REFUSAL}{}", err.body.message))
}

/// The error of a value read in a second pass (after its `type` was looked at) at `prefix` below the value being
/// read, to be reported at the outer path.
pub fn nested<E: de::Error>(prefix: &str, err: Error<serde_json::Error>) -> E {
    E::custom(format!("{NESTED}{}{NESTED}{}", join(prefix, &param_of(err.path())), err.inner()))
}

/// `input[2].content[0].text`: a path as a parameter name (empty for the body itself).
fn param_of(path: &Path) -> String {
    path.iter().fold(String::new(), |param, segment| match segment {
        Segment::Seq { index } => format!("{param}[{index}]"),
        Segment::Map { key } => join(&param, key),
        Segment::Enum { .. } | Segment::Unknown => param,
    })
}

/// `outer.inner`, `outer[0]`, or either alone.
fn join(outer: &str, inner: &str) -> String {
    if outer.is_empty() || inner.is_empty() || inner.starts_with('[') {
        format!("{outer}{inner}")
    } else {
        format!("{outer}.{inner}")
    }
}

/// The OpenAI error of serde's `message` at `param`.
fn describe(param: &str, message: &str) -> ApiError {
    if let Some(rest) = message.strip_prefix(NESTED) {
        let (inner_param, inner) = rest.split_once(NESTED).unwrap_or(("", rest));
        return describe(&join(param, inner_param), inner);
    }
    if let Some(rest) = message.strip_prefix(REFUSAL) {
        let (code, text) = rest.split_once(REFUSAL).unwrap_or(("", rest));
        let err = ApiError::invalid(text.replace(PARAM, param)).param(param);
        return if code.is_empty() { err } else { err.code(code) };
    }
    if let Some(field) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
        return missing(&join(param, field));
    }
    if message.starts_with("unknown field `") {
        return unknown(param);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        return unknown_variant(param, rest);
    }
    if let Some((got, expected)) =
        message.strip_prefix("invalid type: ").and_then(|rest| rest.rsplit_once(", expected "))
    {
        return invalid_type(param, got, expected);
    }
    if let Some((_, expected)) =
        message.strip_prefix("invalid length ").and_then(|rest| rest.rsplit_once(", expected "))
    {
        return wrong_type(param, expectation(expected), "an array");
    }
    if let Some((got, expected)) =
        message.strip_prefix("invalid value: ").and_then(|rest| rest.rsplit_once(", expected "))
    {
        let message =
            format!("Invalid value for '{param}': expected {}, but got {} instead.", expectation(expected), got);
        return ApiError::invalid(message).param(param).code("invalid_value");
    }
    ApiError::invalid(format!("Invalid '{param}': {message}.")).param(param)
}

/// `invalid type: GOT, expected EXPECTED`: a null where a value is required is a missing parameter.
fn invalid_type(param: &str, got: &str, expected: &str) -> ApiError {
    let got = value_kind(got);
    match got {
        "null" => missing(param),
        got => wrong_type(param, expectation(expected), got),
    }
}

/// `unknown variant `VALUE`, expected one of `a`, `b`` (or `expected `a` or `b``, or `expected `a``).
fn unknown_variant(param: &str, rest: &str) -> ApiError {
    let (value, expected) = rest.rsplit_once("`, expected ").unwrap_or((rest, ""));
    let supported: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    invalid_value(param, value, &supported)
}

/// What serde says a value was (`integer `5``, `string "x"` …), as OpenAI says it (`an integer`, `a string`).
fn value_kind(unexpected: &str) -> &str {
    const KINDS: [(&str, &str); 8] = [
        ("boolean", "a boolean"),
        ("integer", "an integer"),
        ("floating point", "a decimal"),
        ("string", "a string"),
        ("sequence", "an array"),
        ("map", "an object"),
        ("null", "null"),
        ("unit value", "null"),
    ];
    KINDS.iter().find(|(serde, _)| unexpected.starts_with(serde)).map_or(unexpected, |(_, openai)| openai)
}

/// What serde says was expected (`a sequence`, `u64`, `struct Tool` …), as OpenAI says it; a type's own
/// `expecting` wording is kept.
fn expectation(expected: &str) -> &str {
    match expected {
        "a sequence" => "an array",
        "a map" => "an object",
        "string or map" => "a string",
        "a JSON number" | "f64" | "f32" => "a number",
        "u64" | "i64" | "u32" | "i32" | "u16" | "u8" | "i128" | "u128" | "usize" => "an integer",
        other if other.starts_with("struct ") || other.starts_with("map") => "an object",
        other => other,
    }
}
