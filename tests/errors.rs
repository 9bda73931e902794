//! Every failure is OpenAI's error envelope with the right status, type, code and param.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{assert_error, Behavior, MockUpstream, TestApp};
use serde_json::{json, Value};
use threadline::config::Secret;

async fn echo_server() -> TestApp {
    TestApp::start("echo").await
}

/// Posts each body to /v1/responses and checks status, code and param.
async fn expect_400s(server: &TestApp, cases: Vec<(Value, Option<&str>, Option<&str>)>) {
    for (body, code, param) in cases {
        let got = server.post("/v1/responses", body.clone()).await;
        assert_eq!(got.1["error"]["type"], "invalid_request_error", "{body}");
        assert_error(&got, 400, code, param);
    }
}

#[tokio::test]
async fn malformed_bodies() {
    let server = echo_server().await;
    let got = server.post_raw("/v1/responses", "{\"model\": ").await;
    assert_error(&got, 400, None, None);
    assert!(got.1["error"]["message"].as_str().unwrap().starts_with("We could not parse the JSON body"));
    for body in ["null", "[]", "123", "\"text\""] {
        assert_error(&server.post_raw("/v1/responses", body).await, 400, Some("invalid_type"), None);
    }
    assert_error(&server.post_raw("/v1/responses", vec![0xff, 0xfe]).await, 400, None, None);
    assert_error(&server.post_raw("/v1/chat/completions", "{").await, 400, None, None);
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields() {
    let server = echo_server().await;
    expect_400s(
        &server,
        vec![
            (json!({"input": "x"}), Some("missing_required_parameter"), Some("model")),
            (json!({"model": "m"}), Some("missing_required_parameter"), Some("input")),
            (json!({"model": "m", "input": []}), Some("missing_required_parameter"), Some("input")),
            (json!({"model": 5, "input": "x"}), Some("invalid_type"), Some("model")),
            (json!({"model": "m", "input": 5}), Some("invalid_type"), Some("input")),
            (json!({"model": "m", "input": "x", "temperature": "hot"}), Some("invalid_type"), Some("temperature")),
            (json!({"model": "m", "input": "x", "store": "yes"}), Some("invalid_type"), Some("store")),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 20.5}),
                Some("invalid_type"),
                Some("max_output_tokens"),
            ),
            (
                json!({"model": "m", "input": "x", "previous_response_id": 1}),
                Some("invalid_type"),
                Some("previous_response_id"),
            ),
            (json!({"model": "m", "input": "x", "metadata": []}), Some("invalid_type"), Some("metadata")),
            (json!({"model": "m", "input": "x", "metadata": {"k": 1}}), Some("invalid_type"), Some("metadata.k")),
            (json!({"model": "m", "input": "x", "bogus": 1}), Some("unknown_parameter"), Some("bogus")),
            (json!({"model": "m", "input": "x", "seed": 1}), Some("unknown_parameter"), Some("seed")),
            (
                json!({"model": "m", "input": [{"role": "user", "content": "x", "foo": 1}]}),
                Some("unknown_parameter"),
                Some("input[0].foo"),
            ),
            (json!({"model": "m", "messages": []}), Some("unsupported_parameter"), Some("messages")),
            (
                json!({"model": "m", "input": [{"content": "x"}]}),
                Some("missing_required_parameter"),
                Some("input[0].role"),
            ),
            (
                json!({"model": "m", "input": [{"role": "user"}]}),
                Some("missing_required_parameter"),
                Some("input[0].content"),
            ),
            (json!({"model": "m", "input": ["x"]}), Some("invalid_type"), Some("input[0]")),
        ],
    )
    .await;
}

