//! Function tools, structured output and images: exactly what the upstream receives, and the streamed events of
//! function calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call_arguments, call_start, calls, finish, msg, Behavior, MockUpstream, TestApp, DONE};
use serde_json::{json, Value};

const WEATHER: &str = r#"{"city":"Paris"}"#;

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

fn assistant_calls(calls: &[(&str, &str, &str)]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
        .collect();
    json!({"role": "assistant", "content": null, "tool_calls": tool_calls})
}

fn tool_message(call_id: &str, content: &str) -> Value {
    json!({"role": "tool", "content": content, "tool_call_id": call_id})
}

fn output(call_id: &str, output: &str) -> Value {
    json!({"type": "function_call_output", "call_id": call_id, "output": output})
}

#[tokio::test]
async fn a_tool_call_round_trips_through_history() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(calls(&[("call_1", "get_weather", WEATHER)]));
    let first = server
        .create(json!({"model": "m", "input": "Weather in Paris?", "tools": [weather_tool()], "tool_choice": "auto"}))
        .await;
    let sent = mock.take();
    assert_eq!(
        sent[0]["tools"],
        json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather", "parameters": weather_tool()["parameters"]}}])
    );
    assert_eq!(sent[0]["tool_choice"], "auto");
    let fc = &first["output"][0];
    assert_eq!(first["output"].as_array().unwrap().len(), 1);
    assert!(fc["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(
        fc,
        &json!({"type": "function_call", "id": fc["id"], "call_id": "call_1", "name": "get_weather",
        "arguments": WEATHER, "status": "completed"})
    );
    assert_eq!(
        first["tools"],
        json!([{"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": weather_tool()["parameters"], "strict": null}])
    );

    let second = server
        .create(json!({"model": "m", "input": [output("call_1", "21C")], "previous_response_id": first["id"],
            "tools": [weather_tool()]}))
        .await;
    assert_eq!(second["output"][0]["content"][0]["text"], "answer to Weather in Paris?");
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "Weather in Paris?"),
            assistant_calls(&[("call_1", "get_weather", WEATHER)]),
            tool_message("call_1", "21C")
        ]
    );
    // Two turns later the call and its output are still in the context.
    server.create(json!({"model": "m", "input": "thanks", "previous_response_id": second["id"]})).await;
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "Weather in Paris?"),
            assistant_calls(&[("call_1", "get_weather", WEATHER)]),
            tool_message("call_1", "21C"),
            msg("assistant", "answer to Weather in Paris?"),
            msg("user", "thanks"),
        ]
    );
}

