//! The Conversations API over HTTP, and responses that use a conversation as their history, on SQLite and
//! Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_error, msg, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};

fn texts(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let content = &item["content"][0];
            content["text"].as_str().map(str::to_string).unwrap_or_else(|| item["type"].to_string())
        })
        .collect()
}

#[rstest]
#[tokio::test]
async fn crud(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(server) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    let (status, created) = server
        .post(
            "/v1/conversations",
            json!({"items": [{"type": "message", "role": "user", "content": "hi"}], "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(status, 200);
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("conv_"));
    assert_eq!(
        created,
        json!({"id": id, "object": "conversation", "created_at": created["created_at"], "metadata": {"k": "v"}})
    );
    assert!(created["created_at"].is_i64());
    assert_eq!(server.get(&format!("/v1/conversations/{id}")).await, (200, created.clone()));
    let (_, updated) = server.post(&format!("/v1/conversations/{id}"), json!({"metadata": {"a": "b"}})).await;
    assert_eq!(updated["metadata"], json!({"a": "b"}));
    assert_eq!(server.get(&format!("/v1/conversations/{id}")).await.1["metadata"], json!({"a": "b"}));
    let got = server.post(&format!("/v1/conversations/{id}"), json!({})).await;
    assert_error(&got, 400, Some("missing_required_parameter"), Some("metadata"));

    let (status, added) = server.post(&format!("/v1/conversations/{id}/items"), json!({"items": [
        {"role": "assistant", "content": "hello"}, {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "how are you"}]}
    ]})).await;
    assert_eq!(status, 200);
    assert_eq!(added["object"], "list");
    assert_eq!(texts(&added), ["hello", "how are you"]);
    assert_eq!(added["has_more"], false);
    let second = added["data"][1]["id"].as_str().unwrap().to_string();
    let (_, page) = server.get(&format!("/v1/conversations/{id}/items?limit=2")).await;
    assert_eq!(texts(&page), ["how are you", "hello"]);
    assert_eq!(page["has_more"], true);
    let (_, rest) =
        server.get(&format!("/v1/conversations/{id}/items?limit=2&after={}", page["last_id"].as_str().unwrap())).await;
    assert_eq!(texts(&rest), ["hi"]);
    assert_eq!(rest["has_more"], false);
    let (_, asc) = server.get(&format!("/v1/conversations/{id}/items?order=asc")).await;
    assert_eq!(texts(&asc), ["hi", "hello", "how are you"]);
    assert_eq!(
        asc["data"][0],
        json!({"type": "message", "id": asc["data"][0]["id"], "status": "completed", "role": "user",
        "content": [{"type": "input_text", "text": "hi"}]})
    );

    let (status, item) = server.get(&format!("/v1/conversations/{id}/items/{second}")).await;
    assert_eq!((status, item["content"][0]["text"].as_str()), (200, Some("how are you")));
    let got = server
        .post(
            &format!("/v1/conversations/{id}/items"),
            json!({"items": [{"id": second, "role": "user", "content": "again"}]}),
        )
        .await;
    assert_error(&got, 400, Some("item_already_in_conversation"), Some("items"));
    let (status, conversation) = server.delete(&format!("/v1/conversations/{id}/items/{second}")).await;
    assert_eq!((status, conversation), (200, updated.clone()));
    assert_error(&server.get(&format!("/v1/conversations/{id}/items/{second}")).await, 404, None, None);
    assert_error(&server.delete(&format!("/v1/conversations/{id}/items/{second}")).await, 404, None, None);
    let got = server.get(&format!("/v1/conversations/{id}/items?after={second}")).await;
    assert_error(&got, 404, None, Some("after"));
    assert_eq!(got.1["error"]["message"], format!("No item found with id '{second}'."));

    let (status, deleted) = server.delete(&format!("/v1/conversations/{id}")).await;
    assert_eq!((status, deleted), (200, json!({"id": id, "object": "conversation.deleted", "deleted": true})));
    for path in [format!("/v1/conversations/{id}"), format!("/v1/conversations/{id}/items")] {
        let got = server.get(&path).await;
        assert_error(&got, 404, None, None);
        assert_eq!(got.1["error"]["message"], format!("Conversation with id '{id}' not found."));
    }
    assert_error(&server.delete(&format!("/v1/conversations/{id}")).await, 404, None, None);

    let (_, empty) = server.post("/v1/conversations", json!({})).await;
    let (_, list) = server.get(&format!("/v1/conversations/{}/items", empty["id"].as_str().unwrap())).await;
    assert_eq!(list, json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}));
    let too_many: Vec<Value> = (0..21).map(|n| json!({"role": "user", "content": format!("m{n}")})).collect();
    assert_error(
        &server.post("/v1/conversations", json!({"items": too_many})).await,
        400,
        Some("array_above_max_length"),
        Some("items"),
    );
}

#[rstest]
#[tokio::test]
async fn responses_use_and_extend_the_conversation(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let (_, conversation) =
        server.post("/v1/conversations", json!({"items": [{"role": "user", "content": "hi"}]})).await;
    let id = conversation["id"].as_str().unwrap();
    let first = server.create(json!({"model": "m", "input": "hello", "conversation": id})).await;
    assert_eq!(first["conversation"], json!({"id": id}));
    assert_eq!(mock.only_messages(), vec![msg("user", "hi"), msg("user", "hello")]);
    let second =
        server.create(json!({"model": "m", "input": "more", "conversation": {"id": id}, "store": false})).await;
    assert_eq!(second["output"][0]["content"][0]["text"], "answer to more");
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "hi"), msg("user", "hello"), msg("assistant", "answer to hello"), msg("user", "more")]
    );
    let (_, items) = server.get(&format!("/v1/conversations/{id}/items?order=asc")).await;
    assert_eq!(texts(&items), ["hi", "hello", "answer to hello", "more", "answer to more"]);
    assert_eq!(items["data"][2]["id"], first["output"][0]["id"]);
    // A failed turn appends nothing.
    mock.set(common::Behavior::Stream(vec![common::text("part")]));
    let events = server
        .stream("/v1/responses", json!({"model": "m", "input": "boom", "conversation": id, "stream": true}))
        .await;
    let last = events.rest().await.into_iter().rev().nth(1).unwrap();
    assert_eq!(last.event.as_deref(), Some("response.failed"));
    let (_, items) = server.get(&format!("/v1/conversations/{id}/items")).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 5);

    let got = server.post("/v1/responses", json!({"model": "m", "input": "x", "conversation": "conv_nope"})).await;
    assert_error(&got, 404, None, None);
    assert_eq!(got.1["error"]["message"], "Conversation with id 'conv_nope' not found.");
    let got = server
        .post(
            "/v1/responses",
            json!({"model": "m", "input": "x", "conversation": id, "previous_response_id": first["id"]}),
        )
        .await;
    assert_eq!(
        got,
        (
            400,
            json!({"error": {"message": "Mutually exclusive parameters: ''. Ensure you are only providing one of: 'previous_response_id' or 'conversation'.",
            "type": "invalid_request_error", "param": null, "code": "mutually_exclusive_parameters"}})
        )
    );
}
