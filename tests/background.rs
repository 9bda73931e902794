//! Background responses in one server, on both stores: queued at once, run by a worker, polled, streamed live and
//! resumed, cancelled (closing the upstream connection), failed, deleted while running, and the 400s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rstest::rstest;
use serde_json::{json, Value};

/// A server whose background workers save progress and look for work every 50 ms.
async fn server(store: StoreKind, mock: &MockUpstream) -> Option<TestApp> {
    TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.background.poll_interval = Duration::from_millis(50);
            config.background.lease = Duration::from_secs(5);
        })
        .start()
        .await
}

/// Creates a background response and returns its queued body.
async fn queue(server: &TestApp, input: &str) -> Value {
    server.create(json!({"model": "m", "input": input, "background": true})).await
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["type"].as_str().unwrap()).collect()
}

/// The first `n` events of a stream.
async fn first(events: &mut sse::Events, n: usize) -> Vec<Value> {
    let mut read = Vec::new();
    for _ in 0..n {
        read.push(events.next_json().await);
    }
    read
}

#[rstest]
#[tokio::test]
async fn a_background_response_is_queued_then_runs_to_completion(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = server(store, &mock).await else { return };
    let queued = queue(&server, "hello").await;
    let id = queued["id"].as_str().unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["background"], true);
    assert_eq!(queued["output"], json!([]));
    assert_eq!(queued["usage"], Value::Null);
    assert_eq!(queued["completed_at"], Value::Null);
    assert_eq!(server.next_saved().await, id);
    let (status, done) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["background"], true);
    assert_eq!(done["created_at"], queued["created_at"]);
    assert_eq!(done["output"][0]["content"][0]["text"], "answer to hello");
    assert_eq!(done["usage"]["input_tokens"], 11);
    let bodies = mock.take();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["messages"], json!([msg("user", "hello")]));
    assert_eq!(bodies[0]["stream"], true);
    // Its input items were stored when it was queued; a turn continues it like any other.
    let (_, items) = server.get(&format!("/v1/responses/{id}/input_items")).await;
    assert_eq!(items["data"][0]["content"][0]["text"], "hello");
    server.turn("and then?", Some(id)).await;
    let context = vec![msg("user", "hello"), msg("assistant", "answer to hello"), msg("user", "and then?")];
    assert_eq!(mock.only_messages(), context);
}

#[rstest]
#[tokio::test]
async fn a_running_response_streams_live_and_resumes_after_an_event(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("one "), Step::Gate, text("two"), finish("stop"), usage(11, 3), DONE]));
    let Some(server) = server(store, &mock).await else { return };
    let id = queue(&server, "count").await["id"].as_str().unwrap().to_string();
    let mut live = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await;
    // While the upstream waits, the events so far arrive.
    let mut events = first(&mut live, 6).await;
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.queued",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta"
        ]
    );
    assert_eq!(events[0]["response"]["status"], "queued");
    assert_eq!(events[2]["response"]["status"], "in_progress");
    assert_eq!(events[5]["delta"], "one ");
    mock.release();
    events.extend(live.rest_json().await);
    assert_eq!(
        types(&events[6..]),
        [
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[6]["delta"], "two");
    assert_eq!(events[7]["text"], "one two");
    let numbers: Vec<u64> = events.iter().map(|event| event["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..11).collect::<Vec<u64>>());
    // The stream read again after it ended is the same; `starting_after` resumes it mid-way.
    let replay = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await;
    assert_eq!(replay, events);
    let resumed = server.stream_get(&format!("/v1/responses/{id}?stream=true&starting_after=5")).await;
    assert_eq!(resumed.rest_json().await, events[6..]);
}

#[rstest]
#[tokio::test]
async fn a_cancel_stops_the_upstream_call_and_stores_cancelled(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("partial"), Step::Gate, text(" rest"), finish("stop"), DONE]));
    let Some(server) = server(store, &mock).await else { return };
    let id = queue(&server, "go").await["id"].as_str().unwrap().to_string();
    let mut live = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await;
    let events = first(&mut live, 6).await;
    assert_eq!(events[5]["delta"], "partial");
    let (status, cancelled) = server.post(&format!("/v1/responses/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"], Value::Null);
    assert_eq!(cancelled["completed_at"], Value::Null);
    assert_eq!(cancelled["output"].as_array().unwrap().len(), 1, "{cancelled}");
    assert_eq!(cancelled["output"][0]["status"], "incomplete");
    assert_eq!(cancelled["output"][0]["content"][0]["text"], "partial");
    // The upstream connection is closed: the answer is cut before its end.
    mock.wait_cut().await;
    let rest = live.rest_json().await;
    assert_eq!(
        types(&rest),
        ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.failed"]
    );
    assert_eq!(rest[3]["response"], cancelled);
    // Cancelling again changes nothing; the stored response is the cancelled one.
    assert_eq!(server.post(&format!("/v1/responses/{id}/cancel"), json!({})).await, (200, cancelled.clone()));
    assert_eq!(server.get(&format!("/v1/responses/{id}")).await, (200, cancelled));
    assert_eq!(mock.take().len(), 1);
}

