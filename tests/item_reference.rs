//! `item_reference` input items: a reference to an item of the chain or conversation a turn continues — else to any
//! stored item of the tenant, in another chain or conversation or with no chain at all — is replaced by a copy of the
//! item (a new id of its type), sent upstream, stored and listed as if the client had sent the item; an id that is
//! not there — unknown, of a deleted or expired response or conversation, of a `store: false` turn, or another
//! tenant's — is a 400 naming it, before anything runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::AuthMode;

async fn start(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder().store(store).upstream(&mock.url).start().await?;
    Some((mock, server))
}

/// The id of a response or item.
fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_string()
}

/// An item without its id.
fn without_id(item: &Value) -> Value {
    let mut item = item.clone();
    item.as_object_mut().unwrap().remove("id");
    item
}

/// The exact body of a 400 for a reference to an item that is not there.
fn not_found(item_id: &str, param: &str) -> Value {
    json!({"error": {"message": format!("Item with id '{item_id}' not found."), "type": "invalid_request_error",
        "param": param, "code": null}})
}

/// The upstream message of an assistant calling `lookup` as call `call_1`.
fn lookup_call() -> Value {
    json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]})
}

fn tool(output: &str) -> Value {
    json!({"role": "tool", "content": output, "tool_call_id": "call_1"})
}

/// The upstream request body of a plain turn of model `m` with these messages.
fn upstream_request(messages: Vec<Value>) -> Value {
    json!({"model": "m", "messages": messages})
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Creates a conversation holding a user message `text`; returns its id and that item's id.
async fn conversation(server: &TestApp, text: &str) -> (String, String) {
    let (status, created) =
        server.post("/v1/conversations", json!({"items": [{"role": "user", "content": text}]})).await;
    assert_eq!(status, 200, "{created}");
    let (_, items) = server.get(&format!("/v1/conversations/{}/items", id(&created))).await;
    (id(&created), id(&items["data"][0]))
}

#[rstest]
#[tokio::test]
async fn references_to_items_of_the_chain_are_sent_stored_and_listed_as_the_items(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = start(store).await else { return };
    mock.set(calls(&[("call_1", "lookup", "{\"q\":\"x\"}")]));
    let first = server.create(json!({"model": "m", "input": "find x"})).await;
    let call = first["output"][0].clone();
    assert_eq!(call["type"], "function_call");
    let output = json!([{"type": "function_call_output", "call_id": "call_1", "output": "42"}]);
    let second = server.create(json!({"model": "m", "input": output, "previous_response_id": id(&first)})).await;
    let answer = second["output"][0].clone();
    assert_eq!(answer["content"][0]["text"], "answer to find x");
    mock.take();

    // The first turn's output function call, referenced two turns later, runs again with a new output.
    let input = json!([{"type": "item_reference", "id": id(&call)},
        {"type": "function_call_output", "call_id": "call_1", "output": "43"}]);
    let third = server.create(json!({"model": "m", "input": input, "previous_response_id": id(&second)})).await;
    assert_eq!(third["status"], "completed");
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "find x"),
            lookup_call(),
            tool("42"),
            msg("assistant", "answer to find x"),
            lookup_call(),
            tool("43"),
        ]
    );
    let (status, listed) = server.get(&format!("/v1/responses/{}/input_items?order=asc", id(&third))).await;
    assert_eq!(status, 200);
    let copy = &listed["data"][0];
    assert_eq!(without_id(copy), without_id(&call), "the item as stored, under a new id");
    assert!(copy["id"].as_str().unwrap().starts_with("fc_") && copy["id"] != call["id"], "{copy}");
    assert_eq!(listed["data"][1]["type"], "function_call_output");
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    // An assistant message of the chain, referenced with the short form (`type` left out), continuing the turn that
    // took the copy: the copy is in the history now, and can be referenced by its own id.
    let input = json!([{"id": id(&answer)}, {"type": "item_reference", "id": id(copy)},
        {"type": "function_call_output", "call_id": "call_1", "output": "44"}, {"role": "user", "content": "and?"}]);
    let fourth = server.create(json!({"model": "m", "input": input, "previous_response_id": id(&third)})).await;
    let sent = mock.only_messages();
    assert_eq!(
        sent[6..].to_vec(),
        vec![
            msg("assistant", "answer to find x"),
            // A call joins the assistant message before it, as any call does.
            json!({"role": "assistant", "content": "answer to find x", "tool_calls": lookup_call()["tool_calls"]}),
            tool("44"),
            msg("user", "and?")
        ]
    );
    let (_, listed) = server.get(&format!("/v1/responses/{}/input_items?order=asc", id(&fourth))).await;
    assert_eq!(without_id(&listed["data"][0]), without_id(&answer));
    assert!(listed["data"][0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_ne!(listed["data"][0]["id"], answer["id"]);
}

#[rstest]
#[tokio::test]
async fn references_to_items_of_the_conversation_are_appended_as_copies(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let (status, conversation) =
        server.post("/v1/conversations", json!({"items": [{"role": "user", "content": "hello"}]})).await;
    assert_eq!(status, 200, "{conversation}");
    let conv = id(&conversation);
    let (_, items) = server.get(&format!("/v1/conversations/{conv}/items?order=asc")).await;
    let hello = items["data"][0].clone();
    let turn = server.create(json!({"model": "m", "input": "hi", "conversation": conv})).await;
    let answer = turn["output"][0].clone();
    mock.take();

    let input = json!([{"type": "item_reference", "id": id(&hello)}, {"type": "item_reference", "id": id(&answer)}]);
    let turn = server.create(json!({"model": "m", "input": input, "conversation": conv})).await;
    assert_eq!(turn["status"], "completed");
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "hello"),
            msg("user", "hi"),
            msg("assistant", "answer to hi"),
            msg("user", "hello"),
            msg("assistant", "answer to hi"),
        ]
    );
    // Appended to the conversation under new ids: the originals stay, the copies follow them.
    let (_, items) = server.get(&format!("/v1/conversations/{conv}/items?order=asc")).await;
    let items = items["data"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{items:?}");
    assert_eq!(without_id(&items[3]), without_id(&hello));
    assert_eq!(without_id(&items[4]), without_id(&answer));
    assert!(items[3]["id"] != hello["id"] && items[4]["id"] != answer["id"]);

    // The add-items endpoint resolves them within the conversation too; an unknown one names `items`.
    let (status, added) = server
        .post(
            &format!("/v1/conversations/{conv}/items"),
            json!({"items": [{"type": "item_reference", "id": id(&hello)}]}),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(without_id(&added["data"][0]), without_id(&hello));
    assert_ne!(added["data"][0]["id"], hello["id"]);
    let unknown = json!({"items": [{"type": "item_reference", "id": "msg_nope"}]});
    let got = server.post(&format!("/v1/conversations/{conv}/items"), unknown).await;
    assert_eq!(got, (400, not_found("msg_nope", "items")));
    // A new conversation takes a copy of a stored item of the tenant.
    let (status, created) =
        server.post("/v1/conversations", json!({"items": [{"type": "item_reference", "id": id(&hello)}]})).await;
    assert_eq!(status, 200, "{created}");
    let (_, items) = server.get(&format!("/v1/conversations/{}/items", id(&created))).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 1);
    assert_eq!(without_id(&items["data"][0]), without_id(&hello));
    assert_ne!(items["data"][0]["id"], hello["id"]);
}

