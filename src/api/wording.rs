//! OpenAI's wording of request errors: the message, `param` and `code` of a wrong type, a bad value, a missing or
//! unknown parameter, and a value out of range.

use serde_json::Value;

use crate::api::error::ApiError;

/// `a string`, `an integer` … for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// 400 `invalid_type`.
pub fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    wrong_type(param, expected, type_name(got))
}

/// 400 `invalid_type`, naming what came (`a string`, `an integer` …).
pub fn wrong_type(param: &str, expected: &str, got: &str) -> ApiError {
    ApiError::invalid(format!("Invalid type for '{param}': expected {expected}, but got {got} instead."))
        .param(param)
        .code("invalid_type")
}

/// 400 `invalid_type` for a body that is not a JSON object.
pub fn not_an_object(got: &str) -> ApiError {
    ApiError::invalid(format!("The request body must be a JSON object, but got {got} instead.")).code("invalid_type")
}

/// 400 `invalid_value` listing the supported values.
pub fn invalid_value(param: &str, value: &str, supported: &[&str]) -> ApiError {
    let quoted: Vec<String> = supported.iter().map(|s| format!("'{s}'")).collect();
    let list = match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    };
    ApiError::invalid(format!("Invalid value: '{value}'. Supported values are: {list}."))
        .param(param)
        .code("invalid_value")
}

/// 400 `missing_required_parameter`.
pub fn missing(param: &str) -> ApiError {
    ApiError::invalid(format!("Missing required parameter: '{param}'.")).param(param).code("missing_required_parameter")
}

/// 400 `unknown_parameter`.
pub fn unknown(param: &str) -> ApiError {
    ApiError::invalid(format!("Unknown parameter: '{param}'.")).param(param).code("unknown_parameter")
}

/// 400 `string_above_max_length` when `s` has more than `max` characters.
pub fn check_length(param: &str, s: &str, max: usize) -> Result<(), ApiError> {
    let length = s.chars().count();
    if length <= max {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
            "Invalid '{param}': string too long. Expected a string with maximum length {max}, but got a string with length {length} instead."
        )).param(param).code("string_above_max_length"))
}

/// 400 `array_above_max_length` when an array of `length` items is longer than `max`.
pub fn check_array_length(param: &str, length: usize, max: usize) -> Result<(), ApiError> {
    if length <= max {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
            "Invalid '{param}': array too long. Expected an array with maximum length {max}, but got an array with length {length} instead."
        )).param(param).code("array_above_max_length"))
}

/// The out-of-range error of a number: `what` is e.g. `decimal below minimum value`, `expected` e.g. `>= 16`.
pub fn out_of_range(param: &str, what: &str, expected: &str, got: &str) -> ApiError {
    let code = what.replace(" minimum value", "_min_value").replace(" maximum value", "_max_value").replace(' ', "_");
    ApiError::invalid(format!("Invalid '{param}': {what}. Expected a value {expected}, but got {got} instead."))
        .param(param)
        .code(code)
}
