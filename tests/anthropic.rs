//! The `anthropic` upstream: exactly what the Messages API receives (system prompt apart, alternating messages,
//! cache breakpoints on the stable prefix, tools, thinking, headers), and how its answers, plain and streamed, and
//! its errors come back through `/v1/responses` and `/api/v1/chat`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::anthropic_mock::{anthropic_stream, anthropic_usage, AnthropicMock, Reply};
use common::{assert_error, upstream, TestApp};
use serde_json::{json, Value};
use threadline::config::{Secret, UpstreamConfig, UpstreamKind};

const WEATHER: &str = r#"{"city":"Paris"}"#;

/// threadline in front of the mock, as an `anthropic` upstream with a key (and prompt caching on or off).
async fn app(prompt_cache: bool) -> (AnthropicMock, TestApp) {
    let mock = AnthropicMock::start().await;
    let config = UpstreamConfig {
        name: "claude".into(),
        kind: UpstreamKind::Anthropic,
        api_key: Some(Secret("sk-ant-test".into())),
        prompt_cache,
        ..upstream(&mock.url)
    };
    let server = TestApp::builder().config(move |c| c.upstreams = vec![config]).start().await.unwrap();
    (mock, server)
}

fn text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn cached(mut block: Value) -> Value {
    block["cache_control"] = json!({"type": "ephemeral"});
    block
}

