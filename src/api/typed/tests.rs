//! serde's errors → OpenAI's: exact bodies, with paths into nested arrays.

#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::{self, Bounded};
use super::{from_value, nested};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
struct Request {
    #[allow(dead_code)]
    model: String,
    #[serde(default)]
    input: Vec<Item>,
    #[serde(default, deserialize_with = "rules::decimal::<_, 0, 2>")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "rules::integer::<_, 16, { u64::MAX }>")]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    truncation: Option<Truncation>,
    #[serde(default)]
    label: Option<Bounded<3>>,
    #[serde(default)]
    wrapped: Option<Wrapped>,
    #[serde(default, deserialize_with = "prompt")]
    #[allow(dead_code)]
    prompt: (),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an input item")]
struct Item {
    #[allow(dead_code)]
    role: Role,
    #[allow(dead_code)]
    content: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    User,
    Assistant,
    System,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Truncation {
    Auto,
    Disabled,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    #[allow(dead_code)]
    text: String,
}

/// Read in a second pass, as a type that looks at its `type` first is.
#[derive(Debug)]
struct Wrapped(#[allow(dead_code)] Vec<Part>);

impl<'de> Deserialize<'de> for Wrapped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        nested(value).map(Wrapped)
    }
}

fn prompt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    rules::refused(d, "The 'prompt' parameter")
}

/// The error body of reading `body` as a `Request`.
fn error(body: Value) -> Value {
    let err = from_value::<Request>(body).unwrap_err();
    assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    serde_json::to_value(err.body).unwrap()
}

fn body(message: &str, param: Option<&str>, code: &str) -> Value {
    json!({"message": message, "type": "invalid_request_error", "param": param, "code": code})
}

#[test]
fn missing_unknown_and_null() {
    assert_eq!(
        error(json!({"input": []})),
        body("Missing required parameter: 'model'.", Some("model"), "missing_required_parameter")
    );
    assert_eq!(
        error(json!({"model": null})),
        body("Missing required parameter: 'model'.", Some("model"), "missing_required_parameter")
    );
    assert_eq!(
        error(json!({"model": "m", "bogus": 1})),
        body("Unknown parameter: 'bogus'.", Some("bogus"), "unknown_parameter")
    );
    assert_eq!(
        error(json!({"model": "m", "input": [{"role": "user", "content": [{"text": "a"}, {"text": "b", "x": 1}]}]})),
        body("Unknown parameter: 'input[0].content[1].x'.", Some("input[0].content[1].x"), "unknown_parameter")
    );
    assert_eq!(
        error(json!({"model": "m", "input": [{"role": "user", "content": [{}]}]})),
        body(
            "Missing required parameter: 'input[0].content[0].text'.",
            Some("input[0].content[0].text"),
            "missing_required_parameter"
        )
    );
    // null counts as absent for an optional field.
    assert!(from_value::<Request>(json!({"model": "m", "temperature": null, "truncation": null})).is_ok());
}

#[test]
fn wrong_types() {
    assert_eq!(
        error(json!({"model": 5})),
        body("Invalid type for 'model': expected a string, but got an integer instead.", Some("model"), "invalid_type")
    );
    assert_eq!(
        error(json!({"model": "m", "input": [{"role": "user", "content": [{"text": 1.5}]}]})),
        body(
            "Invalid type for 'input[0].content[0].text': expected a string, but got a decimal instead.",
            Some("input[0].content[0].text"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "input": {}})),
        body("Invalid type for 'input': expected an array, but got an object instead.", Some("input"), "invalid_type")
    );
    assert_eq!(
        error(json!({"model": "m", "input": ["x"]})),
        body(
            "Invalid type for 'input[0]': expected an input item, but got a string instead.",
            Some("input[0]"),
            "invalid_type"
        )
    );
}

#[test]
fn wrong_types_of_numbers_enums_and_the_body() {
    assert_eq!(
        error(json!({"model": "m", "temperature": "hot"})),
        body(
            "Invalid type for 'temperature': expected a number, but got a string instead.",
            Some("temperature"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "max_output_tokens": 20.5})),
        body(
            "Invalid type for 'max_output_tokens': expected an integer, but got a decimal instead.",
            Some("max_output_tokens"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "truncation": 5})),
        body(
            "Invalid type for 'truncation': expected a string, but got an integer instead.",
            Some("truncation"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "wrapped": {"text": "a"}})),
        body(
            "Invalid type for 'wrapped': expected an array, but got an object instead.",
            Some("wrapped"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "input": [[]]})),
        body(
            "Invalid type for 'input[0]': expected an input item, but got an array instead.",
            Some("input[0]"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!([])),
        json!({"message": "The request body must be a JSON object, but got an array instead.", "type": "invalid_request_error", "param": null, "code": "invalid_type"})
    );
}

#[test]
fn bad_values_and_ranges() {
    assert_eq!(
        error(json!({"model": "m", "input": [{"role": "bot", "content": []}]})),
        body(
            "Invalid value: 'bot'. Supported values are: 'user', 'assistant', and 'system'.",
            Some("input[0].role"),
            "invalid_value"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "truncation": "sometimes"})),
        body(
            "Invalid value: 'sometimes'. Supported values are: 'auto' and 'disabled'.",
            Some("truncation"),
            "invalid_value"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "temperature": 3})),
        body(
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
            Some("temperature"),
            "decimal_above_max_value"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "temperature": -0.5})),
        body(
            "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
            Some("temperature"),
            "decimal_below_min_value"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "max_output_tokens": 5})),
        body(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead.",
            Some("max_output_tokens"),
            "integer_below_min_value"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "label": "four"})),
        body(
            "Invalid 'label': string too long. Expected a string with maximum length 3, but got a string with length 4 instead.",
            Some("label"),
            "string_above_max_length"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "prompt": {"id": "p"}})),
        body("The 'prompt' parameter is not supported by this server.", Some("prompt"), "unsupported_parameter")
    );
}

#[test]
fn second_pass_errors_keep_their_whole_path() {
    assert_eq!(
        error(json!({"model": "m", "wrapped": [{"text": "a"}, {"text": 1}]})),
        body(
            "Invalid type for 'wrapped[1].text': expected a string, but got an integer instead.",
            Some("wrapped[1].text"),
            "invalid_type"
        )
    );
    assert_eq!(
        error(json!({"model": "m", "wrapped": [{"text": "a", "y": 0}]})),
        body("Unknown parameter: 'wrapped[0].y'.", Some("wrapped[0].y"), "unknown_parameter")
    );
    assert_eq!(
        error(json!({"model": "m", "wrapped": [{}]})),
        body("Missing required parameter: 'wrapped[0].text'.", Some("wrapped[0].text"), "missing_required_parameter")
    );
    let request = from_value::<Request>(json!({"model": "m", "temperature": 1, "max_output_tokens": 16})).unwrap();
    assert_eq!((request.temperature, request.max_output_tokens), (Some(1.0), Some(16)));
    assert!(request.input.is_empty() && request.truncation.is_none() && request.label.is_none());
    assert!(request.wrapped.is_none());
}
