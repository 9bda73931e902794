//! Retrieve, delete, input items, models, chat completions and health: exact bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::snapshot::redact;
use common::{assert_error, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::model::{new_id, ContentPart, Item, ItemStatus, Message, Role};
use threadline::store::{ItemList, Order, PageRequest, Store};

#[tokio::test]
async fn a_response_has_the_full_key_set_and_retrieves_identically() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let created = server
        .create(json!({"model": "m", "input": "hi", "metadata": {"team": "core"}, "instructions": "Be brief.",
            "temperature": 0.2, "max_output_tokens": 100, "safety_identifier": "user-7", "prompt_cache_key": "k"}))
        .await;
    insta::assert_json_snapshot!(redact(&created));
    let id = created["id"].as_str().unwrap();
    let (status, retrieved) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(retrieved, created);
}

#[tokio::test]
async fn delete_answers_and_erases() {
    let server = TestApp::start("echo").await;
    let id = server.turn("hello", None).await;
    let (status, body) = server.delete(&format!("/v1/responses/{id}")).await;
    assert_eq!((status, body), (200, json!({"id": id, "object": "response.deleted", "deleted": true})));
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await.0, 404);
    assert_eq!(server.get(&format!("/v1/responses/{id}/input_items")).await.0, 404);
    assert_eq!(server.delete(&format!("/v1/responses/{id}")).await.0, 404);
    // The content is erased from the database; a tombstone keeps only the parent link.
    let db = sqlx::SqlitePool::connect(server.database.url()).await.unwrap();
    let (body, deleted_at): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT body, deleted_at FROM responses WHERE id = ?").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(body, None);
    assert!(deleted_at.is_some());
    let (items,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM items WHERE response_id = ?").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(items, 0);
}

fn text_of(item: &Value) -> &str {
    item["content"][0]["text"].as_str().unwrap()
}

#[rstest]
#[tokio::test]
async fn input_items_page_both_ways(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(server) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    let input: Vec<Value> = (1..=5).map(|n| json!({"role": "user", "content": format!("m{n}")})).collect();
    let id = server.create(json!({"model": "m", "input": input})).await["id"].as_str().unwrap().to_string();
    let (status, page) = server.get(&format!("/v1/responses/{id}/input_items?limit=2")).await;
    assert_eq!(status, 200);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.iter().map(text_of).collect::<Vec<_>>(), ["m5", "m4"]);
    assert_eq!(page["object"], "list");
    assert_eq!(page["first_id"], data[0]["id"]);
    assert_eq!(page["last_id"], data[1]["id"]);
    assert_eq!(page["has_more"], true);
    let after = page["last_id"].as_str().unwrap();
    let (_, next) = server.get(&format!("/v1/responses/{id}/input_items?limit=2&after={after}")).await;
    assert_eq!(next["data"].as_array().unwrap().iter().map(text_of).collect::<Vec<_>>(), ["m3", "m2"]);
    let (_, asc) = server.get(&format!("/v1/responses/{id}/input_items?order=asc")).await;
    let asc_data = asc["data"].as_array().unwrap();
    assert_eq!(asc_data.iter().map(text_of).collect::<Vec<_>>(), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(asc["has_more"], false);
    assert_eq!(
        asc_data[0],
        json!({"type": "message", "id": asc_data[0]["id"], "status": "completed", "role": "user",
            "content": [{"type": "input_text", "text": "m1"}]})
    );
    assert!(asc_data[0]["id"].as_str().unwrap().starts_with("msg_"));
    let (_, last) = server
        .get(&format!("/v1/responses/{id}/input_items?order=asc&after={}", asc_data[4]["id"].as_str().unwrap()))
        .await;
    assert_eq!(last, json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}));
    let (_, one) = server
        .get(&format!(
            "/v1/responses/{id}/input_items?limit=1&order=desc&after={}",
            asc_data[1]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((one["data"][0]["content"][0]["text"].as_str(), &one["has_more"]), (Some("m1"), &json!(false)));
    let (_, exact) = server.get(&format!("/v1/responses/{id}/input_items?limit=5")).await;
    assert_eq!((exact["data"].as_array().unwrap().len(), &exact["has_more"]), (5, &json!(false)));
    let unknown = server.get(&format!("/v1/responses/{id}/input_items?after=msg_unknown")).await;
    assert_error(&unknown, 404, None, Some("after"));
    assert_eq!(unknown.1["error"]["message"], "No item found with id 'msg_unknown'.");
}

#[tokio::test]
async fn client_item_ids_are_kept() {
    let server = TestApp::start("echo").await;
    let id = server
        .create(
            json!({"model": "m", "input": [{"type": "message", "id": "msg_client1", "role": "user", "content": "x"}]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, page) = server.get(&format!("/v1/responses/{id}/input_items")).await;
    assert_eq!(page["first_id"], "msg_client1");
}

#[tokio::test]
async fn models_lists_what_the_routed_upstreams_serve() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let (status, body) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"}]})
    );
    let echo = TestApp::start("echo").await;
    assert_eq!(
        echo.get("/v1/models").await.1,
        json!({"object": "list", "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "echo",
            "context_length": 8192}]})
    );
}

