//! Chains, branches, deletes, `store:false` and restarts, on both stores: the exact `messages` the upstream receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::db::TestDb;
use common::{assert_error, msg, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::json;
use threadline::model::{new_id, ContentPart, Item, ItemStatus, Message, Role};
use threadline::store::Store;

/// The context the mock upstream should get: each earlier user text with its answer, then the new text.
fn context(answered: &[&str], new: &str) -> Vec<serde_json::Value> {
    let earlier = answered.iter().flat_map(|text| [msg("user", text), msg("assistant", &format!("answer to {text}"))]);
    earlier.chain([msg("user", new)]).collect()
}

#[rstest]
#[tokio::test]
async fn three_turn_chain_sends_each_turn_once(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = server.turn("u1", None).await;
    assert_eq!(mock.only_messages(), vec![msg("user", "u1")]);
    let r2 = server.turn("u2", Some(&r1)).await;
    assert_eq!(mock.only_messages(), context(&["u1"], "u2"));
    server.turn("u3", Some(&r2)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "u2"], "u3"));
}

#[tokio::test]
async fn the_upstream_request_carries_model_and_sampling() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    server
        .create(json!({"model": "llama3", "input": "hi", "temperature": 0.5, "top_p": 0.9, "max_output_tokens": 64, "user": "u-1"}))
        .await;
    let bodies = mock.take();
    assert_eq!(
        bodies,
        vec![json!({
            "model": "llama3",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5,
            "top_p": 0.9,
            "max_tokens": 64,
            "user": "u-1",
        })]
    );
}

#[rstest]
#[tokio::test]
async fn prompt_cache_and_safety_fields_are_echoed_stored_and_forwarded(#[values(false, true)] background: bool) {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let body = json!({"model": "m", "input": "hi", "background": background, "prompt_cache_key": "tenant-7",
        "prompt_cache_retention": "24h", "prompt_cache_options": {"mode": "explicit", "ttl": "1h"},
        "safety_identifier": "user-42"});
    let created = server.create(body).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(server.next_saved().await, id);
    let (_, stored) = server.get(&format!("/v1/responses/{id}")).await;
    for response in [&created, &stored] {
        assert_eq!(response["prompt_cache_key"], "tenant-7");
        assert_eq!(response["prompt_cache_retention"], "24h");
        assert_eq!(response["safety_identifier"], "user-42");
        // OpenAI's Response object has no such field: it is not added.
        assert_eq!(response.get("prompt_cache_options"), None);
    }
    let sent = &mock.take()[0];
    assert_eq!(sent["prompt_cache_key"], "tenant-7");
    assert_eq!(sent["prompt_cache_retention"], "24h");
    assert_eq!(sent["prompt_cache_options"], json!({"mode": "explicit", "ttl": "1h"}));
    assert_eq!(sent["safety_identifier"], "user-42");
}

#[tokio::test]
async fn bad_prompt_cache_fields_are_400s() {
    let server = TestApp::start("echo").await;
    let create = |extra: serde_json::Value| {
        let mut body = json!({"model": "m", "input": "hi"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        server.post("/v1/responses", body)
    };
    let retention = create(json!({"prompt_cache_retention": "forever"})).await;
    assert_error(&retention, 400, Some("invalid_value"), Some("prompt_cache_retention"));
    let mode = create(json!({"prompt_cache_options": {"mode": "sometimes"}})).await;
    assert_error(&mode, 400, Some("invalid_value"), Some("prompt_cache_options.mode"));
    let unknown = create(json!({"prompt_cache_options": {"size": 3}})).await;
    assert_error(&unknown, 400, Some("unknown_parameter"), Some("prompt_cache_options.size"));
}

#[tokio::test]
async fn instructions_apply_to_their_own_turn_only() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let r1 = server.turn("u1", None).await;
    mock.take();
    let r2 = server
        .create(json!({"model": "m", "input": "u2", "previous_response_id": r1, "instructions": "Be brief."}))
        .await;
    assert_eq!(r2["instructions"], "Be brief.");
    assert_eq!(
        mock.only_messages(),
        vec![msg("system", "Be brief."), msg("user", "u1"), msg("assistant", "answer to u1"), msg("user", "u2")]
    );
    server.turn("u3", r2["id"].as_str()).await;
    assert_eq!(mock.only_messages(), context(&["u1", "u2"], "u3"));
}

#[rstest]
#[tokio::test]
async fn branches_from_one_turn_are_independent(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = server.turn("u1", None).await;
    let left = server.turn("left", Some(&r1)).await;
    let right = server.turn("right", Some(&r1)).await;
    mock.take();
    server.turn("more", Some(&left)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "left"], "more"));
    server.turn("more", Some(&right)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "right"], "more"));
}

