//! Compaction: made in a turn (past a threshold, or asked for) and reused by every later turn and branch below it,
//! streamed as an output item; `/v1/responses/compact` windows that go back as input; sealed content that cannot be
//! forged or used by another tenant — with the exact messages the upstream receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_error, msg, summarizations, summary, words, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};

/// Creates a turn and returns its id, asserting success.
async fn turn(server: &TestApp, body: Value) -> String {
    server.create(body).await["id"].as_str().unwrap().to_string()
}

#[rstest]
#[tokio::test]
async fn a_compaction_is_made_once_and_reused_by_every_later_turn_and_branch(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let managed = json!([{"type": "compaction", "compact_threshold": 1000}]);
    let create = |input: String, previous: Option<String>| json!({"model": "m", "input": input, "previous_response_id": previous, "context_management": managed});
    let (mut previous, mut compacted) = (None, None);
    for i in 0..12 {
        let response = server.create(create(format!("{i} {}", words(60)), previous.clone())).await;
        if response["output"][0]["type"] == "compaction" {
            compacted = Some((i, response.clone()));
            break;
        }
        previous = response["id"].as_str().map(str::to_string);
    }
    let (i, response) = compacted.expect("a compaction past 1000 tokens");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{response}");
    assert!(output[0]["id"].as_str().unwrap().starts_with("cmp_"));
    assert!(output[0]["encrypted_content"].as_str().unwrap().starts_with("tl1."));
    assert_eq!(output[1]["type"], "message");
    let bodies = mock.take();
    assert_eq!(summarizations(&bodies), 1);
    // The newest turn within a quarter of the threshold stays as it is.
    let (kept, last) = (format!("{} {}", i - 1, words(60)), format!("{i} {}", words(60)));
    let answer = |text: &str| msg("assistant", &format!("answer to {text}"));
    let compacted = [summary("the story so far"), msg("user", &kept), answer(&kept), msg("user", &last)];
    assert_eq!(bodies.last().unwrap()["messages"].as_array().unwrap(), &compacted);
    // 50 later turns build on the summary without summarizing again.
    let node = response["id"].as_str().unwrap().to_string();
    let mut tip = node.clone();
    for _ in 0..50 {
        tip = turn(&server, create("ok".into(), Some(tip))).await;
    }
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (50, 0));
    let sent = bodies.last().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(sent[..5], [&compacted[..], &[answer(&last)]].concat());
    assert_eq!(sent.len(), 5 + 2 * 49 + 1);
    // So do three branches below the compaction point.
    for n in 0..3 {
        turn(&server, create(format!("branch {n}"), Some(node.clone()))).await;
    }
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (3, 0));
    assert_eq!(bodies[2]["messages"][0], summary("the story so far"));
}

#[tokio::test]
async fn a_compaction_trigger_compacts_the_history_of_that_turn() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let r1 = turn(&server, json!({"model": "m", "input": "u1"})).await;
    let r2 = turn(&server, json!({"model": "m", "input": "u2", "previous_response_id": r1})).await;
    mock.take();
    let input = json!([msg("user", "u3"), {"type": "compaction_trigger"}]);
    let response = server.create(json!({"model": "m", "input": input, "previous_response_id": r2})).await;
    assert_eq!(response["output"][0]["type"], "compaction");
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0]["messages"][1]["content"],
        "User: u1\n\nAssistant: answer to u1\n\nUser: u2\n\nAssistant: answer to u2"
    );
    assert_eq!(bodies[1]["messages"], json!([summary("the story so far"), msg("user", "u3")]));
    // Its input items hold no trigger.
    let (_, items) = server.get(&format!("/v1/responses/{}/input_items", response["id"].as_str().unwrap())).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 1);
    // A trigger anywhere but last is refused.
    let input = json!([{"type": "compaction_trigger"}, msg("user", "u3")]);
    let got = server.post("/v1/responses", json!({"model": "m", "input": input})).await;
    assert_error(&got, 400, Some("invalid_value"), Some("input[0]"));
}

