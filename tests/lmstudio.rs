//! LM Studio's native /api/v1/chat: replies, streams, chains and branches shared with /v1/responses, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::snapshot::redact;
use common::{msg, text, Behavior, MockUpstream, TestApp, DONE};
use serde_json::{json, Value};

fn reply_text(reply: &Value) -> &str {
    reply["output"][0]["content"].as_str().unwrap()
}

#[tokio::test]
async fn a_reply_has_lm_studio_shape() {
    let server = TestApp::start("echo").await;
    let (status, reply) = server.post("/api/v1/chat", json!({"model": "echo", "input": "hello"})).await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!(redact(&reply));
}

#[tokio::test]
async fn chains_branches_and_system_prompts() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let (_, first) =
        server.post("/api/v1/chat", json!({"model": "m", "input": "u1", "system_prompt": "Be terse."})).await;
    assert_eq!(mock.only_messages(), vec![msg("system", "Be terse."), msg("user", "u1")]);
    let first_id = first["response_id"].as_str().unwrap();
    let (_, second) = server
        .post(
            "/api/v1/chat",
            json!({"model": "m", "input": [{"type": "text", "content": "u2"}], "previous_response_id": first_id}),
        )
        .await;
    assert_eq!(reply_text(&second), "answer to u2");
    // The system prompt is part of the first turn, so it carries over.
    assert_eq!(
        mock.only_messages(),
        vec![msg("system", "Be terse."), msg("user", "u1"), msg("assistant", "answer to u1"), msg("user", "u2")]
    );
    server.post("/api/v1/chat", json!({"model": "m", "input": "other", "previous_response_id": first_id})).await;
    assert_eq!(
        mock.only_messages(),
        vec![msg("system", "Be terse."), msg("user", "u1"), msg("assistant", "answer to u1"), msg("user", "other")]
    );
}

#[tokio::test]
async fn ids_continue_across_both_surfaces() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let (_, lm) = server.post("/api/v1/chat", json!({"model": "m", "input": "from lm studio"})).await;
    let id = lm["response_id"].as_str().unwrap();
    let responses = server.create(json!({"model": "m", "input": "from responses", "previous_response_id": id})).await;
    let responses_id = responses["id"].as_str().unwrap();
    let (_, back) =
        server.post("/api/v1/chat", json!({"model": "m", "input": "back", "previous_response_id": responses_id})).await;
    assert_eq!(reply_text(&back), "answer to back");
    let bodies = mock.take();
    assert_eq!(
        bodies[2]["messages"],
        json!([
            msg("user", "from lm studio"),
            msg("assistant", "answer to from lm studio"),
            msg("user", "from responses"),
            msg("assistant", "answer to from responses"),
            msg("user", "back")
        ])
    );
    // The LM Studio turn is an ordinary stored response.
    let (status, stored) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!((status, stored["output"][0]["content"][0]["text"].as_str()), (200, Some("answer to from lm studio")));
}

#[tokio::test]
async fn store_false_returns_no_id_and_keeps_nothing() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let (status, reply) = server.post("/api/v1/chat", json!({"model": "m", "input": "secret", "store": false})).await;
    assert_eq!(status, 200);
    assert_eq!(reply.get("response_id"), None);
    assert_eq!(reply_text(&reply), "answer to secret");
    let count: (i64,) = sqlx::query_as("SELECT count(*) FROM responses")
        .fetch_one(&sqlx::SqlitePool::connect(server.database.url()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(count.0, 0);
}

#[tokio::test]
async fn a_streamed_chat_uses_lm_studio_events() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![
        common::reasoning("hmm"),
        text("Hi "),
        text("there"),
        common::finish("stop"),
        common::usage(12, 3),
        DONE,
    ]));
    let server = TestApp::start(&mock.url).await;
    let frames =
        server.stream("/api/v1/chat", json!({"model": "m", "input": "hello", "stream": true})).await.rest().await;
    let data: Vec<Value> = frames.iter().map(common::sse::Frame::json).collect();
    for (frame, value) in frames.iter().zip(&data) {
        assert_eq!(frame.event.as_deref(), value["type"].as_str());
    }
    insta::assert_json_snapshot!(redact(&data));
    let result = &data[10]["result"];
    let id = result["response_id"].as_str().unwrap();
    mock.set(Behavior::Answer);
    let (_, next) =
        server.post("/api/v1/chat", json!({"model": "m", "input": "more", "previous_response_id": id})).await;
    assert_eq!(reply_text(&next), "answer to more");
}

