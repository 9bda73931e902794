//! Bad input never gets a 5xx, a panic or a non-JSON answer: every field of rich valid requests is replaced by
//! values of every other shape, and each answer must be a success or OpenAI's error envelope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};

fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(18446744073709551615u64),
        json!(""),
        json!("x"),
        json!("\u{0}\u{ffff}"),
        json!([]),
        json!([null]),
        json!([{}]),
        json!({}),
        json!({"type": null}),
    ]
}

/// Replaces each top-level field of `body` (and each field of its first nested object or array item) in turn.
fn variants(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let fields = body.as_object().unwrap();
    // `stream: true` is valid and answers with events, so `stream` keeps its value.
    for (key, value) in fields.iter().filter(|(key, _)| *key != "stream") {
        for odd in odd_values() {
            let mut changed = body.clone();
            changed[key] = odd.clone();
            out.push(changed);
            let nested = match value {
                Value::Array(items) => items.first().and_then(Value::as_object).map(|o| (format!("/{key}/0"), o)),
                Value::Object(object) => Some((format!("/{key}"), object)),
                _ => None,
            };
            if let Some((pointer, object)) = nested {
                for inner in object.keys() {
                    let mut changed = body.clone();
                    *changed.pointer_mut(&format!("{pointer}/{inner}")).unwrap() = odd.clone();
                    out.push(changed);
                }
            }
        }
    }
    out
}

fn assert_sane(path: &str, body: &Value, status: u16, answer: &Value) {
    assert!(status < 500, "{path} {body} → {status} {answer}");
    if status >= 400 {
        let error = &answer["error"];
        assert!(error["message"].is_string() && error["type"].is_string(), "{path} {body} → {answer}");
    }
}

#[tokio::test]
async fn odd_values_in_every_field_get_clean_answers() {
    let server = TestApp::start("echo").await;
    let previous = server.turn("hello", None).await;
    let (_, conversation) = server.post("/v1/conversations", json!({})).await;
    let requests = [
        (
            "/v1/responses",
            json!({"model": "m", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                "instructions": "be brief", "previous_response_id": previous, "store": true, "metadata": {"k": "v"},
                "temperature": 1, "top_p": 1, "max_output_tokens": 64, "tools": [{"type": "function", "name": "f", "parameters": {}}],
                "tool_choice": "auto", "text": {"format": {"type": "text"}, "verbosity": "low"}, "reasoning": {"effort": "low"},
                "parallel_tool_calls": true, "max_tool_calls": 2, "user": "u", "stream": false}),
        ),
        (
            "/v1/responses",
            json!({"model": "m", "conversation": conversation["id"], "input": [
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "ok"}]}),
        ),
        (
            "/api/v1/chat",
            json!({"model": "m", "input": [{"type": "text", "content": "hi"}], "system_prompt": "s",
            "previous_response_id": previous, "store": true, "temperature": 0.5, "max_output_tokens": 32, "stream": false}),
        ),
        ("/v1/conversations", json!({"items": [{"role": "user", "content": "hi"}], "metadata": {"k": "v"}})),
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
        ),
    ];
    let mut checked = 0;
    for (path, valid) in requests {
        for body in variants(&valid) {
            let (status, answer) = server.post(path, body.clone()).await;
            assert_sane(path, &body, status, &answer);
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}

#[tokio::test]
async fn odd_paths_and_queries_get_clean_answers() {
    let server = TestApp::start("echo").await;
    let id = server.turn("hello", None).await;
    let paths = [
        format!("/v1/responses/{id}?stream=true&starting_after=-1"),
        format!("/v1/responses/{id}?starting_after=99999999999999999999999"),
        format!("/v1/responses/{id}/input_items?limit=1&limit=500"),
        format!("/v1/responses/{id}/input_items?order=&after="),
        "/v1/responses/%FF%FE".to_string(),
        "/v1/responses/%2F..%2F".to_string(),
        "/v1/conversations/conv_x/items/msg_x?include[]=x".to_string(),
        "/v1/conversations/%00/items".to_string(),
    ];
    for path in paths {
        let response = server.client.get(format!("{}{path}", server.base)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(status < 500, "{path} → {status} {text}");
        if status >= 400 {
            let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} → not JSON: {text}"));
            assert!(answer["error"]["message"].is_string(), "{path} → {answer}");
        }
    }
}
