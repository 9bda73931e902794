//! Streamed /v1/responses: exact event sequences, no buffering, disconnect safety, mid-stream failure, replay,
//! and the chat completions pass-through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::snapshot::redact;
use common::sse::{event_types, Events, Frame, TEXT_SEQUENCE};
use common::{finish, msg, reasoning, text, usage, Behavior, MockUpstream, Step, TestApp, DONE};
use serde_json::{json, Value};

/// Reads a whole stream and checks its framing: `event:` equals `type`, sequence numbers count from 0, the
/// response id never changes, and `data: [DONE]` comes last. Returns the events' JSON.
async fn read_stream(events: Events) -> Vec<Value> {
    let mut frames = events.rest().await;
    assert_eq!(frames.pop(), Some(Frame { event: None, data: "[DONE]".into() }));
    let values: Vec<Value> = frames.iter().map(Frame::json).collect();
    let ids: Vec<&Value> = values.iter().filter_map(|v| v.get("response")).map(|r| &r["id"]).collect();
    for (n, (frame, value)) in frames.iter().zip(&values).enumerate() {
        assert_eq!(frame.event.as_deref(), value["type"].as_str(), "{value}");
        assert_eq!(value["sequence_number"], n, "{value}");
    }
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
    values
}

#[tokio::test]
async fn a_text_stream_has_the_exact_event_sequence_and_is_stored() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("Hel"), text("lo"), finish("stop"), usage(5, 2), DONE]));
    let server = TestApp::start(&mock.url).await;
    let events =
        read_stream(server.stream("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})).await).await;
    assert_eq!(event_types(&events), TEXT_SEQUENCE);
    insta::assert_json_snapshot!(redact(&events));
    assert_eq!(
        mock.take(),
        vec![json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
            "stream_options": {"include_usage": true}})]
    );
    // Stored before the terminal event: retrievable and continuable at once.
    let completed = &events[9]["response"];
    let id = completed["id"].as_str().unwrap();
    assert_eq!(&server.get(&format!("/v1/responses/{id}")).await.1, completed);
    mock.set(Behavior::Answer);
    server.turn("next", Some(id)).await;
    assert_eq!(mock.only_messages(), vec![msg("user", "hi"), msg("assistant", "Hello"), msg("user", "next")]);
}

#[tokio::test]
async fn reasoning_streams_as_its_own_item_and_stays_out_of_later_context() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![reasoning("think"), reasoning(" more"), text("answer"), finish("stop"), DONE]));
    let server = TestApp::start(&mock.url).await;
    let events =
        read_stream(server.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await).await;
    // Without reported usage, tokens are estimated (the snapshot's `usage`).
    insta::assert_json_snapshot!(redact(&events));
    let completed = &events.last().unwrap()["response"];
    mock.take();
    mock.set(Behavior::Answer);
    server.turn("again", completed["id"].as_str()).await;
    assert_eq!(mock.only_messages(), vec![msg("user", "q"), msg("assistant", "answer"), msg("user", "again")]);
}

#[tokio::test]
async fn a_length_cut_ends_incomplete_and_can_be_continued() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("so far"), finish("length"), DONE]));
    let server = TestApp::start(&mock.url).await;
    let events = read_stream(
        server
            .stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true, "max_output_tokens": 16}))
            .await,
    )
    .await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(events[events.len() - 2]["item"]["status"], "incomplete");
    mock.set(Behavior::Answer);
    server.turn("go on", last["response"]["id"].as_str()).await;
    assert_eq!(mock.take().len(), 2);
}

/// Streams a turn whose upstream fails after `steps`; returns the events after checking the failure is stored and
/// cannot be continued.
async fn failed_stream(steps: Vec<Step>) -> Vec<Value> {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(steps));
    let server = TestApp::start(&mock.url).await;
    let events =
        read_stream(server.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await).await;
    let failed = &events.last().unwrap()["response"];
    let id = failed["id"].as_str().unwrap();
    let (status, stored) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!((status, &stored), (200, failed));
    let got = server.post("/v1/responses", json!({"model": "m", "input": "x", "previous_response_id": id})).await;
    common::assert_error(&got, 400, Some("previous_response_failed"), Some("previous_response_id"));
    events
}

#[tokio::test]
async fn an_upstream_error_mid_stream_ends_with_error_then_failed() {
    let steps = vec![text("par"), Step::Raw("data: {\"error\": {\"message\": \"out of memory\"}}\n\n")];
    insta::assert_json_snapshot!(redact(&failed_stream(steps).await));
}

