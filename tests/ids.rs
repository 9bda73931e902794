//! Ids that cannot exist — a NUL or another control character, or longer than 256 characters — on both stores: a
//! reference answers exactly like an unknown id, a client-chosen item id is a 400 `invalid_value`, and neither
//! reaches the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};

/// The impossible ids, as sent (raw) and as written in a URL.
fn bad_ids(prefix: &str) -> Vec<(String, String)> {
    let long = format!("{prefix}_{}", "a".repeat(10_000));
    vec![(format!("{prefix}_\u{0}x"), format!("{prefix}_%00x")), (long.clone(), long)]
}

fn not_found(message: String) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
}

/// Asserts the answer and that the store was neither read nor written meanwhile.
async fn assert_untouched(
    app: &TestApp,
    call: impl std::future::Future<Output = (u16, Value)>,
    status: u16,
    body: Value,
) {
    let (reads, writes) = (app.store.reads(), app.store.writes());
    let got = call.await;
    assert_eq!(got, (status, body));
    assert_eq!((app.store.reads(), app.store.writes()), (reads, writes), "the store was used");
}

#[rstest]
#[tokio::test]
async fn impossible_path_ids_are_unknown_without_a_query(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(app) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    let response = app.turn("hi", None).await;
    let (_, conversation) = app.post("/v1/conversations", json!({})).await;
    let conversation = conversation["id"].as_str().unwrap().to_string();
    for (raw, url) in bad_ids("resp") {
        let body = not_found(format!("Response with id '{raw}' not found."));
        assert_untouched(&app, app.get(&format!("/v1/responses/{url}")), 404, body.clone()).await;
        assert_untouched(&app, app.get(&format!("/v1/responses/{url}?stream=true")), 404, body.clone()).await;
        assert_untouched(&app, app.delete(&format!("/v1/responses/{url}")), 404, body.clone()).await;
        assert_untouched(&app, app.get(&format!("/v1/responses/{url}/input_items")), 404, body).await;
    }
    for (raw, url) in bad_ids("conv") {
        let body = not_found(format!("Conversation with id '{raw}' not found."));
        let path = format!("/v1/conversations/{url}");
        assert_untouched(&app, app.get(&path), 404, body.clone()).await;
        assert_untouched(&app, app.post(&path, json!({"metadata": {}})), 404, body.clone()).await;
        assert_untouched(&app, app.delete(&path), 404, body.clone()).await;
        assert_untouched(&app, app.get(&format!("{path}/items")), 404, body.clone()).await;
        let items = json!({"items": [{"role": "user", "content": "x"}]});
        assert_untouched(&app, app.post(&format!("{path}/items"), items), 404, body.clone()).await;
        assert_untouched(&app, app.get(&format!("{path}/items/msg_1")), 404, body.clone()).await;
        assert_untouched(&app, app.delete(&format!("{path}/items/msg_1")), 404, body).await;
    }
    for (raw, url) in bad_ids("msg") {
        let body = not_found(format!("Item with id '{raw}' not found."));
        let path = format!("/v1/conversations/{conversation}/items/{url}");
        assert_untouched(&app, app.get(&path), 404, body.clone()).await;
        assert_untouched(&app, app.delete(&path), 404, body).await;
        let cursor = json!({"error": {"message": format!("No item found with id '{raw}'."),
            "type": "invalid_request_error", "param": "after", "code": null}});
        let list = format!("/v1/conversations/{conversation}/items?after={url}");
        assert_untouched(&app, app.get(&list), 404, cursor.clone()).await;
        let list = format!("/v1/responses/{response}/input_items?after={url}");
        assert_untouched(&app, app.get(&list), 404, cursor).await;
    }
}

#[rstest]
#[tokio::test]
async fn impossible_references_in_bodies_are_unknown_without_a_query(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(app) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    for (raw, _) in bad_ids("resp") {
        let body = json!({"error": {"message": format!("Previous response with id '{raw}' not found."),
            "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}});
        for path in ["/v1/responses", "/v1/responses/input_tokens", "/v1/responses/compact"] {
            let request = json!({"model": "m", "input": "hi", "previous_response_id": raw});
            assert_untouched(&app, app.post(path, request), 400, body.clone()).await;
        }
        let streamed = json!({"model": "m", "input": "hi", "previous_response_id": raw, "stream": true});
        assert_untouched(&app, app.post("/v1/responses", streamed), 400, body.clone()).await;
        let lmstudio = json!({"error": {"type": "invalid_request", "message": body["error"]["message"],
            "code": "previous_response_not_found", "param": "previous_response_id"}});
        let request = json!({"model": "m", "input": "hi", "previous_response_id": raw});
        assert_untouched(&app, app.post("/api/v1/chat", request), 400, lmstudio).await;
    }
    for (raw, _) in bad_ids("conv") {
        let body = not_found(format!("Conversation with id '{raw}' not found."));
        for conversation in [json!(raw), json!({"id": raw})] {
            let request = json!({"model": "m", "input": "hi", "conversation": conversation});
            assert_untouched(&app, app.post("/v1/responses", request), 404, body.clone()).await;
        }
    }
}

#[rstest]
#[tokio::test]
async fn impossible_item_ids_of_the_client_are_invalid(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(app) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    let (_, conversation) = app.post("/v1/conversations", json!({})).await;
    let conversation = conversation["id"].as_str().unwrap().to_string();
    let invalid = |param: &str| {
        json!({"error": {"message": format!("Invalid '{param}': an id has at most 256 characters and no control characters."),
            "type": "invalid_request_error", "param": param, "code": "invalid_value"}})
    };
    for (raw, _) in bad_ids("msg") {
        let item = json!({"type": "message", "id": raw, "role": "user", "content": "hi"});
        let request = json!({"model": "m", "input": [item]});
        assert_untouched(&app, app.post("/v1/responses", request), 400, invalid("input[0].id")).await;
        let request = json!({"items": [item]});
        assert_untouched(&app, app.post("/v1/conversations", request.clone()), 400, invalid("items[0].id")).await;
        let path = format!("/v1/conversations/{conversation}/items");
        assert_untouched(&app, app.post(&path, request), 400, invalid("items[0].id")).await;
    }
    for (raw, _) in bad_ids("fc") {
        let call = json!({"type": "function_call", "id": raw, "call_id": "c", "name": "f", "arguments": "{}"});
        let request = json!({"model": "m", "input": [{"role": "user", "content": "hi"}, call]});
        assert_untouched(&app, app.post("/v1/responses", request), 400, invalid("input[1].id")).await;
    }
    // The longest possible id is stored and read back.
    let id = format!("msg_{}", "é".repeat(252));
    let (status, _) =
        app.post("/v1/conversations", json!({"items": [{"id": id, "role": "user", "content": "x"}]})).await;
    assert_eq!(status, 200);
}