#[rstest]
#[tokio::test]
async fn an_unknown_reference_is_a_400_naming_it_before_anything_runs(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let first = server.create(json!({"model": "m", "input": "hi"})).await;
    mock.take();
    let reference = json!([{"type": "item_reference", "id": "msg_nope"}]);
    let continued = json!({"model": "m", "input": reference, "previous_response_id": id(&first)});
    let with = |extra: Value| {
        let mut body = continued.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    for body in [
        continued.clone(),
        with(json!({"stream": true})),
        with(json!({"background": true})),
        with(json!({"store": false})),
    ] {
        assert_eq!(server.post("/v1/responses", body.clone()).await, (400, not_found("msg_nope", "input")), "{body}");
    }
    let (status, counted) = server.post("/v1/responses/input_tokens", continued.clone()).await;
    assert_eq!((status, counted), (400, not_found("msg_nope", "input")));
    // Without a chain, an id no stored item has is just as unknown.
    let alone = json!({"model": "m", "input": reference});
    assert_eq!(server.post("/v1/responses", alone).await, (400, not_found("msg_nope", "input")));
    // The reference must name an id.
    let bad = server.post("/v1/responses", json!({"model": "m", "input": [{"type": "item_reference"}]})).await;
    assert_error(&bad, 400, Some("missing_required_parameter"), Some("input[0].id"));
    assert!(mock.take().is_empty(), "nothing went upstream");
}

#[rstest]
#[tokio::test]
async fn another_tenants_item_is_not_found(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
    let server = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(move |config| {
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = keys;
        })
        .start()
        .await;
    let Some(server) = server else { return };
    let post = |key: &'static str, body: Value| {
        let request = server.client.post(format!("{}/v1/responses", server.base)).bearer_auth(key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (_, alices) = post("sk-alice", json!({"model": "m", "input": "secret"})).await;
    let alices_answer = id(&alices["output"][0]);
    let (_, bobs) = post("sk-bob", json!({"model": "m", "input": "mine"})).await;
    mock.take();
    let reference = json!([{"type": "item_reference", "id": alices_answer}]);
    let got = post("sk-bob", json!({"model": "m", "input": reference, "previous_response_id": id(&bobs)})).await;
    assert_eq!(got, (400, not_found(&alices_answer, "input")));
    let got = post("sk-bob", json!({"model": "m", "input": reference})).await;
    assert_eq!(got, (400, not_found(&alices_answer, "input")));
    assert!(mock.take().is_empty());
    // Alice's own chain resolves it.
    let (status, _) =
        post("sk-alice", json!({"model": "m", "input": reference, "previous_response_id": id(&alices)})).await;
    assert_eq!(status, 200);
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "secret"), msg("assistant", "answer to secret"), msg("assistant", "answer to secret")]
    );
    // Without a chain, Alice's item resolves for Alice, and Bob's own for Bob.
    let (status, _) = post("sk-alice", json!({"model": "m", "input": reference})).await;
    assert_eq!(status, 200);
    assert_eq!(mock.only_messages(), vec![msg("assistant", "answer to secret")]);
    let bobs_reference = json!([{"type": "item_reference", "id": id(&bobs["output"][0])}]);
    let (status, _) = post("sk-bob", json!({"model": "m", "input": bobs_reference})).await;
    assert_eq!(status, 200);
    assert_eq!(mock.only_messages(), vec![msg("assistant", "answer to mine")]);
}