#[tokio::test]
async fn parallel_calls_become_one_assistant_message_and_branches_keep_their_calls() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(calls(&[
        ("call_a", "get_weather", r#"{"city":"Paris"}"#),
        ("call_b", "get_weather", r#"{"city":"Rome"}"#),
    ]));
    let first = server
        .create(
            json!({"model": "m", "input": "Paris and Rome?", "tools": [weather_tool()], "parallel_tool_calls": true,
            "tool_choice": {"type": "function", "name": "get_weather"}}),
        )
        .await;
    let sent = mock.take();
    assert_eq!(sent[0]["parallel_tool_calls"], true);
    assert_eq!(sent[0]["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(first["tool_choice"], json!({"type": "function", "name": "get_weather"}));
    let names: Vec<&str> = first["output"].as_array().unwrap().iter().map(|i| i["call_id"].as_str().unwrap()).collect();
    assert_eq!(names, ["call_a", "call_b"]);
    let both = [("call_a", "get_weather", r#"{"city":"Paris"}"#), ("call_b", "get_weather", r#"{"city":"Rome"}"#)];
    // Two branches from the turn with the calls, each answering them differently.
    for answer in ["sunny", "rainy"] {
        server
            .create(json!({"model": "m", "previous_response_id": first["id"],
                "input": [output("call_a", answer), output("call_b", answer)]}))
            .await;
        assert_eq!(
            mock.only_messages(),
            vec![
                msg("user", "Paris and Rome?"),
                assistant_calls(&both),
                tool_message("call_a", answer),
                tool_message("call_b", answer)
            ]
        );
    }
}

#[tokio::test]
async fn stateless_agents_send_function_items_explicitly() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    server
        .create(json!({"model": "m", "store": false, "input": [
            {"role": "user", "content": "go"},
            {"type": "message", "role": "assistant", "content": "Let me check."},
            {"type": "function_call", "call_id": "call_9", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_9", "output": [{"type": "input_text", "text": "done"}]},
        ]}))
        .await;
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "go"),
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
            tool_message("call_9", "done"),
        ]
    );
}

#[tokio::test]
async fn outputs_and_calls_must_pair_up() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(calls(&[("call_1", "get_weather", WEATHER)]));
    let first = server.create(json!({"model": "m", "input": "q", "tools": [weather_tool()]})).await;
    let got = server
        .post(
            "/v1/responses",
            json!({"model": "m", "previous_response_id": first["id"], "input": [output("call_x", "1")]}),
        )
        .await;
    common::assert_error(&got, 400, Some("invalid_value"), Some("input"));
    assert_eq!(got.1["error"]["message"], "No tool call found for function call output with call_id call_x.");
    let got =
        server.post("/v1/responses", json!({"model": "m", "previous_response_id": first["id"], "input": "hi"})).await;
    assert_eq!(got.1["error"]["message"], "No tool output found for function call call_1.");
    assert_eq!(mock.take().len(), 1, "nothing reached the upstream");
}

#[tokio::test]
async fn streamed_function_calls_have_their_own_events() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![
        call_start(0, "call_1", "get_weather"),
        call_arguments(0, r#"{"city":"#),
        call_arguments(0, r#""Paris"}"#),
        call_start(1, "call_2", "get_time"),
        call_arguments(1, "{}"),
        finish("tool_calls"),
        DONE,
    ]));
    let server = TestApp::start(&mock.url).await;
    let events = server
        .stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true, "tools": [weather_tool()]}))
        .await;
    let events = events.rest_json().await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let fc = events[2]["item"]["id"].as_str().unwrap();
    assert_eq!(
        events[2]["item"],
        json!({"type": "function_call", "id": fc, "call_id": "call_1", "name": "get_weather",
        "arguments": "", "status": "in_progress"})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.function_call_arguments.delta", "item_id": fc, "output_index": 0,
        "delta": r#"{"city":"#, "sequence_number": 3})
    );
    assert_eq!(
        events[5],
        json!({"type": "response.function_call_arguments.done", "item_id": fc, "output_index": 0,
        "name": "get_weather", "arguments": WEATHER, "sequence_number": 5})
    );
    assert_eq!(events[6]["item"]["status"], "completed");
    assert_eq!(events[7]["output_index"], 1);
    let completed = &events[11]["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][1]["arguments"], "{}");
    // The streamed calls replay identically.
    let id = completed["id"].as_str().unwrap();
    assert_eq!(server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await, events);
}

#[tokio::test]
async fn max_tool_calls_keeps_the_first_calls() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(calls(&[("call_a", "f", "{}"), ("call_b", "f", "{}")]));
    let response = server
        .create(json!({"model": "m", "input": "q", "tools": [{"type": "function", "name": "f"}], "max_tool_calls": 1}))
        .await;
    assert_eq!(response["max_tool_calls"], 1);
    assert_eq!(response["output"].as_array().unwrap().len(), 1);
    assert_eq!(response["output"][0]["call_id"], "call_a");
}

#[tokio::test]
async fn structured_output_maps_to_response_format() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false});
    let response = server
        .create(json!({"model": "m", "input": "q", "text": {"format": {"type": "json_schema", "name": "Person",
            "schema": schema, "strict": true}}}))
        .await;
    assert_eq!(
        response["text"]["format"],
        json!({"type": "json_schema", "name": "Person", "schema": schema, "strict": true})
    );
    assert_eq!(
        mock.take()[0]["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "Person", "schema": schema, "strict": true}})
    );
    server.create(json!({"model": "m", "input": "q", "text": {"format": {"type": "json_object"}}})).await;
    assert_eq!(mock.take()[0]["response_format"], json!({"type": "json_object"}));
}

