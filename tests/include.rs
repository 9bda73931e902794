//! `include`: `message.output_text.logprobs` (with `top_logprobs`) asks the backend for log probabilities and shows
//! them on the output text, plain, streamed, stored and replayed; `reasoning.encrypted_content` shows reasoning items
//! sealed by threadline, which restore the item when sent back — and a blob that does not open is kept as given.
//! Without the include, nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::AuthMode;

const LOGPROBS: &str = "message.output_text.logprobs";
const ENCRYPTED: &str = "reasoning.encrypted_content";

/// The tokens of `Hi there`, each with two alternatives.
fn tokens() -> Vec<Value> {
    vec![token("Hi", -0.25, &[("Hi", -0.25), ("Hello", -1.5)]), token(" there", -0.5, &[(" there", -0.5), ("!", -2.0)])]
}

/// `tokens()` as the output text part shows them.
fn shown() -> Value {
    json!([
        {"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}, {"token": "Hello", "logprob": -1.5, "bytes": [72, 101, 108, 108, 111]}]},
        {"token": " there", "logprob": -0.5, "bytes": [32, 116, 104, 101, 114, 101], "top_logprobs": [
            {"token": " there", "logprob": -0.5, "bytes": [32, 116, 104, 101, 114, 101]}, {"token": "!", "logprob": -2.0, "bytes": [33]}]},
    ])
}

/// `tokens()[i]` as the text events show it: without bytes.
fn in_event(i: usize) -> Value {
    let mut token = shown()[i].clone();
    token.as_object_mut().unwrap().remove("bytes");
    for top in token["top_logprobs"].as_array_mut().unwrap() {
        top.as_object_mut().unwrap().remove("bytes");
    }
    token
}

async fn server(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder().store(store).upstream(&mock.url).start().await?;
    Some((mock, server))
}

#[rstest]
#[tokio::test]
async fn logprobs_are_asked_for_shown_and_stored(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = server(store).await else { return };
    mock.set(Behavior::Logprobs("Hi there".into(), tokens()));
    let body = json!({"model": "m", "input": "hi", "include": [LOGPROBS], "top_logprobs": 2});
    let created = server.create(body).await;
    assert_eq!(
        mock.take(),
        vec![json!({"messages": [msg("user", "hi")], "model": "m", "logprobs": true, "top_logprobs": 2})]
    );
    assert_eq!(
        created["output"][0]["content"],
        json!([{"type": "output_text", "text": "Hi there", "annotations": [], "logprobs": shown()}])
    );
    assert_eq!(created["top_logprobs"], 2);
    // Stored with the turn: a read shows what the create returned, with or without the include.
    let id = created["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await, (200, created.clone()));
    assert_eq!(server.get(&format!("/v1/responses/{id}?include[]={LOGPROBS}")).await, (200, created.clone()));
    // The include alone asks for no alternatives.
    server.create(json!({"model": "m", "input": "hi", "include": [LOGPROBS]})).await;
    assert_eq!(mock.take(), vec![json!({"messages": [msg("user", "hi")], "model": "m", "logprobs": true})]);
}

#[rstest]
#[tokio::test]
async fn streamed_logprobs_come_with_their_deltas_and_replay_the_same(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = server(store).await else { return };
    let [hi, there]: [Value; 2] = tokens().try_into().unwrap();
    mock.set(Behavior::Stream(vec![
        text_logprobs("Hi", &[hi]),
        text_logprobs(" there", &[there]),
        finish("stop"),
        usage(5, 2),
        DONE,
    ]));
    let body = json!({"model": "m", "input": "hi", "include": [LOGPROBS], "top_logprobs": 2, "stream": true});
    let events = server.stream("/v1/responses", body).await.rest_json().await;
    assert_eq!(
        mock.take(),
        vec![json!({"messages": [msg("user", "hi")], "model": "m", "logprobs": true, "top_logprobs": 2,
            "stream": true, "stream_options": {"include_usage": true}})]
    );
    assert_eq!(sse::event_types(&events), sse::TEXT_SEQUENCE);
    let item_id = events[2]["item"]["id"].as_str().unwrap();
    let at = |n: u64| json!({"item_id": item_id, "output_index": 0, "content_index": 0, "sequence_number": n});
    let with = |mut base: Value, extra: Value| {
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base
    };
    assert_eq!(
        events[3],
        with(
            at(3),
            json!({"type": "response.content_part.added",
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        )
    );
    assert_eq!(
        events[4],
        with(at(4), json!({"type": "response.output_text.delta", "delta": "Hi", "logprobs": [in_event(0)]}))
    );
    assert_eq!(
        events[5],
        with(at(5), json!({"type": "response.output_text.delta", "delta": " there", "logprobs": [in_event(1)]}))
    );
    assert_eq!(
        events[6],
        with(
            at(6),
            json!({"type": "response.output_text.done", "text": "Hi there",
            "logprobs": [in_event(0), in_event(1)]})
        )
    );
    let part = json!({"type": "output_text", "text": "Hi there", "annotations": [], "logprobs": shown()});
    assert_eq!(events[7], with(at(7), json!({"type": "response.content_part.done", "part": part})));
    assert_eq!(events[8]["item"]["content"], json!([part]));
    let completed = &events[9]["response"];
    assert_eq!(completed["output"][0]["content"], json!([part]));
    // The replay is the live stream, event for event.
    let id = completed["id"].as_str().unwrap();
    let replay = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await;
    assert_eq!(replay, events);
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await, (200, completed.clone()));
}

#[tokio::test]
async fn without_the_include_nothing_is_asked_nor_shown() {
    let Some((mock, server)) = server(Sqlite).await else { return };
    // A backend that sends log probabilities unasked.
    mock.set(Behavior::Logprobs("Hi there".into(), tokens()));
    let created = server.create(json!({"model": "m", "input": "hi", "top_logprobs": 2})).await;
    assert_eq!(mock.take(), vec![json!({"messages": [msg("user", "hi")], "model": "m"})]);
    assert_eq!(created["output"][0]["content"][0]["logprobs"], json!([]));
    assert_eq!(created["top_logprobs"], 2, "echoed as given");
    let [hi, there]: [Value; 2] = tokens().try_into().unwrap();
    mock.set(Behavior::Stream(vec![
        text_logprobs("Hi", &[hi]),
        text_logprobs(" there", &[there]),
        finish("stop"),
        DONE,
    ]));
    let events = server.stream("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})).await;
    let events = events.rest_json().await;
    assert!(mock.take()[0].get("logprobs").is_none());
    let logprobs: Vec<&Value> = events.iter().filter_map(|event| event.get("logprobs")).collect();
    assert_eq!(logprobs, [&json!([]), &json!([]), &json!([])], "both deltas and the done event: {events:?}");
    for part in [&events[3]["part"], &events[7]["part"], &events[9]["response"]["output"][0]["content"][0]] {
        assert_eq!(part["logprobs"], json!([]));
    }
}

#[tokio::test]
async fn bad_include_values_and_top_logprobs_are_400s() {
    let server = TestApp::start("echo").await;
    let create = |extra: Value| {
        let mut body = json!({"model": "m", "input": "x"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (json!({"include": ["message.output_text.logprob"]}), "invalid_value", "include[0]"),
        (json!({"include": [LOGPROBS, 3]}), "invalid_type", "include[1]"),
        (json!({"include": LOGPROBS}), "invalid_type", "include"),
        (json!({"include": ["web_search_call.results"]}), "unsupported_parameter", "include[0]"),
        (json!({"top_logprobs": 21}), "integer_above_max_value", "top_logprobs"),
        (json!({"top_logprobs": -1}), "integer_below_min_value", "top_logprobs"),
        (json!({"top_logprobs": 1.5}), "invalid_type", "top_logprobs"),
    ];
    for (extra, code, param) in cases {
        let got = server.post("/v1/responses", create(extra.clone())).await;
        assert_error(&got, 400, Some(code), Some(param));
    }
    let id = server.turn("hello", None).await;
    for path in [
        format!("/v1/responses/{id}?include[]=nope"),
        format!("/v1/responses/{id}/input_items?include[]=nope"),
        "/v1/conversations/conv_x/items?include[]=nope".to_string(),
    ] {
        assert_error(&server.get(&path).await, 400, Some("invalid_value"), Some("include"));
    }
    assert_eq!(server.get(&format!("/v1/responses/{id}?include[]={ENCRYPTED}&include[]={LOGPROBS}")).await.0, 200);
}

/// `POST path` with `Authorization: Bearer <key>`.
async fn post_as(server: &TestApp, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = server.client.post(format!("{}{path}", server.base)).bearer_auth(key).json(body).send().await;
    let response = response.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `GET path` with `Authorization: Bearer <key>`.
async fn get_as(server: &TestApp, key: &str, path: &str) -> Value {
    let response = server.client.get(format!("{}{path}", server.base)).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[rstest]
#[tokio::test]
async fn sealed_reasoning_round_trips_and_foreign_blobs_are_kept(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
        })
        .start()
        .await
    else {
        return;
    };
    let thought = json!({"role": "assistant", "content": "Four.", "reasoning_content": "2+2 is 4."});
    mock.set(Behavior::Message(thought.clone()));
    let body = json!({"model": "m", "input": "2+2?", "include": [ENCRYPTED]});
    let (status, first) = post_as(&server, "sk-alice", "/v1/responses", &body).await;
    assert_eq!(status, 200);
    let reasoning = &first["output"][0];
    let sealed = reasoning["encrypted_content"].as_str().unwrap().to_string();
    assert!(sealed.starts_with("tl1.") && !sealed.contains("2+2"), "{sealed}");
    let rs_id = reasoning["id"].as_str().unwrap();
    let content = json!([{"type": "reasoning_text", "text": "2+2 is 4."}]);
    assert_eq!(
        reasoning,
        &json!({"type": "reasoning", "id": rs_id, "summary": [], "content": content, "encrypted_content": sealed,
            "status": "completed"})
    );
    // Read without the include, no encrypted_content; with it, a sealed one.
    let id = first["id"].as_str().unwrap();
    let plain = get_as(&server, "sk-alice", &format!("/v1/responses/{id}")).await;
    assert_eq!(plain["output"][0].get("encrypted_content"), None);
    let read = get_as(&server, "sk-alice", &format!("/v1/responses/{id}?include[]={ENCRYPTED}")).await;
    assert!(read["output"][0]["encrypted_content"].as_str().unwrap().starts_with("tl1."));

    // Sent back without store, stripped of its text, the sealed item restores it; reasoning is not sent upstream.
    mock.take();
    let resent = json!({"type": "reasoning", "id": rs_id, "summary": [], "encrypted_content": sealed});
    let next = json!({"model": "m", "store": false, "input": [resent, first["output"][1], msg("user", "and 3+3?")]});
    let (status, second) = post_as(&server, "sk-alice", "/v1/responses", &next).await;
    assert_eq!((status, &second["status"]), (200, &json!("completed")));
    assert_eq!(mock.only_messages(), vec![msg("assistant", "Four."), msg("user", "and 3+3?")]);
    let stored = json!({"model": "m", "input": [resent, msg("user", "again")]});
    let (_, third) = post_as(&server, "sk-alice", "/v1/responses", &stored).await;
    let items = format!("/v1/responses/{}/input_items?order=asc", third["id"].as_str().unwrap());
    let restored = json!({"type": "reasoning", "id": rs_id, "summary": [], "content": content, "status": "completed"});
    assert_eq!(get_as(&server, "sk-alice", &items).await["data"][0], restored);
    let with_include = get_as(&server, "sk-alice", &format!("{items}&include[]={ENCRYPTED}")).await;
    let resealed = with_include["data"][0]["encrypted_content"].as_str().unwrap();
    assert!(resealed.starts_with("tl1.") && resealed != sealed, "sealed anew for this read: {resealed}");

    // Another tenant's blob, or garbage, is kept as given (it may be a backend's own) and never shown as it is.
    for (blob, what) in [(sealed.as_str(), "alice's blob, for bob"), ("not-threadline", "garbage")] {
        let item = json!({"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": blob});
        let body = json!({"model": "m", "input": [item, msg("user", "hi")]});
        let (status, turn) = post_as(&server, "sk-bob", "/v1/responses", &body).await;
        assert_eq!(status, 200, "{what}: {turn}");
        let items = format!("/v1/responses/{}/input_items?order=asc", turn["id"].as_str().unwrap());
        let listed = get_as(&server, "sk-bob", &items).await;
        assert_eq!(
            listed["data"][0],
            json!({"type": "reasoning", "id": "rs_x", "summary": [], "content": [], "status": "completed"}),
            "{what}"
        );
        let sealed_again = get_as(&server, "sk-bob", &format!("{items}&include[]={ENCRYPTED}")).await;
        let shown = sealed_again["data"][0]["encrypted_content"].as_str().unwrap();
        assert!(shown.starts_with("tl1.") && shown != blob, "{what}: {shown}");
    }
}

#[tokio::test]
async fn streamed_reasoning_is_sealed_in_its_done_event_and_the_final_response() {
    let Some((mock, server)) = server(Sqlite).await else { return };
    mock.set(Behavior::Stream(vec![reasoning("Think."), text("Four."), finish("stop"), DONE]));
    let body = json!({"model": "m", "input": "2+2?", "include": [ENCRYPTED], "stream": true});
    let events = server.stream("/v1/responses", body).await.rest_json().await;
    let added = events.iter().find(|e| e["type"] == "response.output_item.added").unwrap();
    assert_eq!(added["item"].get("encrypted_content"), None, "an item in progress has none yet");
    let done = events.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
    let sealed = done["item"]["encrypted_content"].as_str().unwrap();
    assert!(sealed.starts_with("tl1."));
    let completed = events.last().unwrap();
    assert_eq!(completed["response"]["output"][0]["encrypted_content"], sealed, "the same blob in one stream");
    // Without the include, the replay shows none.
    let id = completed["response"]["id"].as_str().unwrap();
    let replay = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await;
    assert!(replay.iter().all(|event| !event.to_string().contains("encrypted_content")));
}
