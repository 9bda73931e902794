//! Every legal way a backend may write Server-Sent Events — LF, CRLF or bare CR line ends, a leading byte-order
//! mark, comments, named events without data, lines split across network chunks — read the same through streamed
//! `/v1/responses` and `/api/v1/chat`, and passed through byte for byte by `/v1/chat/completions`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Behavior, MockUpstream, Step, TestApp};
use rstest::rstest;
use serde_json::{json, Value};

/// How one answer is written on the wire.
#[derive(Clone, Copy, Debug)]
struct Form {
    line_end: &'static str,
    bom: bool,
    /// Sent a few bytes at a time, so line ends fall across chunks.
    split: bool,
}

/// "Hello world" (finish `stop`, usage 4 + 2) with a comment and a data-less `ping` event after each chunk (so a
/// byte-order mark stands right before the first `data:` line).
fn answer(form: Form) -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let chunks = [
        chunk(json!({"role": "assistant", "content": "Hello"}), Value::Null),
        chunk(json!({"content": " world"}), Value::Null),
        chunk(json!({}), json!("stop")),
        json!({"object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}),
    ];
    let end = form.line_end;
    let mut text = String::from(if form.bom { "\u{feff}" } else { "" });
    for data in chunks.iter().map(Value::to_string).chain(["[DONE]".to_string()]) {
        text.push_str(&format!("data: {data}{end}{end}: keep-alive{end}{end}event: ping{end}{end}"));
    }
    text.into_bytes()
}

fn steps(form: Form) -> Vec<Step> {
    let bytes = answer(form);
    let size = if form.split { 3 } else { bytes.len() };
    bytes.chunks(size).map(|piece| Step::Bytes(piece.to_vec())).collect()
}

/// threadline in front of a mock that answers in `FORMS[form]` (the mock lives as long as its handle).
async fn app(form: usize) -> (Form, MockUpstream, TestApp) {
    let form = FORMS[form];
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(steps(form)));
    let server = TestApp::start(&mock.url).await;
    (form, mock, server)
}

const FORMS: [Form; 7] = [
    Form { line_end: "\n", bom: false, split: false },
    Form { line_end: "\r\n", bom: false, split: false },
    Form { line_end: "\r", bom: false, split: false },
    Form { line_end: "\n", bom: true, split: false },
    Form { line_end: "\r", bom: true, split: true },
    Form { line_end: "\r\n", bom: true, split: true },
    Form { line_end: "\n", bom: false, split: true },
];

#[rstest]
#[tokio::test]
async fn a_streamed_response_reads_every_form(#[values(0, 1, 2, 3, 4, 5, 6)] form: usize) {
    let (form, _mock, server) = app(form).await;
    let events = server.stream("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})).await;
    let events = events.rest_json().await;
    let deltas: Vec<&str> = events.iter().filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(deltas, ["Hello", " world"], "{form:?}");
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed", "{form:?}");
    assert_eq!(completed["usage"]["input_tokens"], 4);
    assert_eq!(completed["usage"]["output_tokens"], 2);
    let id = completed["id"].as_str().unwrap();
    let (_, stored) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(stored["output"][0]["content"][0]["text"], "Hello world", "{form:?}");
}

#[rstest]
#[tokio::test]
async fn an_lm_studio_chat_reads_every_form(#[values(0, 1, 2, 3, 4, 5, 6)] form: usize) {
    let (form, _mock, server) = app(form).await;
    let frames = server.stream("/api/v1/chat", json!({"model": "m", "input": "hi", "stream": true})).await;
    let frames = frames.rest().await;
    let deltas: Vec<String> = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("message.delta"))
        .map(|f| f.json()["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, ["Hello", " world"], "{form:?}");
    let end = frames.last().unwrap().json();
    assert_eq!(end["result"]["output"], json!([{"type": "message", "content": "Hello world"}]), "{form:?}");
    assert_eq!(end["result"]["stats"]["input_tokens"], 4);
}

#[rstest]
#[tokio::test]
async fn chat_completions_pass_every_form_through_unchanged(#[values(0, 1, 2, 3, 4, 5, 6)] form: usize) {
    let (form, _mock, server) = app(form).await;
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let response = server.client.post(format!("{}/v1/chat/completions", server.base)).json(&request).send().await;
    let body = response.unwrap().bytes().await.unwrap();
    assert_eq!(body.to_vec(), answer(form), "{form:?}");
}