#[tokio::test]
async fn values_out_of_range() {
    let server = echo_server().await;
    let many: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    expect_400s(
        &server,
        vec![
            (json!({"model": "m", "input": "x", "max_output_tokens": 5}), Some("integer_below_min_value"), Some("max_output_tokens")),
            (json!({"model": "m", "input": "x", "temperature": 3}), Some("decimal_above_max_value"), Some("temperature")),
            (json!({"model": "m", "input": "x", "top_p": -0.5}), Some("decimal_below_min_value"), Some("top_p")),
            (json!({"model": "m", "input": "x", "metadata": many}), Some("object_above_max_properties"), Some("metadata")),
            (json!({"model": "m", "input": "x", "metadata": {"k".repeat(65): "v"}}), Some("string_above_max_length"), Some("metadata")),
            (json!({"model": "m", "input": "x", "metadata": {"k": "v".repeat(513)}}), Some("string_above_max_length"), Some("metadata.k")),
            (json!({"model": "m", "input": "x", "safety_identifier": "s".repeat(65)}), Some("string_above_max_length"), Some("safety_identifier")),
            (json!({"model": "m", "input": [{"role": "bot", "content": "x"}]}), Some("invalid_value"), Some("input[0].role")),
            (json!({"model": "m", "input": [{"type": "nope", "role": "user", "content": "x"}]}), Some("invalid_value"), Some("input[0].type")),
            (json!({"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]}), Some("invalid_value"), Some("input[0].content[0].type")),
            (json!({"model": "m", "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]}), Some("invalid_value"), Some("input[0].content[0].type")),
            (json!({"model": "m", "input": [{"id": "abc", "role": "user", "content": "x"}]}), Some("invalid_value"), Some("input[0].id")),
            (json!({"model": "m", "input": "x", "truncation": "sometimes"}), Some("invalid_value"), Some("truncation")),
            (json!({"model": "m", "input": "x", "stream_options": {"include_obfuscation": false}}), Some("invalid_value"), Some("stream_options")),
            (json!({"model": "m", "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}), Some("missing_required_parameter"), Some("tools[0].name")),
            (json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "bad name"}]}), Some("invalid_value"), Some("tools[0].name")),
            (json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": "{}"}]}), Some("invalid_type"), Some("tools[0].parameters")),
            (json!({"model": "m", "input": "x", "tool_choice": "sometimes"}), Some("invalid_value"), Some("tool_choice")),
            (json!({"model": "m", "input": "x", "tool_choice": "required"}), Some("invalid_value"), Some("tool_choice")),
            (json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}), Some("invalid_value"), Some("tool_choice")),
            (json!({"model": "m", "input": "x", "max_tool_calls": 0}), Some("integer_below_min_value"), Some("max_tool_calls")),
            (json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}), Some("missing_required_parameter"), Some("text.format.schema")),
            (json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}), Some("missing_required_parameter"), Some("text.format.name")),
            (json!({"model": "m", "input": "x", "conversation": 5}), Some("invalid_type"), Some("conversation")),
            (json!({"model": "m", "input": "x", "conversation": "conv_1", "previous_response_id": "resp_1"}), Some("mutually_exclusive_parameters"), None),
            (json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}), Some("missing_required_parameter"), Some("input[0].arguments")),
            (json!({"model": "m", "input": [{"type": "function_call", "id": "x_1", "call_id": "c", "name": "f", "arguments": "{}"}]}), Some("invalid_value"), Some("input[0].id")),
            (json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}), Some("invalid_type"), Some("input[0].output")),
            (json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}), Some("invalid_value"), Some("input")),
            (json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}), Some("invalid_value"), Some("input")),
            (json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/i.png", "detail": "huge"}]}]}), Some("invalid_value"), Some("input[0].content[0].detail")),
            (json!({"model": "m", "input": "x", "stream": true, "stream_options": {"x": 1}}), Some("unknown_parameter"), Some("stream_options.x")),
        ],
    )
    .await;
    // The 17-key message follows OpenAI's wording.
    let (_, body) = server.post("/v1/responses", json!({"model": "m", "input": "x", "max_output_tokens": 5})).await;
    assert_eq!(
        body["error"]["message"],
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead."
    );
}

