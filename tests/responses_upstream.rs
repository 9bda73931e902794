//! The `responses` upstream: exactly what a Responses API backend receives (the whole context as `input`,
//! `store: false`, reasoning sent back in its opaque form, function calls and outputs, assistant phases), and how its
//! answers, whole and streamed, come back under threadline's own ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::responses_mock::{responses_stream, responses_usage, Reply, ResponsesMock};
use common::{assert_error, upstream, TestApp};
use serde_json::{json, Value};
use threadline::config::{UpstreamConfig, UpstreamKind};

/// threadline in front of the mock, as a `responses` upstream.
async fn app() -> (ResponsesMock, TestApp) {
    let mock = ResponsesMock::start().await;
    let config = UpstreamConfig { name: "up".into(), kind: UpstreamKind::Responses, ..upstream(&mock.url) };
    let server = TestApp::builder().config(move |c| c.upstreams = vec![config]).start().await.unwrap();
    (mock, server)
}

/// The request threadline sends for this input and these further fields.
fn sent(input: Value, fields: Value) -> Value {
    let mut body =
        json!({"model": "gpt-up", "store": false, "include": ["reasoning.encrypted_content"], "input": input});
    for (key, value) in fields.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

fn input_message(role: &str, content: &str) -> Value {
    json!({"type": "message", "role": role, "content": content})
}

/// An assistant message output item of the backend.
fn backend_message(text: &str) -> Value {
    json!({"type": "message", "id": "msg_up", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// A reasoning output item of the backend, with its summary, text and opaque form.
fn backend_reasoning() -> Value {
    json!({"type": "reasoning", "id": "rs_up", "summary": [{"type": "summary_text", "text": "Thought about it"}],
        "content": [{"type": "reasoning_text", "text": "Let me think"}], "encrypted_content": "gAAA-opaque"})
}

fn backend_call(arguments: &str) -> Value {
    json!({"type": "function_call", "id": "fc_up", "call_id": "call_1", "name": "get_weather", "arguments": arguments,
        "status": "completed"})
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}})
}

/// threadline's usage for the backend's (input 125 of which 100 cached, output 7 of which 3 reasoning).
fn usage() -> Value {
    json!({"input_tokens": 125, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0}, "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 132})
}

/// Whether `id` is threadline's own id of this prefix (not the backend's).
fn own_id(id: &Value, prefix: &str) -> bool {
    id.as_str().is_some_and(|id| id.starts_with(prefix) && !id.ends_with("_up"))
}

#[tokio::test]
async fn a_whole_answer_sends_the_context_as_input_and_reads_text_and_cached_usage() {
    let (mock, server) = app().await;
    mock.push(Reply::Answer {
        output: json!([backend_message("Hello there")]),
        usage: responses_usage(125, 100, 7, 3),
        incomplete: None,
    });
    let response = server
        .create(
            json!({"model": "gpt-up", "instructions": "Be brief", "temperature": 0.5, "reasoning": {"effort": "low"},
            "input": [{"role": "developer", "content": "Speak English"}, {"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(
        mock.only_body(),
        sent(
            json!([
                input_message("system", "Be brief"),
                input_message("developer", "Speak English"),
                input_message("user", "Hi")
            ]),
            json!({"temperature": 0.5, "reasoning": {"effort": "low"}})
        )
    );
    assert_eq!(response["status"], "completed");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert!(own_id(&output[0]["id"], "msg_"), "{}", output[0]);
    assert_eq!(
        output[0],
        json!({"type": "message", "id": output[0]["id"], "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []}]})
    );
    assert_eq!(response["usage"], usage());
}

#[tokio::test]
async fn streamed_reasoning_keeps_its_summary_and_goes_back_in_its_opaque_form() {
    let (mock, server) = app().await;
    let reasoning_deltas =
        vec![("response.reasoning_text.delta", "Let me "), ("response.reasoning_text.delta", "think")];
    let text_deltas = vec![("response.output_text.delta", "Hel"), ("response.output_text.delta", "lo")];
    mock.push(Reply::Stream(responses_stream(
        vec![(backend_reasoning(), reasoning_deltas), (backend_message("Hello"), text_deltas)],
        responses_usage(125, 100, 7, 3),
    )));
    let events = server.stream("/v1/responses", json!({"model": "gpt-up", "input": "Hi", "stream": true})).await;
    let events = events.rest_json().await;
    assert_eq!(mock.only_body(), sent(json!([input_message("user", "Hi")]), json!({"stream": true})));
    assert_eq!(
        common::sse::event_types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let response = &events.last().unwrap()["response"];
    let reasoning = &response["output"][0];
    assert!(own_id(&reasoning["id"], "rs_"), "{reasoning}");
    assert_eq!(
        *reasoning,
        json!({"type": "reasoning", "id": reasoning["id"], "summary": [{"type": "summary_text", "text": "Thought about it"}],
            "content": [{"type": "reasoning_text", "text": "Let me think"}], "status": "completed"}),
        "the backend's opaque form is threadline's to keep, not shown"
    );
    assert_eq!(response["output"][1]["content"][0]["text"], "Hello");
    assert_eq!(response["usage"], usage());

    // The next turn sends the reasoning back as the backend gave it (under threadline's id) and the answer after it.
    let next = server.create(json!({"model": "gpt-up", "input": "And?", "previous_response_id": response["id"]})).await;
    let back = json!({"type": "reasoning", "id": reasoning["id"], "summary": [{"type": "summary_text", "text": "Thought about it"}],
        "content": [{"type": "reasoning_text", "text": "Let me think"}], "encrypted_content": "gAAA-opaque"});
    assert_eq!(
        mock.only_body(),
        sent(
            json!([
                input_message("user", "Hi"),
                back,
                input_message("assistant", "Hello"),
                input_message("user", "And?")
            ]),
            json!({})
        )
    );
    assert_eq!(next["output"][0]["content"][0]["text"], "answer to And?");
}

#[tokio::test]
async fn a_streamed_function_call_round_trips_with_its_output() {
    let (mock, server) = app().await;
    let pieces = vec![
        ("response.function_call_arguments.delta", "{\"city\":"),
        ("response.function_call_arguments.delta", "\"Paris\"}"),
    ];
    mock.push(Reply::Stream(responses_stream(
        vec![(backend_call("{\"city\":\"Paris\"}"), pieces)],
        responses_usage(20, 0, 5, 0),
    )));
    let request = json!({"model": "gpt-up", "input": "Weather in Paris?", "tools": [weather_tool()], "tool_choice": "required",
        "parallel_tool_calls": false, "stream": true});
    let events = server.stream("/v1/responses", request).await.rest_json().await;
    assert_eq!(
        mock.only_body(),
        sent(
            json!([input_message("user", "Weather in Paris?")]),
            json!({"stream": true, "tools": [weather_tool()], "tool_choice": "required", "parallel_tool_calls": false})
        )
    );
    let arguments: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "response.function_call_arguments.delta")
        .map(|event| event["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, ["{\"city\":", "\"Paris\"}"]);
    let response = &events.last().unwrap()["response"];
    let call = &response["output"][0];
    assert!(own_id(&call["id"], "fc_"), "{call}");
    assert_eq!(
        *call,
        json!({"type": "function_call", "id": call["id"], "call_id": "call_1", "name": "get_weather",
            "arguments": "{\"city\":\"Paris\"}", "status": "completed"})
    );

    let next = json!({"model": "gpt-up", "previous_response_id": response["id"], "tools": [weather_tool()],
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "18C"}]});
    server.create(next).await;
    let call = json!({"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"});
    let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "18C"});
    assert_eq!(
        mock.only_body(),
        sent(json!([input_message("user", "Weather in Paris?"), call, output]), json!({"tools": [weather_tool()]}))
    );
}

#[tokio::test]
async fn a_whole_answer_with_reasoning_and_a_call_cut_short_is_incomplete() {
    let (mock, server) = app().await;
    mock.push(Reply::Answer {
        output: json!([backend_reasoning(), backend_call("{\"city\":\"Paris\"}"), {"type": "web_search_call", "id": "ws_1"}]),
        usage: responses_usage(125, 100, 7, 3),
        incomplete: Some("max_output_tokens"),
    });
    let response = server
        .create(json!({"model": "gpt-up", "input": "Weather?", "tools": [weather_tool()], "max_output_tokens": 64}))
        .await;
    assert_eq!(
        mock.only_body(),
        sent(json!([input_message("user", "Weather?")]), json!({"tools": [weather_tool()], "max_output_tokens": 64}))
    );
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["incomplete_details"], json!({"reason": "max_output_tokens"}));
    let output = response["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|item| item["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "function_call"], "an item threadline does not take is left out");
    assert_eq!(output[0]["summary"], json!([{"type": "summary_text", "text": "Thought about it"}]));
    assert_eq!(output[0]["content"], json!([{"type": "reasoning_text", "text": "Let me think"}]));
    assert_eq!(output[1]["call_id"], "call_1");
    assert_eq!(output[1]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(response["usage"], usage());
}

#[tokio::test]
async fn an_assistant_phase_is_sent_to_a_responses_backend() {
    let (mock, server) = app().await;
    let input = json!([
        {"role": "user", "content": "Fix the bug"},
        {"role": "assistant", "content": "Looking at the code", "phase": "commentary"},
        {"role": "user", "content": "Go on"},
    ]);
    server.create(json!({"model": "gpt-up", "input": input})).await;
    let commentary =
        json!({"type": "message", "role": "assistant", "content": "Looking at the code", "phase": "commentary"});
    assert_eq!(
        mock.only_body(),
        sent(json!([input_message("user", "Fix the bug"), commentary, input_message("user", "Go on")]), json!({}))
    );
}

#[tokio::test]
async fn stateless_chat_completions_are_answered_through_the_responses_api() {
    let (mock, server) = app().await;
    mock.push(Reply::Answer {
        output: json!([backend_message("Bonjour")]),
        usage: responses_usage(125, 100, 7, 3),
        incomplete: None,
    });
    let messages = json!([
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "user", "content": [{"type": "text", "text": "In French?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    ]);
    let (status, body) = server.post("/v1/chat/completions", json!({"model": "gpt-up", "messages": messages})).await;
    assert_eq!(status, 200, "{body}");
    let parts = json!([{"type": "input_text", "text": "In French?"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]);
    assert_eq!(
        mock.only_body(),
        sent(
            json!([
                input_message("system", "Be brief"),
                input_message("user", "Weather?"),
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "message", "role": "user", "content": parts},
            ]),
            json!({})
        )
    );
    assert_eq!(body["choices"][0]["message"]["content"], "Bonjour");
    assert_eq!(body["usage"]["prompt_tokens"], 125);
}

#[tokio::test]
async fn backend_errors_and_failed_responses_map_to_threadline_errors() {
    let (mock, server) = app().await;
    let error = |code: &str, message: &str| json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    mock.push(Reply::Fail(
        400,
        error("context_length_exceeded", "Your input exceeds the context window of this model."),
    ));
    let got = server.post("/v1/responses", json!({"model": "gpt-up", "input": "Hi"})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    mock.push(Reply::Fail(503, json!({"error": {"message": "Overloaded"}})));
    let got = server.post("/v1/responses", json!({"model": "gpt-up", "input": "Hi"})).await;
    assert_error(&got, 502, None, None);

    // A response the backend fails mid-stream fails with its message.
    let mut events =
        responses_stream(vec![(backend_message("Par"), vec![("response.output_text.delta", "Par")])], json!({}));
    events.truncate(3);
    events.push(json!({"type": "response.failed", "response": {"status": "failed",
        "error": {"code": "server_error", "message": "The model crashed"}}}));
    mock.push(Reply::Stream(events));
    let events = server.stream("/v1/responses", json!({"model": "gpt-up", "input": "Hi", "stream": true})).await;
    let events = events.rest_json().await;
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "failed");
    assert_eq!(last["error"]["code"], "server_error");
    assert!(last["error"]["message"].as_str().unwrap().contains("The model crashed"), "{last}");
    assert_eq!(last["output"][0]["content"][0]["text"], "Par");
}

#[tokio::test]
async fn models_are_listed_from_the_backend() {
    let (_mock, server) = app().await;
    let (status, body) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([{"id": "gpt-up", "object": "model", "created": 1, "owned_by": "up"}]));
}

#[tokio::test]
async fn an_allowed_tools_choice_goes_as_it_is_with_every_tool() {
    let (mock, server) = app().await;
    let clock = json!({"type": "function", "name": "now"});
    let choice = json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "now"}]});
    let request = json!({"model": "gpt-up", "input": "Time?", "tools": [weather_tool(), clock], "tool_choice": choice,
        "text": {"verbosity": "low"}, "prompt_cache_key": "k1"});
    server.create(request).await;
    assert_eq!(
        mock.only_body(),
        sent(
            json!([input_message("user", "Time?")]),
            json!({"tools": [weather_tool(), clock], "tool_choice": choice, "text": {"verbosity": "low"},
                "prompt_cache_key": "k1"})
        )
    );
}

#[tokio::test]
async fn log_probabilities_asked_for_come_from_the_backend_streamed_and_whole() {
    let (mock, server) = app().await;
    let entry = |token: &str, logprob: f64| json!({"token": token, "logprob": logprob, "top_logprobs": [{"token": token, "logprob": logprob}]});
    let kept = |token: &str, logprob: f64| {
        let bytes = json!(token.as_bytes());
        json!({"token": token, "logprob": logprob, "bytes": bytes,
            "top_logprobs": [{"token": token, "logprob": logprob, "bytes": bytes}]})
    };
    let mut events = responses_stream(
        vec![(
            backend_message("Hello"),
            vec![("response.output_text.delta", "Hel"), ("response.output_text.delta", "lo")],
        )],
        responses_usage(5, 0, 2, 0),
    );
    events[2]["logprobs"] = json!([entry("Hel", -0.5)]);
    events[3]["logprobs"] = json!([entry("lo", -0.25)]);
    mock.push(Reply::Stream(events));
    let request = json!({"model": "gpt-up", "input": "Hi", "stream": true, "top_logprobs": 1,
        "include": ["message.output_text.logprobs"]});
    let events = server.stream("/v1/responses", request).await.rest_json().await;
    let include = json!(["reasoning.encrypted_content", "message.output_text.logprobs"]);
    assert_eq!(
        mock.only_body(),
        sent(json!([input_message("user", "Hi")]), json!({"stream": true, "include": include, "top_logprobs": 1}))
    );
    let response = &events.last().unwrap()["response"];
    assert_eq!(response["output"][0]["content"][0]["logprobs"], json!([kept("Hel", -0.5), kept("lo", -0.25)]));

    // Whole: the output_text part's log probabilities.
    let mut message = backend_message("Hi");
    message["content"][0]["logprobs"] = json!([kept("Hi", -0.125)]);
    mock.push(Reply::Answer { output: json!([message]), usage: responses_usage(5, 0, 1, 0), incomplete: None });
    let response =
        server.create(json!({"model": "gpt-up", "input": "Hey", "include": ["message.output_text.logprobs"]})).await;
    assert_eq!(mock.only_body()["include"], include);
    assert_eq!(response["output"][0]["content"][0]["logprobs"], json!([kept("Hi", -0.125)]));
}

#[tokio::test]
async fn a_stream_without_output_indexes_is_read_item_by_item() {
    // llama.cpp's server (b11434), as it streamed here: no `output_index`, `content_index` nor `sequence_number`.
    let (mock, server) = app().await;
    let id = "msg_KrFggVWEHHf833tI4B8iTIBr54ZbzZDZ";
    let done = json!({"type": "message", "status": "completed", "id": id, "role": "assistant",
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "The gods' great."}]});
    let response = json!({"id": "resp_gD07MXy5slyGA7nkAYSKMnCBORa19oxk", "object": "response",
        "status": "in_progress"});
    let mut events = vec![
        json!({"type": "response.created", "response": response}),
        json!({"type": "response.in_progress", "response": response}),
        json!({"type": "response.output_item.added", "item": {"content": [], "id": id, "role": "assistant",
            "status": "in_progress", "type": "message"}}),
        json!({"type": "response.content_part.added", "item_id": id, "part": {"type": "output_text", "text": ""}}),
    ];
    for delta in ["The", " gods", "'", " great", "."] {
        events.push(json!({"type": "response.output_text.delta", "item_id": id, "delta": delta}));
    }
    events.extend([
        json!({"type": "response.output_text.done", "item_id": id, "text": "The gods' great."}),
        json!({"type": "response.output_item.done", "item": done}),
        json!({"type": "response.completed", "response": {"id": "resp_gD07MXy5slyGA7nkAYSKMnCBORa19oxk",
            "object": "response", "created_at": 1_796_679_782, "status": "completed", "model": "smollm2",
            "output": [done], "usage": {"input_tokens": 34, "output_tokens": 8, "total_tokens": 42,
            "input_tokens_details": {"cached_tokens": 0}}}}),
    ]);
    mock.push(Reply::Stream(events));
    let events = server.stream("/v1/responses", json!({"model": "gpt-up", "input": "Hi", "stream": true})).await;
    let events = events.rest_json().await;
    let deltas: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "response.output_text.delta")
        .map(|event| event["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["The", " gods", "'", " great", "."]);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "The gods' great.");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 34);
}