#[rstest]
#[tokio::test]
async fn the_compacted_window_goes_back_as_input_and_the_upstream_gets_the_summary(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = turn(&server, json!({"model": "m", "input": "u1"})).await;
    let r2 = turn(&server, json!({"model": "m", "input": "u2", "previous_response_id": r1})).await;
    mock.take();
    let (status, compacted) =
        server.post("/v1/responses/compact", json!({"model": "m", "previous_response_id": r2})).await;
    assert_eq!(status, 200, "{compacted}");
    assert_eq!(compacted["object"], "response.compaction");
    let bodies = mock.take();
    assert_eq!(summarizations(&bodies), 1);
    assert_eq!(bodies[0]["messages"][1]["content"], "Assistant: answer to u1\n\nAssistant: answer to u2");
    let output = compacted["output"].as_array().unwrap().clone();
    assert_eq!(output.len(), 3, "{compacted}");
    for (item, text) in output.iter().zip(["u1", "u2"]) {
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "user");
        assert_eq!(item["content"], json!([{"type": "input_text", "text": text}]));
    }
    assert_eq!(output[2]["type"], "compaction");
    assert_eq!(compacted["usage"]["input_tokens"], 11);
    let mut input = output.clone();
    input.push(msg("user", "u3"));
    let response = server.create(json!({"model": "m", "input": input})).await;
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "u1"), msg("user", "u2"), summary("the story so far"), msg("user", "u3")]
    );
    // Stored as input, the window is the next turn's history.
    turn(&server, json!({"model": "m", "input": "u4", "previous_response_id": response["id"]})).await;
    assert_eq!(mock.only_messages()[2], summary("the story so far"));
    let got = server.post("/v1/responses/compact", json!({"input": "hi"})).await;
    assert_error(&got, 400, Some("missing_required_parameter"), Some("model"));
}

#[tokio::test]
async fn a_forged_or_foreign_compaction_is_refused() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let forged = json!([{"type": "compaction", "encrypted_content": "tl1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, msg("user", "hi")]);
    let got = server.post("/v1/responses", json!({"model": "m", "input": forged})).await;
    assert_error(&got, 400, Some("invalid_encrypted_content"), Some("input"));
    let request = threadline::engine::CompactRequest {
        tenant: "someone-else".into(),
        model: "m".into(),
        input: vec![common::user_item("a secret")],
        instructions: None,
        previous_response_id: None,
        prompt_cache_key: None,
        request_id: None,
        upstream_key: None,
    };
    let window = server.engine.compact(request).await.unwrap();
    let foreign = serde_json::to_value(window.output.last().unwrap()).unwrap();
    let got = server.post("/v1/responses", json!({"model": "m", "input": [foreign, msg("user", "hi")]})).await;
    assert_error(&got, 400, Some("invalid_encrypted_content"), Some("input"));
    assert_eq!(summarizations(&mock.take()), 0);
}

#[tokio::test]
async fn a_models_summarize_strategy_compacts_and_streams_the_compaction_item_first() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| {
            let entry = json!({"models": ["m"], "window": 2000, "strategy": "summarize", "compact_threshold": 0.5});
            config.context.models = vec![serde_json::from_value(entry).unwrap()];
        })
        .start()
        .await
        .unwrap();
    let mut previous: Option<String> = None;
    for i in 0..3 {
        let body = json!({"model": "m", "input": format!("{i} {}", words(170)), "previous_response_id": previous});
        previous = Some(turn(&server, body).await);
    }
    assert_eq!(summarizations(&mock.take()), 0);
    // Past 1000 tokens (half the configured window): this turn compacts, without asking for it.
    let body = json!({"model": "m", "input": "go on", "previous_response_id": previous, "stream": true});
    let events = server.stream("/v1/responses", body).await.rest_json().await;
    let kinds: Vec<&str> = events.iter().take(5).map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added"
        ]
    );
    let (added, done) = (&events[2], &events[3]);
    assert_eq!((added["output_index"].as_u64(), done["output_index"].as_u64()), (Some(0), Some(0)));
    assert_eq!(done["item"]["type"], "compaction");
    assert_eq!(added["item"], done["item"]);
    assert_eq!(events[4]["item"]["type"], "message");
    assert_eq!(events[4]["output_index"], 1);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["output"][0], done["item"]);
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (2, 1));
    assert_eq!(bodies[1]["messages"][0], summary("the story so far"));
    // Retrieved, and replayed, the same.
    let id = completed["response"]["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await.1["output"][0], done["item"]);
}