#[tokio::test]
async fn a_failed_stream_sends_error_then_chat_end() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("part")]));
    let server = TestApp::start(&mock.url).await;
    let frames =
        server.stream("/api/v1/chat", json!({"model": "m", "input": "hello", "stream": true})).await.rest().await;
    let names: Vec<&str> = frames.iter().map(|f| f.event.as_deref().unwrap()).collect();
    assert_eq!(names[names.len() - 3..], ["message.end", "error", "chat.end"]);
    let error: Value = serde_json::from_str(&frames[frames.len() - 2].data).unwrap();
    assert_eq!(error["error"]["type"], "internal_error");
    let end: Value = serde_json::from_str(&frames[frames.len() - 1].data).unwrap();
    assert_eq!(end["result"]["output"], json!([{"type": "message", "content": "part"}]));
}

#[tokio::test]
async fn bad_input_gets_lm_studio_errors() {
    let server = TestApp::start("echo").await;
    let cases = [
        (json!({"input": "x"}), 400, "invalid_request", Some("missing_required_parameter"), Some("model")),
        (json!({"model": "m"}), 400, "invalid_request", Some("missing_required_parameter"), Some("input")),
        (json!({"model": "m", "input": ""}), 400, "invalid_request", Some("missing_required_parameter"), Some("input")),
        (json!({"model": "m", "input": 3}), 400, "invalid_request", Some("invalid_type"), Some("input")),
        (
            json!({"model": "m", "input": [{"type": "video", "content": "x"}]}),
            400,
            "invalid_request",
            Some("invalid_value"),
            Some("input[0].type"),
        ),
        (
            json!({"model": "m", "input": [{"type": "image"}]}),
            400,
            "invalid_request",
            Some("missing_required_parameter"),
            Some("input[0].data_url"),
        ),
        (
            json!({"model": "m", "input": "x", "previous_response_id": "abc"}),
            400,
            "invalid_request",
            Some("invalid_value"),
            Some("previous_response_id"),
        ),
        (
            json!({"model": "m", "input": "x", "previous_response_id": "resp_unknown"}),
            400,
            "invalid_request",
            Some("previous_response_not_found"),
            Some("previous_response_id"),
        ),
        (
            json!({"model": "m", "input": "x", "temperature": 1.5}),
            400,
            "invalid_request",
            Some("decimal_above_max_value"),
            Some("temperature"),
        ),
        (
            json!({"model": "m", "input": "x", "top_k": 5}),
            400,
            "not_implemented",
            Some("unsupported_parameter"),
            Some("top_k"),
        ),
        (
            json!({"model": "m", "input": "x", "stop": ["\n"]}),
            400,
            "invalid_request",
            Some("unknown_parameter"),
            Some("stop"),
        ),
    ];
    for (body, status, kind, code, param) in cases {
        let (got_status, got) = server.post("/api/v1/chat", body.clone()).await;
        assert_eq!(got_status, status, "{body} → {got}");
        let error = &got["error"];
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str(), error["param"].as_str()),
            (Some(kind), code, param),
            "{body} → {got}"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, got) = server.post_raw("/api/v1/chat", "{oops").await;
    assert_eq!((status, got["error"]["type"].as_str()), (400, Some("invalid_request")));
}