#[tokio::test]
async fn fields_of_later_features_are_refused_not_ignored() {
    let server = echo_server().await;
    let base = |extra: Value| {
        let mut body = json!({"model": "m", "input": "x"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = vec![
        (base(json!({"tools": [{"type": "web_search"}]})), "tools[0].type"),
        (base(json!({"include": ["file_search_call.results"]})), "include[0]"),
        (base(json!({"reasoning": {"summary": "auto"}})), "reasoning.summary"),
        (base(json!({"prompt": {"id": "p"}})), "prompt"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
    ];
    for (body, param) in cases {
        let got = server.post("/v1/responses", body.clone()).await;
        assert_error(&got, 400, Some("unsupported_parameter"), Some(param));
    }
    // Their neutral values are accepted.
    let ok = server
        .create(base(
            json!({"stream": false, "tools": [], "tool_choice": "auto", "background": false, "truncation": "disabled",
            "include": [], "top_logprobs": 0, "text": {"format": {"type": "text"}}, "parallel_tool_calls": false}),
        ))
        .await;
    assert_eq!(ok["parallel_tool_calls"], false);
}

#[tokio::test]
async fn unknown_ids_routes_and_methods() {
    let server = echo_server().await;
    for path in ["/v1/responses/resp_nope", "/v1/responses/resp_nope/input_items"] {
        let got = server.get(path).await;
        assert_error(&got, 404, None, None);
        assert_eq!(got.1["error"]["message"], "Response with id 'resp_nope' not found.");
    }
    assert_error(&server.delete("/v1/responses/resp_nope").await, 404, None, None);
    let got =
        server.post("/v1/responses", json!({"model": "m", "input": "x", "previous_response_id": "resp_nope"})).await;
    assert_error(&got, 400, Some("previous_response_not_found"), Some("previous_response_id"));
    assert_eq!(got.1["error"]["message"], "Previous response with id 'resp_nope' not found.");
    assert_error(&server.get("/v1/nothing").await, 404, None, None);
    let got = server.delete("/v1/models").await;
    assert_error(&got, 405, None, None);
}

#[tokio::test]
async fn bad_query_parameters() {
    let server = echo_server().await;
    let id = server.turn("x", None).await;
    let cases = [
        ("limit=0", Some("integer_below_min_value"), Some("limit")),
        ("limit=101", Some("integer_above_max_value"), Some("limit")),
        ("limit=ten", Some("invalid_type"), Some("limit")),
        ("order=sideways", Some("invalid_value"), Some("order")),
        ("colour=red", Some("unknown_parameter"), Some("colour")),
    ];
    for (query, code, param) in cases {
        assert_error(&server.get(&format!("/v1/responses/{id}/input_items?{query}")).await, 400, code, param);
    }
    let got = server.get(&format!("/v1/responses/{id}/input_items?after=msg_unknown")).await;
    assert_error(&got, 404, None, Some("after"));
    assert_error(
        &server.get(&format!("/v1/responses/{id}?stream=maybe")).await,
        400,
        Some("invalid_type"),
        Some("stream"),
    );
    assert_error(&server.get(&format!("/v1/responses/{id}?foo=1")).await, 400, Some("unknown_parameter"), Some("foo"));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = TestApp::builder().upstream("echo").config(|c| c.limits.max_body_bytes = 1024).start().await.unwrap();
    let got = server.post("/v1/responses", json!({"model": "m", "input": "x".repeat(2000)})).await;
    assert_error(&got, 413, Some("request_too_large"), None);
}

#[tokio::test]
async fn unrouted_models_get_model_not_found() {
    let only_llama = |c: &mut threadline::config::Config| c.upstreams[0].models = vec!["llama3*".into()];
    let server = TestApp::builder().upstream("echo").config(only_llama).start().await.unwrap();
    let got = server.post("/v1/responses", json!({"model": "gpt-nope", "input": "x"})).await;
    assert_error(&got, 404, Some("model_not_found"), None);
    assert_eq!(got.1["error"]["message"], "The model `gpt-nope` does not exist or you do not have access to it.");
    let got = server.post("/v1/chat/completions", json!({"model": "gpt-nope", "messages": []})).await;
    assert_error(&got, 404, Some("model_not_found"), None);
    assert_eq!(server.create(json!({"model": "llama3.1", "input": "x"})).await["status"], "completed");
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_errors_without_secrets() {
    let mock = MockUpstream::start().await;
    let configure = |c: &mut threadline::config::Config| {
        let upstream = &mut c.upstreams[0];
        upstream.name = "ollama-box".into();
        upstream.api_key = Some(Secret("sk-very-secret".into()));
        upstream.timeout = Duration::from_secs(1);
    };
    let server = TestApp::builder().upstream(&mock.url).config(configure).start().await.unwrap();
    let turn = json!({"model": "m", "input": "x"});

    mock.set(Behavior::Fail(404, json!({"error": {"message": "model \"m\" not found, try pulling it first", "type": "api_error", "code": "model_not_found"}})));
    let got = server.post("/v1/responses", turn.clone()).await;
    assert_error(&got, 404, Some("model_not_found"), None);
    assert_eq!(got.1["error"]["message"], "model \"m\" not found, try pulling it first");

    mock.set(Behavior::Fail(400, json!({"error": "context too long"})));
    let got = server.post("/v1/responses", turn.clone()).await;
    assert_error(&got, 400, None, None);
    assert_eq!(got.1["error"]["message"], "context too long");

    mock.set(Behavior::Fail(429, json!({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})));
    assert_error(&server.post("/v1/responses", turn.clone()).await, 429, Some("rate_limit_exceeded"), None);

    mock.set(Behavior::Fail(500, json!({"error": {"message": "CUDA out of memory"}})));
    let got = server.post("/v1/responses", turn.clone()).await;
    assert_error(&got, 502, None, None);
    assert_eq!(got.1["error"]["message"], "Upstream 'ollama-box' failed (HTTP 500): CUDA out of memory");

    mock.set(Behavior::Fail(401, json!({"error": {"message": "Incorrect API key provided: sk-very-secret"}})));
    let got = server.post("/v1/responses", turn.clone()).await;
    assert_error(&got, 502, None, None);
    assert_eq!(got.1["error"]["message"], "Upstream 'ollama-box' refused threadline's credentials (HTTP 401).");

    mock.set(Behavior::Garbage);
    assert_error(&server.post("/v1/responses", turn.clone()).await, 502, None, None);

    mock.set(Behavior::Hang);
    let got = server.post("/v1/responses", turn.clone()).await;
    assert_error(&got, 504, None, None);
    assert_eq!(got.1["error"]["message"], "Upstream 'ollama-box' did not answer within 1s.");
    let got = server.post("/v1/chat/completions", json!({"model": "m", "messages": []})).await;
    assert_error(&got, 504, None, None);

    // Nothing was stored by the failed turns, and the key never reached a client.
    let requests = mock.take();
    assert_eq!(requests.len(), 8);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_naming_it() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let configure = |c: &mut threadline::config::Config| c.upstreams[0].name = "gpu-box".into();
    let server = TestApp::builder().upstream(&url).config(configure).start().await.unwrap();
    let got = server.post("/v1/responses", json!({"model": "m", "input": "x"})).await;
    assert_error(&got, 502, None, None);
    assert_eq!(got.1["error"]["type"], "upstream_error");
    assert!(got.1["error"]["message"].as_str().unwrap().starts_with("Upstream 'gpu-box' is unreachable"), "{}", got.1);
    // /v1/models still answers, from the configured names.
    let (status, models) = server.get("/v1/models").await;
    assert_eq!((status, models), (200, json!({"object": "list", "data": []})));
}

#[tokio::test]
async fn chat_completions_validation() {
    let server = echo_server().await;
    let got = server.post("/v1/chat/completions", json!({"messages": []})).await;
    assert_error(&got, 400, Some("missing_required_parameter"), Some("model"));
    let got = server.post("/v1/chat/completions", json!({"model": 1})).await;
    assert_error(&got, 400, Some("invalid_type"), Some("model"));
}

#[tokio::test]
async fn input_arrays_over_the_limit_are_refused_before_they_are_read() {
    // The default limit: 2049 items are refused before any is read (these would be invalid items).
    let server = echo_server().await;
    let items = vec![json!(0); 2049];
    let got = server.post("/v1/responses", json!({"model": "echo", "input": items})).await;
    assert_eq!(
        got,
        (
            400,
            json!({"error": {
                "message": "Invalid 'input': array too long. Expected an array with maximum length 2048, but got an array with length 2049 instead.",
                "type": "invalid_request_error",
                "param": "input",
                "code": "array_above_max_length",
            }})
        )
    );

    // A configured limit, on every surface that takes an `input` array; at the limit is fine.
    let server = TestApp::builder().upstream("echo").config(|c| c.limits.max_input_items = 2).start().await.unwrap();
    let two = vec![json!({"role": "user", "content": "a"}), json!({"role": "user", "content": "b"})];
    let mut three = two.clone();
    three.push(json!({"role": "user", "content": "c"}));
    for path in ["/v1/responses", "/v1/responses/input_tokens", "/v1/responses/compact"] {
        let got = server.post(path, json!({"model": "echo", "input": three})).await;
        assert_error(&got, 400, Some("array_above_max_length"), Some("input"));
        assert_eq!(got.1["error"]["type"], "invalid_request_error");
        assert_eq!(server.post(path, json!({"model": "echo", "input": two})).await.0, 200, "{path}");
    }
    let parts = |n: usize| vec![json!({"type": "text", "content": "a"}); n];
    let got = server.post("/api/v1/chat", json!({"model": "echo", "input": parts(3)})).await;
    assert_error(&got, 400, Some("array_above_max_length"), Some("input"));
    assert_eq!(got.1["error"]["type"], "invalid_request");
    assert_eq!(server.post("/api/v1/chat", json!({"model": "echo", "input": parts(2)})).await.0, 200);
}