#[rstest]
#[tokio::test]
async fn a_deleted_middle_turn_drops_out_of_descendants(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = server.turn("u1", None).await;
    let r2 = server.turn("u2", Some(&r1)).await;
    let r3 = server.turn("u3", Some(&r2)).await;
    let (status, _) = server.delete(&format!("/v1/responses/{r2}")).await;
    assert_eq!(status, 200);
    mock.take();
    server.turn("u4", Some(&r3)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "u3"], "u4"));
    let (status, body) =
        server.post("/v1/responses", json!({"model": "m", "input": "x", "previous_response_id": r2})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "previous_response_not_found");
}

#[rstest]
#[tokio::test]
async fn store_false_writes_nothing(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = server.turn("u1", None).await;
    let unstored =
        server.create(json!({"model": "m", "input": "u2", "previous_response_id": r1, "store": false})).await;
    assert_eq!(unstored["store"], false);
    assert_eq!(unstored["output"][0]["content"][0]["text"], "answer to u2");
    let id = unstored["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await.0, 404);
    let (status, body) =
        server.post("/v1/responses", json!({"model": "m", "input": "u3", "previous_response_id": id})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {
            "message": format!("Previous response with id '{id}' not found."),
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }})
    );
    mock.take();
    // The stored turn before it is untouched: continuing it sees only u1.
    server.turn("u3", Some(&r1)).await;
    assert_eq!(mock.only_messages(), context(&["u1"], "u3"));
}

fn message(role: Role, text: &str) -> Item {
    let part = match role {
        Role::Assistant => ContentPart::output_text(text),
        _ => ContentPart::InputText { text: text.to_string() },
    };
    Item::Message(Message { id: new_id("msg"), status: ItemStatus::Completed, role, content: vec![part], phase: None })
}

#[rstest]
#[tokio::test]
async fn a_chain_of_depth_1000_resolves_in_one_query(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().store(store).upstream(&mock.url);
    // A window that holds the whole chain.
    let Some(server) = builder.config(|config| config.context.default_window = Some(100_000)).start().await else {
        return;
    };
    let first = server.turn("u1", None).await;
    let store = &server.store;
    let (template, _) = store.response("default", &first).await.unwrap().unwrap();
    let mut previous = first;
    for n in 2..=1000 {
        let mut response = template.clone();
        response.id = new_id("resp");
        response.previous_response_id = Some(previous.clone());
        response.output = vec![message(Role::Assistant, &format!("answer to u{n}"))];
        let input = [message(Role::User, &format!("u{n}"))];
        common::save(&**store, "default", &response, &input, &vec![vec![]]).await;
        previous = response.id;
    }
    mock.take();
    let reads = store.reads();
    server.turn("u1001", Some(&previous)).await;
    assert_eq!(store.reads() - reads, 1, "continuing a chain costs exactly one store read");
    let mut expected = Vec::new();
    for n in 1..=1000 {
        expected.push(msg("user", &format!("u{n}")));
        expected.push(msg("assistant", &format!("answer to u{n}")));
    }
    expected.push(msg("user", "u1001"));
    assert_eq!(mock.only_messages(), expected);
}

#[tokio::test]
async fn a_chain_deeper_than_the_limit_is_refused() {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().upstream(&mock.url).config(|config| config.limits.max_chain_depth = 2);
    let server = builder.start().await.unwrap();
    let r1 = server.turn("u1", None).await;
    let r2 = server.turn("u2", Some(&r1)).await;
    let r3 = server.turn("u3", Some(&r2)).await;
    let got = server.post("/v1/responses", json!({"model": "m", "input": "u4", "previous_response_id": r3})).await;
    common::assert_error(&got, 400, Some("chain_too_deep"), Some("previous_response_id"));
}

#[rstest]
#[tokio::test]
async fn a_restarted_server_continues_the_chain_from_the_same_database(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(database) = TestDb::create(store).await.map(Arc::new) else { return };
    let r2 = {
        let server = TestApp::builder().database(database.clone()).upstream(&mock.url).start().await.unwrap();
        let r1 = server.turn("u1", None).await;
        server.turn("u2", Some(&r1)).await
    };
    let server = TestApp::builder().database(database).upstream(&mock.url).start().await.unwrap();
    mock.take();
    server.turn("u3", Some(&r2)).await;
    assert_eq!(mock.only_messages(), context(&["u1", "u2"], "u3"));
}

#[tokio::test]
async fn explicit_input_items_keep_roles_and_parts() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    server
        .create(json!({"model": "m", "input": [
            {"role": "developer", "content": "dev rules"},
            {"role": "system", "content": [{"type": "input_text", "text": "sys"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "earlier answer"}]},
            {"role": "user", "content": "q"},
        ]}))
        .await;
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("system", "dev rules"),
            msg("system", "sys"),
            msg("user", "a\nb"),
            msg("assistant", "earlier answer"),
            msg("user", "q"),
        ]
    );
}