#[rstest]
#[tokio::test]
async fn a_queued_response_cancelled_before_it_runs_never_reaches_the_upstream(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Held);
    let Some(server) = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.background.workers = 1;
            config.background.poll_interval = Duration::from_millis(50);
        })
        .start()
        .await
    else {
        return;
    };
    // The one worker is busy with the first; the second waits, queued.
    let running = queue(&server, "first").await["id"].as_str().unwrap().to_string();
    let mut live = server.stream_get(&format!("/v1/responses/{running}?stream=true")).await;
    assert_eq!(first(&mut live, 3).await[2]["type"], "response.in_progress");
    let waiting = queue(&server, "second").await["id"].as_str().unwrap().to_string();
    let metrics = server.client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("\nthreadline_background_queue_depth 1\n"), "{metrics}");
    let (status, cancelled) = server.post(&format!("/v1/responses/{waiting}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!((&cancelled["status"], &cancelled["output"]), (&json!("cancelled"), &json!([])));
    mock.release();
    assert_eq!(server.next_saved().await, running);
    let (_, first) = server.get(&format!("/v1/responses/{running}")).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(mock.only_messages(), vec![msg("user", "first")]);
}

#[rstest]
#[tokio::test]
async fn cancel_answers_what_was_not_or_is_no_longer_running(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = server(store, &mock).await else { return };
    let foreground = server.turn("now", None).await;
    assert_eq!(server.next_saved().await, foreground);
    let rejected = server.post(&format!("/v1/responses/{foreground}/cancel"), json!({})).await;
    assert_eq!(
        rejected,
        (
            400,
            json!({"error": {"message": format!("Only responses created with background=true can be cancelled; '{foreground}' was not."),
                "type": "invalid_request_error", "param": null, "code": null}})
        )
    );
    let unknown = server.post("/v1/responses/resp_unknown/cancel", json!({})).await;
    assert_error(&unknown, 404, None, None);
    let id = queue(&server, "later").await["id"].as_str().unwrap().to_string();
    server.next_saved().await;
    let (_, done) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(server.post(&format!("/v1/responses/{id}/cancel"), json!({})).await, (200, done));
}

#[rstest]
#[tokio::test]
async fn a_background_response_that_fails_is_stored_failed(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    mock.fail_once(500, json!({"error": {"message": "the GPU caught fire"}}));
    let Some(server) = server(store, &mock).await else { return };
    let id = queue(&server, "hi").await["id"].as_str().unwrap().to_string();
    let events = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await.rest_json().await;
    assert_eq!(
        types(&events),
        ["response.created", "response.queued", "response.in_progress", "error", "response.failed"]
    );
    let (_, failed) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert_eq!(failed["error"]["message"], "Upstream 'default' answered HTTP 500.");
    assert_eq!(events[4]["response"], failed);
}

#[rstest]
#[tokio::test]
async fn what_a_background_request_cannot_do(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Held);
    let Some(server) = server(store, &mock).await else { return };
    let unstored =
        server.post("/v1/responses", json!({"model": "m", "input": "x", "background": true, "store": false}));
    assert_eq!(
        unstored.await,
        (
            400,
            json!({"error": {"message": "Background responses must be stored: 'background' requires 'store' to be true.",
                "type": "invalid_request_error", "param": "background", "code": "invalid_value"}})
        )
    );
    let missing = json!({"model": "m", "input": "x", "background": true, "previous_response_id": "resp_missing"});
    assert_error(
        &server.post("/v1/responses", missing).await,
        400,
        Some("previous_response_not_found"),
        Some("previous_response_id"),
    );
    // A response still running cannot be continued yet.
    let id = queue(&server, "slow").await["id"].as_str().unwrap().to_string();
    let early = server.post("/v1/responses", json!({"model": "m", "input": "next", "previous_response_id": id}));
    assert_eq!(
        early.await,
        (
            400,
            json!({"error": {"message": format!("Previous response with id '{id}' is still in progress; continue it once it has finished."),
                "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_in_progress"}})
        )
    );
    mock.release();
    assert_eq!(server.next_saved().await, id);
}