#[tokio::test]
async fn chat_completions_pass_through_unchanged() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let request = json!({"model": "m", "messages": [{"role": "user", "content": "hey"}], "seed": 7, "n": 1});
    let (status, body) = server.post("/v1/chat/completions", request.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], "answer to hey");
    assert_eq!(mock.take(), vec![request]);
}

#[tokio::test]
async fn chat_completions_on_the_built_in_model_answer_in_the_same_format() {
    let server = TestApp::start("echo").await;
    let messages = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hey there"}]);
    let (status, body) = server.post("/v1/chat/completions", json!({"model": "echo", "messages": messages})).await;
    assert_eq!(status, 200);
    let streamed = server
        .stream(
            "/v1/chat/completions",
            json!({"model": "echo", "messages": messages, "stream": true, "max_tokens": 3,
                "stream_options": {"include_usage": true}}),
        )
        .await
        .rest()
        .await;
    let data: Vec<&str> = streamed.iter().map(|frame| frame.data.as_str()).collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = streamed[..streamed.len() - 1].iter().map(common::sse::Frame::json).collect();
    insta::assert_json_snapshot!(redact(&(body, chunks)));
    let got = server.post("/v1/chat/completions", json!({"model": "echo", "messages": [{"role": "robot"}]})).await;
    assert_error(&got, 400, Some("invalid_value"), Some("messages"));
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestApp::start("echo").await;
    assert_eq!(server.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(server.get("/readyz").await, (200, json!({"status": "ready"})));
}

#[tokio::test]
async fn an_incomplete_turn_is_stored_and_can_be_continued() {
    let server = TestApp::start("echo").await;
    let cut = server.create(json!({"model": "m", "input": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen", "max_output_tokens": 16})).await;
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(cut["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(cut["completed_at"], Value::Null);
    assert_eq!(cut["output"][0]["status"], "incomplete");
    let next = server.create(json!({"model": "m", "input": "more", "previous_response_id": cut["id"]})).await;
    assert_eq!(next["output"][0]["content"][0]["text"], "echo: more [turn 2, 3 messages in context]");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let server = TestApp::start("echo").await;
    let id = server.turn("private", None).await;
    let store = &server.store;
    let page = PageRequest { after: None, limit: 20, order: Order::Asc };
    assert!(store.response("default", &id).await.unwrap().is_some());
    assert_eq!(store.response("other", &id).await.unwrap(), None);
    assert!(store.history("other", &id, 100).await.unwrap().is_none());
    assert_eq!(store.items_page("other", ItemList::ResponseInput(&id), &page).await.unwrap(), None);
    assert!(!store.delete_response("other", &id).await.unwrap());
    let (mut response, pieces) = store.response("default", &id).await.unwrap().unwrap();
    response.id = new_id("resp");
    response.previous_response_id = Some(id.clone());
    let input = Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::User,
        content: vec![ContentPart::InputText { text: "theirs".into() }],
        phase: None,
    });
    // A turn stored by another tenant on top of our id does not pull our history into theirs.
    common::save(&**store, "other", &response, &[input], &pieces).await;
    let theirs = store.history("other", &response.id, 100).await.unwrap().unwrap();
    assert_eq!(theirs.items().len(), 2, "only their own turn: {:?}", theirs.items());
    assert!(store.response("default", &id).await.unwrap().is_some());
}
