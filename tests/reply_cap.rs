//! `limits.max_upstream_reply_bytes`: an upstream answer past it is a 502 before anything is stored, or, streamed,
//! ends the turn `failed` with the same message, stored as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{text, Behavior, MockUpstream, TestApp, DONE};
use serde_json::{json, Value};

const MESSAGE: &str = "Upstream 'default' sent a reply larger than 4096 bytes.";

async fn app(mock: &MockUpstream) -> TestApp {
    TestApp::builder().upstream(&mock.url).config(|c| c.limits.max_upstream_reply_bytes = 4096).start().await.unwrap()
}

#[tokio::test]
async fn a_whole_answer_past_the_cap_is_a_502_and_nothing_is_stored() {
    let mock = MockUpstream::start().await;
    let app = app(&mock).await;
    let expected = json!({"error": {"message": MESSAGE, "type": "upstream_error", "param": null, "code": null}});
    let big = json!({"role": "assistant", "content": "x".repeat(5000)});
    let writes = app.store.writes();
    mock.set(Behavior::Message(big.clone()));
    assert_eq!(app.post("/v1/responses", json!({"model": "m", "input": "hi"})).await, (502, expected.clone()));
    assert_eq!(app.store.writes(), writes);
    mock.set(Behavior::Message(big));
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(app.post("/v1/chat/completions", chat).await, (502, expected));
    // Under the cap, the same answer passes.
    mock.set(Behavior::Message(json!({"role": "assistant", "content": "x".repeat(3000)})));
    assert_eq!(app.post("/v1/responses", json!({"model": "m", "input": "hi"})).await.0, 200);
}

#[tokio::test]
async fn a_stream_past_the_cap_ends_the_turn_failed() {
    let mock = MockUpstream::start().await;
    let app = app(&mock).await;
    let mut steps: Vec<_> = (0..100).map(|_| text(&"y".repeat(100))).collect();
    steps.push(DONE);
    mock.set(Behavior::Stream(steps));
    let events: Vec<Value> =
        app.stream("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})).await.rest_json().await;
    let failed = &events.last().unwrap()["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], json!({"code": "server_error", "message": MESSAGE}));
    let (status, stored) = app.get(&format!("/v1/responses/{}", failed["id"].as_str().unwrap())).await;
    assert_eq!((status, &stored), (200, failed));
}