#[rstest]
#[tokio::test]
async fn deleting_a_running_response_stops_it(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("partial"), Step::Gate, text(" rest"), finish("stop"), DONE]));
    let Some(server) = server(store, &mock).await else { return };
    let id = queue(&server, "go").await["id"].as_str().unwrap().to_string();
    let mut live = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await;
    first(&mut live, 6).await;
    assert_eq!(server.delete(&format!("/v1/responses/{id}")).await.0, 200);
    mock.wait_cut().await;
    assert_error(&server.get(&format!("/v1/responses/{id}")).await, 404, None, None);
    assert_eq!(live.rest_json().await, Vec::<Value>::new());
}

#[rstest]
#[tokio::test]
async fn a_background_turn_is_added_to_its_conversation(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = server(store, &mock).await else { return };
    let (_, conversation) = server.post("/v1/conversations", json!({})).await;
    let conversation = conversation["id"].as_str().unwrap();
    let body = json!({"model": "m", "input": "remember", "background": true, "conversation": conversation});
    let id = server.create(body).await["id"].as_str().unwrap().to_string();
    assert_eq!(server.next_saved().await, id);
    let (_, items) = server.get(&format!("/v1/conversations/{conversation}/items?order=asc")).await;
    let texts: Vec<&str> =
        items["data"].as_array().unwrap().iter().map(|item| item["content"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["remember", "answer to remember"]);
}

#[rstest]
#[tokio::test]
async fn a_streamed_background_create_follows_the_run(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = server(store, &mock).await else { return };
    let events = server
        .stream("/v1/responses", json!({"model": "m", "input": "hi", "background": true, "stream": true}))
        .await
        .rest_json()
        .await;
    assert_eq!(types(&events)[..3], ["response.created", "response.queued", "response.in_progress"]);
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    let id = events[0]["response"]["id"].as_str().unwrap();
    let (_, stored) = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(events.last().unwrap()["response"], stored);
}

#[rstest]
#[tokio::test]
async fn erasing_a_tenant_stops_its_background_responses(#[values(Sqlite, Postgres)] store: StoreKind) {
    use threadline::store::{Purge, Store};
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("partial"), Step::Gate, text(" rest"), finish("stop"), DONE]));
    let Some(server) = server(store, &mock).await else { return };
    let id = queue(&server, "go").await["id"].as_str().unwrap().to_string();
    let mut live = server.stream_get(&format!("/v1/responses/{id}?stream=true")).await;
    first(&mut live, 6).await;
    let report = server.store.purge(Purge::Tenant("default")).await.unwrap();
    assert_eq!((report.responses, report.response_items), (1, 1));
    mock.wait_cut().await;
    assert_error(&server.get(&format!("/v1/responses/{id}")).await, 404, None, None);
    let db = &server.database;
    assert_eq!(db.count("SELECT COUNT(*) FROM background_runs").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM items").await, 0);
}