#[tokio::test]
async fn an_upstream_that_hangs_up_mid_stream_fails_the_response() {
    let events = failed_stream(vec![text("par")]).await;
    let message = "Upstream 'default' failed mid-stream: the stream ended before the completion finished.";
    assert_eq!(events[8]["error"]["message"], message);
    assert_eq!(events[9]["response"]["error"], json!({"code": "server_error", "message": message}));
}

#[tokio::test]
async fn the_first_delta_reaches_the_client_before_the_upstream_finishes() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, text(" second"), finish("stop"), DONE]));
    let server = TestApp::start(&mock.url).await;
    let mut events = server.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await;
    let mut seen = Vec::new();
    loop {
        let event = events.next_json().await;
        seen.push(event["type"].as_str().unwrap().to_string());
        if event["type"] == "response.output_text.delta" {
            assert_eq!(event["delta"], "first");
            break;
        }
    }
    // The upstream is still holding its answer: everything above arrived without it.
    assert_eq!(seen.len(), 5);
    mock.release();
    let rest = events.rest_json().await;
    assert_eq!(rest.last().unwrap()["response"]["output"][0]["content"][0]["text"], "first second");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_still_gets_its_turn_stored() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, text(" second"), finish("stop"), usage(3, 2), DONE]));
    let server = TestApp::start(&mock.url).await;
    let mut events = server.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await;
    let id = events.next_json().await["response"]["id"].as_str().unwrap().to_string();
    while events.next_json().await["type"] != "response.output_text.delta" {}
    drop(events);
    mock.release();
    assert_eq!(server.next_saved().await, id);
    let (status, stored) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["output"][0]["content"][0]["text"], "first second");
    assert_eq!(stored["usage"]["total_tokens"], 5);
}

#[tokio::test]
async fn a_stored_stream_replays_identically_and_from_any_point() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![reasoning("hm"), text("a"), text("b"), text("c"), finish("stop"), DONE]));
    let server = TestApp::start(&mock.url).await;
    let original =
        read_stream(server.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await).await;
    let id = original[0]["response"]["id"].as_str().unwrap();
    let replayed = read_stream(server.stream_get(&format!("/v1/responses/{id}?stream=true")).await).await;
    assert_eq!(replayed, original);
    let tail = server.stream_get(&format!("/v1/responses/{id}?stream=true&starting_after=10")).await.rest_json().await;
    assert_eq!(tail, original[11..].to_vec());
    // A response created without streaming replays too, as one delta per item.
    mock.set(Behavior::Answer);
    let plain = server.create(json!({"model": "m", "input": "z"})).await;
    let plain_id = plain["id"].as_str().unwrap();
    let events = read_stream(server.stream_get(&format!("/v1/responses/{plain_id}?stream=true")).await).await;
    let mut one_delta = TEXT_SEQUENCE.to_vec();
    one_delta.remove(5);
    assert_eq!(event_types(&events), one_delta);
    assert_eq!(events.last().unwrap()["response"], plain);
}

#[tokio::test]
async fn errors_before_the_stream_starts_are_plain_json() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let got = server
        .post("/v1/responses", json!({"model": "m", "input": "q", "stream": true, "previous_response_id": "resp_x"}))
        .await;
    common::assert_error(&got, 400, Some("previous_response_not_found"), Some("previous_response_id"));
    mock.set(Behavior::Fail(500, json!({"error": {"message": "down"}})));
    let got = server.post("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await;
    common::assert_error(&got, 502, None, None);
    let got = server.get("/v1/responses/resp_nope?stream=true").await;
    common::assert_error(&got, 404, None, None);
}

#[tokio::test]
async fn chat_completion_chunks_pass_through_unchanged() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![
        Step::Raw("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"),
        Step::Gate,
        Step::Raw("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
        DONE,
    ]));
    let server = TestApp::start(&mock.url).await;
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "hey"}], "stream": true});
    let mut events = server.stream("/v1/chat/completions", request.clone()).await;
    assert_eq!(
        events.next().await.unwrap().data,
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}"
    );
    mock.release();
    let rest: Vec<String> = events.rest().await.into_iter().map(|e| e.data).collect();
    assert_eq!(rest, ["{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}", "[DONE]"]);
    assert_eq!(mock.take(), vec![request]);
}