#[rstest]
#[tokio::test]
async fn a_reference_without_a_chain_resolves_to_an_output_item_of_an_earlier_stored_turn(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = start(store).await else { return };
    let first = server.create(json!({"model": "m", "input": "hi"})).await;
    let answer = first["output"][0].clone();
    mock.take();

    // What the Vercel AI SDK sends for a second turn (with its default `store`): the whole conversation, its earlier
    // output as a reference, and no previous_response_id.
    let input = json!([{"role": "user", "content": "hi"}, {"type": "item_reference", "id": id(&answer)},
        {"role": "user", "content": "more"}]);
    let second = server.create(json!({"model": "m", "input": input})).await;
    assert_eq!(second["output"][0]["content"][0]["text"], "answer to more");
    let history = vec![msg("user", "hi"), msg("assistant", "answer to hi"), msg("user", "more")];
    assert_eq!(mock.take(), vec![upstream_request(history.clone())]);

    // Stored as the item under a new id: listed, and history for a turn that continues it.
    let (status, listed) = server.get(&format!("/v1/responses/{}/input_items?order=asc", id(&second))).await;
    assert_eq!(status, 200);
    let listed = listed["data"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(without_id(&listed[1]), without_id(&answer));
    assert!(listed[1]["id"].as_str().unwrap().starts_with("msg_") && listed[1]["id"] != answer["id"]);
    server.create(json!({"model": "m", "input": "again", "previous_response_id": id(&second)})).await;
    let continued = [history, vec![msg("assistant", "answer to more"), msg("user", "again")]].concat();
    assert_eq!(mock.take(), vec![upstream_request(continued)]);
}

#[rstest]
#[tokio::test]
async fn a_reference_to_a_function_call_of_another_chain_resolves(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    mock.set(calls(&[("call_1", "lookup", "{\"q\":\"x\"}")]));
    let first = server.create(json!({"model": "m", "input": "find x"})).await;
    let call = first["output"][0].clone();
    assert_eq!(call["type"], "function_call");
    let other = server.create(json!({"model": "m", "input": "unrelated"})).await;
    mock.take();

    let input = json!([{"role": "user", "content": "look again"}, {"type": "item_reference", "id": id(&call)},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"}]);
    let turn = server.create(json!({"model": "m", "input": input, "previous_response_id": id(&other)})).await;
    assert_eq!(turn["output"][0]["content"][0]["text"], "answer to look again");
    let sent = vec![
        msg("user", "unrelated"),
        msg("assistant", "answer to unrelated"),
        msg("user", "look again"),
        lookup_call(),
        tool("42"),
    ];
    assert_eq!(mock.take(), vec![upstream_request(sent)]);
    let (_, listed) = server.get(&format!("/v1/responses/{}/input_items?order=asc", id(&turn))).await;
    let copy = &listed["data"][1];
    assert_eq!(without_id(copy), without_id(&call));
    assert!(copy["id"].as_str().unwrap().starts_with("fc_") && copy["id"] != call["id"], "{copy}");
}

#[rstest]
#[tokio::test]
async fn items_of_deleted_expired_and_unstored_turns_and_gone_conversations_are_not_found(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    let builder = TestApp::builder().store(store).upstream(&mock.url);
    let Some(server) = builder.config(|config| config.retention.conversations = Some(days(10))).start().await else {
        return;
    };
    let answer = |response: &Value| id(&response["output"][0]);
    // Forty days old: a turn nothing continues (expired), one a twenty-day-old turn continues (alive), and a
    // conversation unused since (expired).
    let expired = server.create(json!({"model": "m", "input": "old"})).await;
    let alive = server.create(json!({"model": "m", "input": "kept"})).await;
    let (_, expired_item) = conversation(&server, "in an old conversation").await;
    server.clock.advance(days(20));
    server.create(json!({"model": "m", "input": "later", "previous_response_id": id(&alive)})).await;
    server.clock.advance(days(20));
    let deleted = server.create(json!({"model": "m", "input": "deleted"})).await;
    assert_eq!(server.delete(&format!("/v1/responses/{}", id(&deleted))).await.0, 200);
    let unstored = server.create(json!({"model": "m", "input": "private", "store": false})).await;
    let (deleted_conversation, deleted_item) = conversation(&server, "in a deleted conversation").await;
    assert_eq!(server.delete(&format!("/v1/conversations/{deleted_conversation}")).await.0, 200);
    let (live_conversation, live_item) = conversation(&server, "in a conversation").await;
    let tip = server.create(json!({"model": "m", "input": "tip"})).await;
    mock.take();

    for gone in [answer(&expired), answer(&deleted), answer(&unstored), expired_item, deleted_item] {
        let reference = json!([{"type": "item_reference", "id": gone}]);
        for previous in [None, Some(id(&tip))] {
            let body = json!({"model": "m", "input": reference, "previous_response_id": previous});
            assert_eq!(server.post("/v1/responses", body).await, (400, not_found(&gone, "input")), "{previous:?}");
        }
        let add = json!({"items": reference});
        let got = server.post(&format!("/v1/conversations/{live_conversation}/items"), add).await;
        assert_eq!(got, (400, not_found(&gone, "items")));
    }
    assert!(mock.take().is_empty(), "nothing went upstream");

    // The old turn a fresh one continues, and a live conversation, resolve.
    let input = json!([{"type": "item_reference", "id": answer(&alive)}, {"type": "item_reference", "id": live_item},
        {"role": "user", "content": "now"}]);
    server.create(json!({"model": "m", "input": input})).await;
    let sent = vec![msg("assistant", "answer to kept"), msg("user", "in a conversation"), msg("user", "now")];
    assert_eq!(mock.take(), vec![upstream_request(sent)]);
}

#[rstest]
#[tokio::test]
async fn references_outside_the_chain_resolve_in_one_store_read_to_the_newest_item_with_the_id(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = start(store).await else { return };
    // Two turns whose input items a client named alike: the newer one's is found.
    let named = |text: &str| json!([{"type": "message", "id": "msg_mine", "role": "user", "content": text}]);
    server.create(json!({"model": "m", "input": named("older")})).await;
    let newer = server.create(json!({"model": "m", "input": named("newer")})).await;
    let (_, conversation_item) = conversation(&server, "in a conversation").await;
    mock.take();

    let reads = server.store.reads();
    let input = json!([{"type": "item_reference", "id": "msg_mine"}, {"type": "item_reference", "id": id(&newer["output"][0])},
        {"type": "item_reference", "id": conversation_item}]);
    server.create(json!({"model": "m", "input": input})).await;
    assert_eq!(server.store.reads() - reads, 1, "one read resolved the three references");
    let sent = vec![msg("user", "newer"), msg("assistant", "answer to newer"), msg("user", "in a conversation")];
    assert_eq!(mock.take(), vec![upstream_request(sent)]);
}