#[tokio::test]
async fn a_compaction_from_a_turns_output_sent_as_input_stands_where_it_is_put() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let r1 = turn(&server, json!({"model": "m", "input": "u1"})).await;
    let input = json!([msg("user", "u2"), {"type": "compaction_trigger"}]);
    let made = server.create(json!({"model": "m", "input": input, "previous_response_id": r1})).await;
    let compaction = made["output"][0].clone();
    assert_eq!(compaction["type"], "compaction");
    mock.take();
    // A client that keeps its own history resends it: the summary goes where the item is.
    let input = json!([msg("user", "before"), compaction, msg("user", "after")]);
    let r2 = turn(&server, json!({"model": "m", "input": input})).await;
    assert_eq!(mock.only_messages(), vec![msg("user", "before"), summary("the story so far"), msg("user", "after")]);
    // Stored as this chain's input, it stays a plain summary there, never replacing this chain's turns.
    turn(&server, json!({"model": "m", "input": "next", "previous_response_id": r2})).await;
    let sent = mock.only_messages();
    assert_eq!(sent[..3], [msg("user", "before"), summary("the story so far"), msg("user", "after")]);
    assert_eq!(sent.len(), 5);
    // Also in a conversation.
    let items = json!([made["output"][0], msg("user", "hi")]);
    let (status, conversation) = server.post("/v1/conversations", json!({"items": items})).await;
    assert_eq!(status, 200, "{conversation}");
    let id = conversation["id"].as_str().unwrap();
    turn(&server, json!({"model": "m", "input": "and?", "conversation": id})).await;
    assert_eq!(mock.only_messages(), vec![summary("the story so far"), msg("user", "hi"), msg("user", "and?")]);
}

#[rstest]
#[tokio::test]
async fn a_compaction_in_a_conversation_is_reused_by_its_later_turns(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let items = json!([msg("user", "u1"), msg("assistant", "a1"), msg("user", "u2"), msg("assistant", "a2")]);
    let (_, conversation) = server.post("/v1/conversations", json!({"items": items})).await;
    let id = conversation["id"].as_str().unwrap();
    let input = json!([msg("user", "u3"), {"type": "compaction_trigger"}]);
    let response = server.create(json!({"model": "m", "input": input, "conversation": id})).await;
    assert_eq!(response["output"][0]["type"], "compaction");
    let bodies = mock.take();
    assert_eq!(bodies[0]["messages"][1]["content"], "User: u1\n\nAssistant: a1\n\nUser: u2\n\nAssistant: a2");
    assert_eq!(bodies[1]["messages"], json!([summary("the story so far"), msg("user", "u3")]));
    for _ in 0..2 {
        turn(&server, json!({"model": "m", "input": "u4", "conversation": id})).await;
    }
    let bodies = mock.take();
    assert_eq!(summarizations(&bodies), 0);
    let expected = json!([
        summary("the story so far"),
        msg("user", "u3"),
        msg("assistant", "answer to u3"),
        msg("user", "u4"),
        msg("assistant", "answer to u4"),
        msg("user", "u4")
    ]);
    assert_eq!(bodies[1]["messages"], expected);
}