#[tokio::test]
async fn images_and_files_become_chat_parts_and_stay_in_history() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let image = "data:image/png;base64,iVBORw0KGgo=";
    let first = server
        .create(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": image, "detail": "low"},
            {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        ]}]}))
        .await;
    let parts = json!([
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]);
    assert_eq!(mock.only_messages(), vec![json!({"role": "user", "content": parts})]);
    server.create(json!({"model": "m", "input": "and now?", "previous_response_id": first["id"]})).await;
    assert_eq!(
        mock.only_messages(),
        vec![json!({"role": "user", "content": parts}), msg("assistant", "answer to nothing"), msg("user", "and now?")]
    );
    // LM Studio's image items arrive the same way.
    server
        .post(
            "/api/v1/chat",
            json!({"model": "m", "input": [{"type": "text", "content": "see"}, {"type": "image", "data_url": image}]}),
        )
        .await;
    assert_eq!(
        mock.only_messages(),
        vec![json!({"role": "user", "content": [{"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": image, "detail": "auto"}}]})]
    );
}

#[tokio::test]
async fn interleaved_call_pieces_each_come_before_their_calls_done_event() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![
        call_start(0, "call_1", "get_weather"),
        call_arguments(0, r#"{"city":"#),
        call_start(1, "call_2", "get_time"),
        call_arguments(1, "{}"),
        call_arguments(0, r#""Paris"}"#),
        finish("tool_calls"),
        DONE,
    ]));
    let server = TestApp::start(&mock.url).await;
    let body = json!({"model": "m", "input": "q", "stream": true, "tools": [weather_tool()]});
    let events = server.stream("/v1/responses", body).await.rest_json().await;
    let shape: Vec<(&str, Value)> =
        events.iter().map(|e| (e["type"].as_str().unwrap(), e["output_index"].clone())).collect();
    let (first, second) = (json!(0), json!(1));
    assert_eq!(
        shape,
        [
            ("response.created", Value::Null),
            ("response.in_progress", Value::Null),
            ("response.output_item.added", first.clone()),
            ("response.function_call_arguments.delta", first.clone()),
            ("response.function_call_arguments.delta", first.clone()),
            ("response.function_call_arguments.done", first.clone()),
            ("response.output_item.done", first),
            ("response.output_item.added", second.clone()),
            ("response.function_call_arguments.delta", second.clone()),
            ("response.function_call_arguments.done", second.clone()),
            ("response.output_item.done", second),
            ("response.completed", Value::Null),
        ]
    );
    assert_eq!(events[4]["delta"], r#""Paris"}"#);
    assert_eq!(events[5]["arguments"], WEATHER);
    let id = events[11]["response"]["id"].as_str().unwrap();
    assert_eq!(server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await, events);
}

#[tokio::test]
async fn allowed_tools_send_only_those_tools_and_echo_the_choice() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let time = json!({"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}});
    let choice =
        json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]});
    let body = json!({"model": "m", "input": "q", "tools": [weather_tool(), time], "tool_choice": choice});
    let response = server.create(body).await;
    assert_eq!(response["tool_choice"], choice);
    let sent = &mock.take()[0];
    let names: Vec<&str> =
        sent["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_time"]);
    assert_eq!(sent["tool_choice"], "required");
    let unknown = json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]});
    let got = server
        .post("/v1/responses", json!({"model": "m", "input": "q", "tools": [weather_tool()], "tool_choice": unknown}))
        .await;
    assert_eq!(got.0, 400);
    assert_eq!(got.1["error"]["message"], "Tool choice 'nope' not found in 'tools' parameter.");
    assert_eq!(got.1["error"]["param"], "tool_choice");
}