fn message(role: &str, content: Vec<Value>) -> Value {
    json!({"role": role, "content": content})
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// A completed assistant message output item with this text (its id taken from `item`).
fn assistant_message(item: &Value, text: &str) -> Value {
    json!({"type": "message", "id": item["id"], "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// A completed reasoning output item with this text (its id taken from `item`).
fn reasoning(item: &Value, text: &str) -> Value {
    json!({"type": "reasoning", "id": item["id"], "summary": [], "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed"})
}

/// The usage threadline reports for Anthropic's (input 5, cache read 100, cache write 20, output 7).
fn usage_with_cache() -> Value {
    json!({"input_tokens": 125, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}, "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 132})
}

#[tokio::test]
async fn a_plain_answer_sends_the_exact_request_and_reads_text_and_cached_usage() {
    let (mock, server) = app(true).await;
    mock.push(Reply::Message {
        content: json!([text("Hello"), text(" there")]),
        stop_reason: "end_turn",
        usage: anthropic_usage(5, 100, 20, 7),
    });
    let response = server
        .create(json!({"model": "claude-x", "instructions": "Be brief", "temperature": 0.5,
            "input": [{"role": "developer", "content": "Speak English"}, {"role": "user", "content": "Hi"}]}))
        .await;
    let received = mock.take();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].api_key.as_deref(), Some("sk-ant-test"));
    assert_eq!(received[0].version.as_deref(), Some("2023-06-01"));
    assert_eq!(
        received[0].body,
        json!({"model": "claude-x", "max_tokens": 4096, "temperature": 0.5,
            "system": [cached(text("Be brief\n\nSpeak English"))],
            "messages": [message("user", vec![text("Hi")])]})
    );
    assert_eq!(response["status"], "completed");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert_eq!(output[0], assistant_message(&output[0], "Hello there"));
    assert_eq!(response["usage"], usage_with_cache());
}

#[tokio::test]
async fn a_streamed_answer_arrives_delta_by_delta_with_its_usage() {
    let (mock, server) = app(true).await;
    let deltas = vec![json!({"type": "text_delta", "text": "Hel"}), json!({"type": "text_delta", "text": "lo"})];
    mock.push(Reply::Stream(anthropic_stream(vec![(text(""), deltas)], "max_tokens", anthropic_usage(5, 100, 20, 7))));
    let events = server
        .stream("/v1/responses", json!({"model": "claude-x", "input": "Hi", "stream": true, "max_output_tokens": 99}))
        .await;
    let events = events.rest_json().await;
    assert_eq!(
        mock.only_body(),
        json!({"model": "claude-x", "max_tokens": 99, "stream": true, "messages": [message("user", vec![text("Hi")])]})
    );
    let deltas: Vec<&str> = events.iter().filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(deltas, ["Hel", "lo"]);
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "incomplete", "max_tokens is a length stop");
    assert_eq!(last["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(last["usage"], usage_with_cache());
}

/// Two turns; the second request's system prompt and messages.
async fn second_request(prompt_cache: bool) -> Value {
    let (mock, server) = app(prompt_cache).await;
    let first = server.create(json!({"model": "claude-x", "instructions": "Be brief", "input": "Hi"})).await;
    let first_body = mock.only_body();
    let system = if prompt_cache { cached(text("Be brief")) } else { text("Be brief") };
    // No history: only the system prompt is marked.
    assert_eq!(first_body["system"], json!([system]));
    assert_eq!(first_body["messages"], json!([message("user", vec![text("Hi")])]));
    server
        .create(json!({"model": "claude-x", "instructions": "Be brief", "input": "And?",
            "previous_response_id": first["id"]}))
        .await;
    mock.only_body()
}

#[tokio::test]
async fn a_chain_marks_the_system_prompt_and_the_end_of_its_history_for_caching() {
    let body = second_request(true).await;
    assert_eq!(body["system"], json!([cached(text("Be brief"))]));
    assert_eq!(
        body["messages"],
        json!([
            message("user", vec![text("Hi")]),
            message("assistant", vec![cached(text("answer to Hi"))]),
            message("user", vec![text("And?")]),
        ])
    );
}

#[tokio::test]
async fn without_prompt_caching_no_breakpoint_is_sent() {
    let body = second_request(false).await;
    assert_eq!(body["system"], json!([text("Be brief")]));
    assert_eq!(
        body["messages"],
        json!([
            message("user", vec![text("Hi")]),
            message("assistant", vec![text("answer to Hi")]),
            message("user", vec![text("And?")]),
        ])
    );
}

#[tokio::test]
async fn consecutive_messages_of_one_role_merge_and_images_become_image_blocks() {
    let (mock, server) = app(true).await;
    let input = json!([
        {"role": "user", "content": "Look"},
        {"role": "user", "content": [{"type": "input_text", "text": "at these"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K"},
            {"type": "input_image", "image_url": "https://example.com/cat.jpg"}]},
    ]);
    server.create(json!({"model": "claude-x", "input": input})).await;
    let image = |source: Value| json!({"type": "image", "source": source});
    assert_eq!(
        mock.only_body()["messages"],
        json!([message(
            "user",
            vec![
                text("Look"),
                text("at these"),
                image(json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0K"})),
                image(json!({"type": "url", "url": "https://example.com/cat.jpg"})),
            ]
        )])
    );
}

#[tokio::test]
async fn a_tool_use_becomes_a_function_call_and_its_output_a_tool_result() {
    let (mock, server) = app(true).await;
    mock.push(Reply::Message {
        content: json!([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]),
        stop_reason: "tool_use",
        usage: anthropic_usage(10, 0, 0, 5),
    });
    let first = server
        .create(json!({"model": "claude-x", "input": "Weather in Paris?", "tools": [weather_tool()],
            "tool_choice": "required", "parallel_tool_calls": false, "reasoning": {"effort": "low"}}))
        .await;
    let body = mock.only_body();
    // Anthropic refuses thinking with a forced tool choice.
    assert_eq!(body.get("thinking"), None, "{body}");
    assert_eq!(
        body["tools"],
        json!([{"name": "get_weather", "description": "Current weather", "input_schema": weather_tool()["parameters"]}])
    );
    assert_eq!(body["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    let call = &first["output"][0];
    assert_eq!(first["output"].as_array().unwrap().len(), 1);
    assert_eq!(
        call,
        &json!({"type": "function_call", "id": call["id"], "call_id": "toolu_1", "name": "get_weather",
            "arguments": WEATHER, "status": "completed"})
    );
    server
        .create(json!({"model": "claude-x", "previous_response_id": first["id"], "tools": [weather_tool()],
            "tool_choice": "auto", "reasoning": {"effort": "low"},
            "input": [{"type": "function_call_output", "call_id": "toolu_1", "output": "21C"}]}))
        .await;
    let body = mock.only_body();
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    // Continuing a tool call would need the call's thinking back, which is not kept: no thinking.
    assert_eq!(body.get("thinking"), None, "{body}");
    assert_eq!(
        body["messages"],
        json!([
            message("user", vec![text("Weather in Paris?")]),
            message(
                "assistant",
                vec![cached(
                    json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
                )]
            ),
            message("user", vec![json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"})]),
        ])
    );
}

#[tokio::test]
async fn streamed_argument_pieces_assemble_into_the_call() {
    let (mock, server) = app(true).await;
    let pieces = vec![
        json!({"type": "input_json_delta", "partial_json": "{\"city\":"}),
        json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"}),
    ];
    let start = json!({"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}});
    let intro = vec![json!({"type": "text_delta", "text": "Checking."})];
    mock.push(Reply::Stream(anthropic_stream(
        vec![(text(""), intro), (start, pieces)],
        "tool_use",
        anthropic_usage(10, 0, 0, 5),
    )));
    let events = server
        .stream(
            "/v1/responses",
            json!({"model": "claude-x", "input": "Weather?", "tools": [weather_tool()], "stream": true}),
        )
        .await;
    let events = events.rest_json().await;
    let arguments: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, ["{\"city\":", "\"Paris\"}"]);
    let output = &events.last().unwrap()["response"]["output"];
    assert_eq!(output[0]["content"][0]["text"], "Checking.");
    assert_eq!(output[1]["call_id"], "toolu_2");
    assert_eq!(output[1]["arguments"], WEATHER);
}

#[tokio::test]
async fn thinking_becomes_a_reasoning_item_and_is_not_sent_back() {
    let (mock, server) = app(true).await;
    mock.push(Reply::Message {
        content: json!([{"type": "thinking", "thinking": "Six times seven.", "signature": "sig"}, text("42")]),
        stop_reason: "end_turn",
        usage: anthropic_usage(10, 0, 0, 5),
    });
    let first = server.create(json!({"model": "claude-x", "input": "6*7?", "reasoning": {"effort": "low"}})).await;
    let body = mock.only_body();
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    assert_eq!(body["max_tokens"], 4096);
    let output = first["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{first}");
    assert_eq!(output[0], reasoning(&output[0], "Six times seven."));
    assert_eq!(output[1], assistant_message(&output[1], "42"));

    // Streamed: thinking deltas, a signature (ignored), then text.
    let thinking = vec![
        json!({"type": "thinking_delta", "thinking": "Add "}),
        json!({"type": "thinking_delta", "thinking": "one."}),
        json!({"type": "signature_delta", "signature": "sig"}),
    ];
    mock.push(Reply::Stream(anthropic_stream(
        vec![
            (json!({"type": "thinking", "thinking": ""}), thinking),
            (text(""), vec![json!({"type": "text_delta", "text": "43"})]),
        ],
        "end_turn",
        anthropic_usage(10, 0, 0, 5),
    )));
    let events = server
        .stream(
            "/v1/responses",
            json!({"model": "claude-x", "input": "plus one?", "previous_response_id": first["id"],
            "reasoning": {"effort": "high"}, "stream": true}),
        )
        .await;
    let events = events.rest_json().await;
    let body = mock.only_body();
    // The budget is at most half of max_tokens.
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    assert_eq!(
        body["messages"],
        json!([
            message("user", vec![text("6*7?")]),
            message("assistant", vec![cached(text("42"))]),
            message("user", vec![text("plus one?")]),
        ])
    );
    let output = &events.last().unwrap()["response"]["output"];
    assert_eq!(output[0], reasoning(&output[0], "Add one."));
    assert_eq!(output[1], assistant_message(&output[1], "43"));
}

#[tokio::test]
async fn an_lm_studio_chat_streams_through_the_messages_api() {
    let (mock, server) = app(true).await;
    let frames = server
        .stream("/api/v1/chat", json!({"model": "claude-x", "system_prompt": "Be kind", "input": "hi", "stream": true}))
        .await;
    let frames = frames.rest().await;
    let body = mock.only_body();
    assert_eq!(body["system"], json!([cached(text("Be kind"))]));
    assert_eq!(body["messages"], json!([message("user", vec![text("hi")])]));
    let end = frames.last().unwrap().json();
    assert_eq!(end["result"]["output"], json!([{"type": "message", "content": "answer to hi"}]));
    assert_eq!(end["result"]["stats"]["input_tokens"], 10);
}

#[tokio::test]
async fn anthropic_errors_map_to_threadline_errors() {
    let (mock, server) = app(true).await;
    let error = |kind: &str, message: &str| json!({"type": "error", "error": {"type": kind, "message": message}});
    mock.push(Reply::Fail(400, error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")));
    let got = server.post("/v1/responses", json!({"model": "claude-x", "input": "Hi"})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    mock.push(Reply::Fail(529, error("overloaded_error", "Overloaded")));
    let got = server.post("/v1/responses", json!({"model": "claude-x", "input": "Hi"})).await;
    assert_error(&got, 502, None, None);
    assert!(got.1["error"]["message"].as_str().unwrap().contains("HTTP 529"), "{}", got.1);
    mock.push(Reply::Fail(500, error("api_error", "Internal server error")));
    let got = server.post("/v1/responses", json!({"model": "claude-x", "input": "Hi"})).await;
    assert_error(&got, 502, None, None);

    // An error event mid-stream fails the response with the backend's message.
    let mut events = anthropic_stream(
        vec![(text(""), vec![json!({"type": "text_delta", "text": "Par"})])],
        "end_turn",
        anthropic_usage(1, 0, 0, 1),
    );
    events.truncate(4);
    events.push(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    mock.push(Reply::Stream(events));
    let events = server.stream("/v1/responses", json!({"model": "claude-x", "input": "Hi", "stream": true})).await;
    let events = events.rest_json().await;
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "failed");
    assert_eq!(last["error"]["code"], "server_error");
    assert!(last["error"]["message"].as_str().unwrap().contains("Overloaded"), "{last}");
    // Anthropic's overflow wording in an error event is a context overflow.
    let overflow = "prompt is too long: 210000 tokens > 200000 maximum";
    mock.push(Reply::Stream(vec![
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": overflow}}),
    ]));
    let events = server.stream("/v1/responses", json!({"model": "claude-x", "input": "Hi", "stream": true})).await;
    let events = events.rest_json().await;
    assert_eq!(events.last().unwrap()["response"]["error"]["code"], "context_length_exceeded");

    // A call whose arguments are not JSON cannot be sent: a clear upstream error, never a panic.
    mock.take();
    let input = json!([
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{not json"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]);
    let got = server.post("/v1/responses", json!({"model": "claude-x", "input": input})).await;
    assert_error(&got, 502, None, None);
    assert!(got.1["error"]["message"].as_str().unwrap().contains("not JSON"), "{}", got.1);
    assert!(mock.take().is_empty());
}

#[tokio::test]
async fn models_are_listed_from_the_messages_api() {
    let (_mock, server) = app(true).await;
    let (status, body) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!([{"id": "claude-sonnet-4-5", "object": "model", "created": 1759104000, "owned_by": "anthropic",
            "display_name": "Claude Sonnet 4.5"}])
    );
}

#[tokio::test]
async fn stateless_chat_completions_are_answered_through_the_messages_api() {
    let (mock, server) = app(true).await;
    mock.push(Reply::Message {
        content: json!([text("Bonjour")]),
        stop_reason: "end_turn",
        usage: anthropic_usage(5, 100, 20, 7),
    });
    let request = json!({"model": "claude-x", "max_tokens": 50,
        "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hello in French?"}]});
    let (status, body) = server.post("/v1/chat/completions", request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        mock.only_body(),
        json!({"model": "claude-x", "max_tokens": 50, "system": [cached(text("Be brief"))],
            "messages": [message("user", vec![text("Hello in French?")])]})
    );
    assert_eq!(body["choices"][0]["message"]["content"], "Bonjour");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 125);
}

#[tokio::test]
async fn an_unreachable_model_list_falls_back_to_the_configured_names() {
    let config = UpstreamConfig {
        name: "claude".into(),
        kind: UpstreamKind::Anthropic,
        models: vec!["claude-a".into(), "claude-*".into()],
        ..upstream("http://127.0.0.1:9/v1")
    };
    let server = TestApp::builder().config(move |c| c.upstreams = vec![config]).start().await.unwrap();
    let (status, body) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([{"id": "claude-a", "object": "model", "created": 0, "owned_by": "claude"}]));
}
