//! Input items that clients resend: assistant messages with a `phase`, and reasoning items (a client without `store`
//! sends the previous output back as input) — kept in history and returned as given, never sent to a Chat Completions
//! backend, which has no such fields or items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn an_assistant_phase_is_kept_and_returned_but_not_sent_upstream() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let input = json!([
        {"role": "user", "content": "plan it"},
        {"type": "message", "role": "assistant", "content": "Looking at the files first.", "phase": "commentary"},
        {"type": "message", "role": "assistant", "content": "Here is the plan.", "phase": "final_answer"},
        {"role": "user", "content": "go on"},
    ]);
    let id = server.create(json!({"model": "m", "input": input})).await["id"].as_str().unwrap().to_string();
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "plan it"),
            msg("assistant", "Looking at the files first."),
            msg("assistant", "Here is the plan."),
            msg("user", "go on")
        ]
    );
    let (_, items) = server.get(&format!("/v1/responses/{id}/input_items?order=asc")).await;
    let phases: Vec<&serde_json::Value> = items["data"].as_array().unwrap().iter().map(|item| &item["phase"]).collect();
    assert_eq!(phases, [&json!(null), &json!("commentary"), &json!("final_answer"), &json!(null)]);
    assert_eq!(items["data"][0].get("phase"), None, "no phase key where none was given");
    // A conversation keeps it too, and the next turn's history carries the message without it.
    let (_, conversation) = server.post("/v1/conversations", json!({"items": input})).await;
    let conversation = conversation["id"].as_str().unwrap();
    let (_, listed) = server.get(&format!("/v1/conversations/{conversation}/items?order=asc")).await;
    assert_eq!(listed["data"][1]["phase"], "commentary");
    server.create(json!({"model": "m", "input": "and?", "conversation": conversation})).await;
    assert_eq!(mock.only_messages()[1], msg("assistant", "Looking at the files first."));
    let bad = server
        .post(
            "/v1/responses",
            json!({"model": "m", "input": [{"role": "assistant", "content": "x", "phase": "final"}]}),
        )
        .await;
    assert_error(&bad, 400, Some("invalid_value"), Some("input[0].phase"));
    let user = server
        .post(
            "/v1/responses",
            json!({"model": "m", "input": [{"role": "user", "content": "x", "phase": "commentary"}]}),
        )
        .await;
    assert_error(&user, 400, Some("invalid_value"), Some("input[0].phase"));
}

#[tokio::test]
async fn reasoning_sent_back_as_input_is_kept_and_not_sent_upstream() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![reasoning("Think first."), text("Four."), finish("stop"), DONE]));
    let server = TestApp::start(&mock.url).await;
    // The stateless loop: no store, the previous output sent back with the next message.
    let events = server.stream("/v1/responses", json!({"model": "m", "input": "2+2?", "store": false, "stream": true}));
    let first = events.await.rest_json().await.pop().unwrap()["response"].clone();
    assert_eq!(first["output"][0]["type"], "reasoning");
    let mut input = first["output"].as_array().unwrap().clone();
    input.push(json!({"role": "user", "content": "and 3+3?"}));
    mock.take();
    mock.set(Behavior::Answer);
    let second = server.create(json!({"model": "m", "input": input, "store": false})).await;
    assert_eq!(second["status"], "completed");
    assert_eq!(mock.only_messages(), vec![msg("assistant", "Four."), msg("user", "and 3+3?")]);
    // Stored, a reasoning item keeps what the client sent; its `encrypted_content` (a blob that does not open here)
    // is internal: shown only sealed, when asked for (tests/include.rs).
    let item = json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Adding."}],
        "encrypted_content": "opaque-bytes", "status": "completed"});
    let stored = server.create(json!({"model": "m", "input": [item, {"role": "user", "content": "next"}]})).await;
    let (_, items) =
        server.get(&format!("/v1/responses/{}/input_items?order=asc", stored["id"].as_str().unwrap())).await;
    assert_eq!(
        items["data"][0],
        json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Adding."}],
        "content": [], "status": "completed"})
    );
    let bad = server.post("/v1/responses", json!({"model": "m", "input": [{"type": "reasoning", "id": "rs_2", "summary": [{"type": "text", "text": "x"}]}]})).await;
    assert_error(&bad, 400, Some("invalid_value"), Some("input[0].summary[0].type"));
}
