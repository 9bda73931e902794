//! WebSocket mode of /v1/responses: the SSE events as text frames, responses one at a time, the connection-local
//! cache (continuations without store reads, also of `store:false` responses; evicted by a failed continuation),
//! chains across HTTP and the socket, authentication on the upgrade, a client that leaves mid-response, warm-up
//! (`generate:false`), the lifetime limit, an agent loop of many tool calls, and `stream: true` in a frame (as OpenAI's
//! Agents SDK sends it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::db::TestDb;
use common::process::ServerProcess;
use common::sse::Events;
use common::{
    call_arguments, call_start, finish, key, msg, text, usage, Behavior, MockUpstream, Postgres, Sqlite, Step,
    StoreKind, TestApp, DONE,
};
use futures::{SinkExt, StreamExt};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::AuthMode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client socket on `/v1/responses`.
struct Socket(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Socket {
    /// Opens a socket to `server`, with `Authorization: Bearer <key>` when given.
    async fn connect(server: &TestApp, key: Option<&str>) -> Result<Self, tungstenite::Error> {
        Self::connect_to(&server.base, key).await
    }

    /// Opens a socket to the server at `base` (`http://…`).
    async fn connect_to(base: &str, key: Option<&str>) -> Result<Self, tungstenite::Error> {
        let url = format!("{}/v1/responses", base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        if let Some(key) = key {
            request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self(socket))
    }

    async fn open(server: &TestApp) -> Self {
        Self::connect(server, None).await.unwrap()
    }

    async fn send(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.unwrap();
    }

    /// Sends `response.create` with these fields.
    async fn create(&mut self, fields: Value) {
        let mut frame = json!({"type": "response.create"});
        frame.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        self.send(frame).await;
    }

    /// The next frame (at most 10 s away, then fails): its JSON, or `None` when the socket closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.0.next()).await.expect("no frame came");
            match frame {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(text.as_str()).unwrap()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return None,
                other => panic!("unexpected frame: {other:?}"),
            }
        }
    }

    /// The frames up to the end of one response: its terminal event, or an error event that refuses it.
    async fn rest(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await.expect("the socket closed");
            let end = is_refusal(&frame)
                || ["response.completed", "response.incomplete", "response.failed"].contains(&kind(&frame));
            frames.push(frame);
            if end {
                return frames;
            }
        }
    }

    /// Runs one response and returns its frames.
    async fn respond(&mut self, fields: Value) -> Vec<Value> {
        self.create(fields).await;
        self.rest().await
    }

    /// Runs one response that completes and returns the final response.
    async fn completed(&mut self, fields: Value) -> Value {
        let frames = self.respond(fields).await;
        let last = frames.last().unwrap();
        assert_eq!(kind(last), "response.completed", "{frames:?}");
        last["response"].clone()
    }

    /// Runs one response that is refused and returns the error event.
    async fn refused(&mut self, fields: Value) -> Value {
        let frames = self.respond(fields).await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames[0].clone()
    }
}

fn kind(frame: &Value) -> &str {
    frame["type"].as_str().unwrap()
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(kind).collect()
}

/// An `error` event refusing a request (it has a `status`; the error event of a failed stream has none).
fn is_refusal(frame: &Value) -> bool {
    kind(frame) == "error" && frame.get("status").is_some()
}

/// Asserts an error event: `{"type":"error","error":{type,code,message,param},"status":N}`.
fn assert_error_event(frame: &Value, status: u16, code: &str) {
    assert_eq!(kind(frame), "error", "{frame}");
    assert_eq!(frame["status"], status, "{frame}");
    assert_eq!(frame["error"]["code"], code, "{frame}");
    assert_eq!(frame["error"].as_object().unwrap().len(), 4, "{frame}");
    assert!(frame["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
}

fn id(response: &Value) -> String {
    response["id"].as_str().unwrap().to_string()
}

async fn start(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder().store(store).upstream(&mock.url).start().await?;
    Some((mock, server))
}

#[tokio::test]
async fn one_response_sends_the_sse_events_as_text_frames() {
    let (mock, server) = start(Sqlite).await.unwrap();
    let steps = vec![text("Hel"), text("lo"), finish("stop"), usage(5, 2), DONE];
    mock.set(Behavior::Stream(steps));
    let sse = Events::new(
        server
            .client
            .post(format!("{}/v1/responses", server.base))
            .json(&json!({"model": "m", "input": "hi", "stream": true}))
            .send()
            .await
            .unwrap(),
    );
    let mut sse: Vec<Value> =
        sse.rest().await.iter().filter(|f| f.data != "[DONE]").map(common::sse::Frame::json).collect();
    let mut socket = Socket::open(&server).await;
    let mut frames = socket.respond(json!({"model": "m", "input": "hi"})).await;
    assert_eq!(types(&frames), types(&sse));
    for (n, frame) in frames.iter().enumerate() {
        assert_eq!(frame["sequence_number"], n, "{frame}");
    }
    // The same events but for ids and times.
    for events in [&mut sse, &mut frames] {
        for event in events.iter_mut() {
            for key in ["item_id", "item", "response"] {
                event.as_object_mut().unwrap().remove(key);
            }
        }
    }
    assert_eq!(frames, sse);
    let bodies = mock.take();
    assert_eq!(bodies[0], bodies[1]);
    // Stored, and a second response on the same socket numbers its events from 0 again.
    mock.set(Behavior::Answer);
    let next = socket.respond(json!({"model": "m", "input": "again"})).await;
    assert_eq!(next[0]["sequence_number"], 0);
    assert_eq!(next[0]["type"], "response.created");
}

#[rstest]
#[tokio::test]
async fn three_responses_run_one_after_another_and_continue_from_the_socket(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = start(store).await else { return };
    let mut socket = Socket::open(&server).await;
    let first = socket.completed(json!({"model": "m", "input": "one"})).await;
    assert_eq!(first["output"][0]["content"][0]["text"], "answer to one");
    mock.take();
    let reads = server.store.reads();
    let second = socket.completed(json!({"model": "m", "input": "two", "previous_response_id": id(&first)})).await;
    let third = socket.completed(json!({"model": "m", "input": "three", "previous_response_id": id(&second)})).await;
    assert_eq!(server.store.reads(), reads, "continued from the socket's cache");
    let bodies = mock.take();
    assert_eq!(
        bodies[1]["messages"],
        json!([
            msg("user", "one"),
            msg("assistant", "answer to one"),
            msg("user", "two"),
            msg("assistant", "answer to two"),
            msg("user", "three")
        ])
    );
    assert_eq!(third["previous_response_id"], id(&second));
    // Each was stored as a chain: HTTP continues the last one with the whole history.
    let (status, _) = server.get(&format!("/v1/responses/{}", id(&third))).await;
    assert_eq!(status, 200);
    server.turn("four", Some(&id(&third))).await;
    assert_eq!(mock.only_messages().len(), 7);
}

#[rstest]
#[tokio::test]
async fn an_unstored_response_continues_on_its_socket_only(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let mut socket = Socket::open(&server).await;
    let first = socket.completed(json!({"model": "m", "input": "secret", "store": false})).await;
    mock.take();
    let reads = server.store.reads();
    let fields = json!({"model": "m", "input": "more", "previous_response_id": id(&first), "store": false});
    let second = socket.completed(fields).await;
    assert_eq!(server.store.reads(), reads, "no history read from the store");
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "secret"), msg("assistant", "answer to secret"), msg("user", "more")]
    );
    assert_eq!(server.get(&format!("/v1/responses/{}", id(&second))).await.0, 404);
    drop(socket);
    // Another socket does not know it; it stays open, and a new chain recovers.
    let mut other = Socket::open(&server).await;
    let fields = json!({"model": "m", "input": "again", "previous_response_id": id(&second)});
    let refused = other.refused(fields).await;
    assert_error_event(&refused, 400, "previous_response_not_found");
    assert_eq!(refused["error"]["param"], "previous_response_id");
    let fresh = other.completed(json!({"model": "m", "input": [msg("user", "secret"), msg("user", "again")]})).await;
    assert_eq!(fresh["status"], "completed");
    assert_eq!(mock.take().len(), 1);
}

#[rstest]
#[tokio::test]
async fn item_references_resolve_in_the_context_the_socket_kept(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let mut socket = Socket::open(&server).await;
    let first = socket.completed(json!({"model": "m", "input": "secret", "store": false})).await;
    let answer = id(&first["output"][0]);
    mock.take();
    let input = json!([{"type": "item_reference", "id": answer}, msg("user", "again")]);
    let fields = json!({"model": "m", "input": input, "previous_response_id": id(&first), "store": false});
    let second = socket.completed(fields).await;
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("user", "secret"),
            msg("assistant", "answer to secret"),
            msg("assistant", "answer to secret"),
            msg("user", "again")
        ]
    );
    let input = json!([{"type": "item_reference", "id": "msg_nope"}]);
    let fields = json!({"model": "m", "input": input, "previous_response_id": id(&second), "store": false});
    let refused = socket.refused(fields).await;
    let error = json!({"type": "invalid_request_error", "code": null, "message": "Item with id 'msg_nope' not found.",
        "param": "input"});
    assert_eq!(refused, json!({"type": "error", "error": error, "status": 400}));
    assert!(mock.take().is_empty());
}

#[rstest]
#[tokio::test]
async fn a_failed_continuation_evicts_the_response_it_continued(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let mut socket = Socket::open(&server).await;
    let first = socket.completed(json!({"model": "m", "input": "hi", "store": false})).await;
    let unmatched = json!([{"type": "function_call_output", "call_id": "call_nobody", "output": "42"}]);
    let fields = json!({"model": "m", "input": unmatched, "previous_response_id": id(&first), "store": false});
    let refused = socket.refused(fields).await;
    assert_error_event(&refused, 400, "invalid_value");
    let again = json!({"model": "m", "input": "hi again", "previous_response_id": id(&first)});
    assert_error_event(&socket.refused(again).await, 400, "previous_response_not_found");
    // An upstream failure evicts too.
    let second = socket.completed(json!({"model": "m", "input": "fresh", "store": false})).await;
    mock.fail_once(500, json!({"error": {"message": "boom"}}));
    let fields = json!({"model": "m", "input": "next", "previous_response_id": id(&second), "store": false});
    assert_eq!(kind(&socket.refused(fields).await), "error");
    let again = json!({"model": "m", "input": "next", "previous_response_id": id(&second)});
    assert_error_event(&socket.refused(again).await, 400, "previous_response_not_found");
}

#[rstest]
#[tokio::test]
async fn a_stored_chain_continues_across_http_and_the_socket(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let over_http = server.turn("one", None).await;
    let mut socket = Socket::open(&server).await;
    let reads = server.store.reads();
    let on_socket = socket.completed(json!({"model": "m", "input": "two", "previous_response_id": over_http})).await;
    assert!(server.store.reads() > reads, "a stored id not on the socket is read from the store");
    let reads = server.store.reads();
    let again = json!({"model": "m", "input": "three", "previous_response_id": id(&on_socket)});
    let on_socket = socket.completed(again).await;
    assert_eq!(server.store.reads(), reads);
    server.turn("four", Some(&id(&on_socket))).await;
    let bodies = mock.take();
    assert_eq!(bodies.len(), 4);
    assert_eq!(
        bodies[3]["messages"],
        json!([
            msg("user", "one"),
            msg("assistant", "answer to one"),
            msg("user", "two"),
            msg("assistant", "answer to two"),
            msg("user", "three"),
            msg("assistant", "answer to three"),
            msg("user", "four")
        ])
    );
}

#[rstest]
#[tokio::test]
async fn the_upgrade_is_authenticated_and_tenants_stay_apart(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(move |config| {
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
        })
        .start()
        .await;
    let Some(server) = server else { return };
    for wrong in [None, Some("sk-eve")] {
        match Socket::connect(&server, wrong).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401);
                let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["error"]["code"], "invalid_api_key");
            }
            other => panic!("upgraded without a right key: {:?}", other.map(|_| ())),
        }
    }
    let mut alice = Socket::connect(&server, Some("sk-alice")).await.unwrap();
    let mine = alice.completed(json!({"model": "m", "input": "mine"})).await;
    // Bob's socket finds alice's stored response as it finds an unknown one.
    let mut bob = Socket::connect(&server, Some("sk-bob")).await.unwrap();
    let others = bob.refused(json!({"model": "m", "input": "x", "previous_response_id": id(&mine)})).await;
    let unknown = threadline::model::new_id("resp");
    let unknowns = bob.refused(json!({"model": "m", "input": "x", "previous_response_id": unknown})).await;
    assert_error_event(&others, 400, "previous_response_not_found");
    assert_eq!(
        others["error"]["message"].as_str().unwrap().replace(&id(&mine), &unknown),
        unknowns["error"]["message"]
    );
    // A plain GET without upgrade headers lists the caller's stored responses.
    let plain = server.client.get(format!("{}/v1/responses", server.base)).bearer_auth("sk-bob").send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let listed: Value = plain.json().await.unwrap();
    assert_eq!(listed, json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}));
}

#[tokio::test]
async fn frames_that_are_not_a_create_get_error_events_and_the_socket_stays_open() {
    let (_mock, server) = start(Sqlite).await.unwrap();
    let mut socket = Socket::open(&server).await;
    socket.0.send(Message::text("not json")).await.unwrap();
    assert_error_event(&socket.next().await.unwrap(), 400, "invalid_json");
    socket.0.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_error_event(&socket.next().await.unwrap(), 400, "invalid_json");
    socket.send(json!({"type": "response.cancel"})).await;
    assert_error_event(&socket.next().await.unwrap(), 400, "invalid_value");
    for (key, value) in [("stream", false), ("background", true)] {
        let refused = socket.refused(json!({"model": "m", "input": "x", key: value})).await;
        assert_error_event(&refused, 400, "unsupported_parameter");
        assert_eq!(refused["error"]["param"], key);
    }
    // Validation errors are those of POST /v1/responses.
    let refused = socket.refused(json!({"input": "x"})).await;
    assert_error_event(&refused, 400, "missing_required_parameter");
    assert_eq!(refused["error"]["param"], "model");
    let refused = socket.refused(json!({"model": "m", "input": "x", "temperature": 7})).await;
    assert_eq!(refused["status"], 400);
    assert_eq!(socket.completed(json!({"model": "m", "input": "x"})).await["status"], "completed");
}

/// OpenAI's Agents SDK sends `"stream": true` in every `response.create`: it runs as a frame without it does.
#[tokio::test]
async fn stream_true_runs_as_if_absent_and_stream_false_is_refused() {
    let (mock, server) = start(Sqlite).await.unwrap();
    let mut socket = Socket::open(&server).await;
    let mut runs = Vec::new();
    for fields in [json!({"model": "m", "input": "hi", "stream": true}), json!({"model": "m", "input": "hi"})] {
        mock.set(Behavior::Stream(vec![text("Hel"), text("lo"), finish("stop"), usage(5, 2), DONE]));
        let frames = socket.respond(fields).await;
        assert_eq!(types(&frames), common::sse::TEXT_SEQUENCE, "{frames:?}");
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!(frame["sequence_number"], n, "{frame}");
        }
        let completed = &frames[9]["response"];
        assert_eq!(completed["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(server.get(&format!("/v1/responses/{}", id(completed))).await.1, *completed);
        runs.push(frames);
    }
    // The same events but for ids and times, and the same request upstream.
    for frames in &mut runs {
        for frame in frames.iter_mut() {
            for key in ["item_id", "item", "response"] {
                frame.as_object_mut().unwrap().remove(key);
            }
        }
    }
    assert_eq!(runs[0], runs[1]);
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0]["messages"], json!([msg("user", "hi")]));
    // `stream_options` comes with it as over POST.
    let fields = json!({"model": "m", "input": "x", "stream": true, "stream_options": {"include_obfuscation": false}});
    assert_eq!(socket.completed(fields).await["status"], "completed");
    // Anything else is refused, and the socket stays open.
    let refused = socket.refused(json!({"model": "m", "input": "hi", "stream": false})).await;
    let error = json!({"type": "invalid_request_error", "code": "unsupported_parameter", "param": "stream",
        "message": "Unsupported parameter: 'stream' is not allowed in WebSocket mode (every response is streamed)."});
    assert_eq!(refused, json!({"type": "error", "error": error, "status": 400}));
    let refused = socket.refused(json!({"model": "m", "input": "hi", "stream": "yes"})).await;
    assert_eq!(refused, json!({"type": "error", "error": error, "status": 400}));
    mock.take();
    assert_eq!(socket.completed(json!({"model": "m", "input": "x"})).await["status"], "completed");
    assert_eq!(mock.take().len(), 1, "refused frames never went upstream");
}

#[tokio::test]
async fn a_create_while_one_runs_gets_an_error_and_the_first_completes() {
    let (mock, server) = start(Sqlite).await.unwrap();
    mock.set(Behavior::Stream(vec![text("a"), Step::Gate, text("b"), finish("stop"), DONE]));
    let mut socket = Socket::open(&server).await;
    socket.create(json!({"model": "m", "input": "first"})).await;
    let mut frames = Vec::new();
    while frames.last().is_none_or(|frame: &Value| kind(frame) != "response.output_text.delta") {
        frames.push(socket.next().await.unwrap());
    }
    socket.create(json!({"model": "m", "input": "second"})).await;
    let refused = socket.next().await.unwrap();
    assert_error_event(&refused, 400, "response_already_in_progress");
    mock.release();
    frames.extend(socket.rest().await);
    let completed = &frames.last().unwrap()["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], "ab");
    for (n, frame) in frames.iter().enumerate() {
        assert_eq!(frame["sequence_number"], n, "{frame}");
    }
    assert_eq!(mock.take().len(), 1, "the second create never went upstream");
}

#[rstest]
#[tokio::test]
async fn a_client_that_leaves_mid_response_still_gets_it_stored(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    mock.set(Behavior::Stream(vec![text("half"), Step::Gate, text(" whole"), finish("stop"), DONE]));
    let mut socket = Socket::open(&server).await;
    socket.create(json!({"model": "m", "input": "go"})).await;
    while kind(&socket.next().await.unwrap()) != "response.output_text.delta" {}
    drop(socket);
    mock.release();
    let saved = server.next_saved().await;
    let (status, stored) = server.get(&format!("/v1/responses/{saved}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["output"][0]["content"][0]["text"], "half whole");
}

#[rstest]
#[tokio::test]
async fn a_warm_up_resolves_the_context_without_calling_the_model(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = start(store).await else { return };
    let earlier = server.turn("earlier", None).await;
    mock.take();
    let mut socket = Socket::open(&server).await;
    let fields = json!({"model": "m", "input": "hello", "previous_response_id": earlier, "generate": false});
    let frames = socket.respond(fields).await;
    assert_eq!(types(&frames), ["response.created", "response.in_progress", "response.completed"]);
    let warm = &frames[2]["response"];
    assert_eq!((&warm["status"], &warm["output"]), (&json!("completed"), &json!([])));
    assert!(mock.take().is_empty(), "the model was not called");
    assert_eq!(&server.get(&format!("/v1/responses/{}", id(warm))).await.1, warm);
    let reads = server.store.reads();
    socket.completed(json!({"model": "m", "input": "next", "previous_response_id": id(warm)})).await;
    assert_eq!(server.store.reads(), reads);
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "earlier"), msg("assistant", "answer to earlier"), msg("user", "hello"), msg("user", "next")]
    );
    let refused = socket.refused(json!({"model": "m", "input": "x", "generate": "no"})).await;
    assert_error_event(&refused, 400, "invalid_type");
}

#[tokio::test]
async fn the_socket_closes_at_its_lifetime_limit() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.limits.websocket_lifetime = Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let mut socket = Socket::open(&server).await;
    assert_eq!(socket.completed(json!({"model": "m", "input": "x"})).await["status"], "completed");
    let closing = socket.next().await.unwrap();
    assert_error_event(&closing, 400, "websocket_connection_limit_reached");
    assert_eq!(socket.next().await, None);
}

#[rstest]
#[tokio::test]
async fn an_agent_loop_of_tool_calls_runs_on_one_socket_without_store_reads(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, server)) = start(store).await else { return };
    let mut socket = Socket::open(&server).await;
    let tool = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]);
    let call = |n: usize| {
        Behavior::Stream(vec![
            call_start(0, &format!("call_{n}"), "lookup"),
            call_arguments(0, &format!("{{\"n\":{n}}}")),
            finish("tool_calls"),
            DONE,
        ])
    };
    mock.set(call(0));
    let mut previous = socket.completed(json!({"model": "m", "input": "start", "tools": tool})).await;
    let reads = server.store.reads();
    for n in 1..=25 {
        assert_eq!(previous["output"][0]["call_id"], format!("call_{}", n - 1));
        match n {
            25 => mock.set(Behavior::Answer),
            _ => mock.set(call(n)),
        }
        let output = json!([{"type": "function_call_output", "call_id": format!("call_{}", n - 1), "output": "ok"}]);
        let fields = json!({"model": "m", "input": output, "tools": tool, "previous_response_id": id(&previous)});
        previous = socket.completed(fields).await;
    }
    assert_eq!(server.store.reads(), reads, "the loop read no history from the store");
    let bodies = mock.take();
    assert_eq!(bodies.len(), 26);
    for (n, body) in bodies.iter().enumerate() {
        let messages = body["messages"].as_array().unwrap();
        // The first message, then per earlier turn the call and its output.
        assert_eq!(messages.len(), 1 + 2 * n, "turn {n}");
        assert_eq!(messages[0], msg("user", "start"));
        for k in 0..n {
            assert_eq!(messages[1 + 2 * k]["tool_calls"][0]["id"], format!("call_{k}"), "turn {n}");
            assert_eq!(messages[2 + 2 * k]["tool_call_id"], format!("call_{k}"), "turn {n}");
        }
    }
    assert_eq!(previous["output"][0]["type"], "message");
}

#[tokio::test]
async fn the_socket_fits_a_kept_context_into_the_window_as_a_stored_chain_is() {
    let mock = MockUpstream::start().await;
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "context_length": 1000}]));
    let server = TestApp::builder().upstream(&mock.url).start().await.unwrap();
    let mut socket = Socket::open(&server).await;
    let words = common::words;
    // The same three turns over HTTP (stored) and on the socket (kept only): the last one is cut to fit the window.
    let mut sent = Vec::new();
    for on_socket in [false, true] {
        // The socket streams from the upstream: the same call, as a stream.
        mock.set(match on_socket {
            false => common::calls(&[("call_1", "lookup", "{}")]),
            true => Behavior::Stream(vec![
                call_start(0, "call_1", "lookup"),
                call_arguments(0, "{}"),
                finish("tool_calls"),
                DONE,
            ]),
        });
        let first = json!({"model": "m", "input": words(200), "store": !on_socket});
        let output = json!([{"type": "function_call_output", "call_id": "call_1", "output": words(150)}]);
        let second = |previous: &str| json!({"model": "m", "input": output, "previous_response_id": previous});
        let third = |previous: &str| {
            json!({"model": "m", "input": format!("c {}", words(300)), "previous_response_id": previous,
                "truncation": "auto"})
        };
        let last = match on_socket {
            false => {
                let r1 = id(&server.create(first).await);
                let r2 = id(&server.create(second(&r1)).await);
                server.create(third(&r2)).await
            }
            true => {
                let r1 = id(&socket.completed(first).await);
                mock.set(Behavior::Answer);
                let r2 = id(&socket.completed(second(&r1)).await);
                socket.completed(third(&r2)).await
            }
        };
        assert_eq!(last["status"], "completed");
        sent.push(mock.take().pop().unwrap()["messages"].clone());
    }
    assert_eq!(sent[0], sent[1]);
    assert_eq!(sent[1], json!([msg("user", &format!("c {}", common::words(300)))]));
}

#[tokio::test]
async fn open_sockets_are_counted_pings_answered_and_the_upgrade_and_each_response_limited() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.limits.requests_per_minute_per_tenant = 1)
        .start()
        .await
        .unwrap();
    let mut socket = Socket::open(&server).await;
    let metrics = server.client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let open: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("threadline_active_websockets "))
        .expect("the gauge is exported")
        .parse()
        .unwrap();
    assert!(open >= 1.0, "{open}");
    socket.0.send(Message::Ping(b"still there?".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), socket.0.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"still there?".to_vec().into()));
    match Socket::connect(&server, None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a second upgrade in the minute was not limited: {:?}", other.map(|_| ())),
    }
    // Each response counts as a request: the minute's one went to the upgrade.
    let refused = socket.refused(json!({"model": "m", "input": "x"})).await;
    assert_error_event(&refused, 429, "rate_limit_exceeded");
    assert!(mock.take().is_empty());
    socket.0.close(None).await.unwrap();
    assert_eq!(socket.next().await, None);
}

#[tokio::test]
async fn a_stopping_server_finishes_the_response_in_flight_then_closes_its_sockets() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("before"), Step::Gate, text(" after"), finish("stop"), DONE]));
    let db = TestDb::create(Sqlite).await.unwrap();
    let mut server = ServerProcess::start(&["--upstream-url", &mock.url, "--database-url", db.url()], &[]).await;
    let mut busy = Socket::connect_to(&server.base, None).await.unwrap();
    let mut idle = Socket::connect_to(&server.base, None).await.unwrap();
    busy.create(json!({"model": "m", "input": "go"})).await;
    while kind(&busy.next().await.unwrap()) != "response.output_text.delta" {}
    server.terminate();
    // An idle socket is closed at once, as going away.
    let closing = tokio::time::timeout(Duration::from_secs(10), idle.0.next()).await.unwrap().unwrap().unwrap();
    let Message::Close(Some(frame)) = closing else { panic!("not a close frame: {closing:?}") };
    assert_eq!(frame.code, CloseCode::Away);
    // The response in flight ends and reaches its client before its socket closes.
    mock.release();
    let rest = busy.rest().await;
    assert_eq!(rest.last().unwrap()["response"]["output"][0]["content"][0]["text"], "before after");
    assert_eq!(busy.next().await, None);
    let (status, _) = server.wait_exit().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_response_on_a_socket_is_a_request_in_progress_of_its_tenant() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.limits.max_concurrent_requests_per_tenant = 1)
        .start()
        .await
        .unwrap();
    mock.set(Behavior::Stream(vec![text("a"), Step::Gate, text("b"), finish("stop"), DONE]));
    let mut socket = Socket::open(&server).await;
    socket.create(json!({"model": "m", "input": "first"})).await;
    while kind(&socket.next().await.unwrap()) != "response.output_text.delta" {}
    let (status, body) = server.post("/v1/responses", json!({"model": "m", "input": "x"})).await;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("rate_limit_exceeded")), "{body}");
    mock.release();
    assert_eq!(kind(socket.rest().await.last().unwrap()), "response.completed");
    // Ended, it gives its place back; an idle socket holds none.
    mock.set(Behavior::Answer);
    assert_eq!(server.post("/v1/responses", json!({"model": "m", "input": "x"})).await.0, 200);
}

#[tokio::test]
async fn a_frame_larger_than_a_request_body_may_be_ends_the_socket() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.limits.max_body_bytes = 4096)
        .start()
        .await
        .unwrap();
    let mut socket = Socket::open(&server).await;
    assert_eq!(socket.completed(json!({"model": "m", "input": "small"})).await["status"], "completed");
    socket.create(json!({"model": "m", "input": common::words(2000)})).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), socket.0.next()).await.unwrap();
    assert!(!matches!(ended, Some(Ok(Message::Text(_)))), "{ended:?}");
    assert_eq!(mock.take().len(), 1, "the large frame never went upstream");
}

#[tokio::test]
async fn a_compacted_window_goes_back_over_the_socket_and_its_continuation_keeps_it() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder().upstream(&mock.url).start().await.unwrap();
    let r1 = id(&server.create(json!({"model": "m", "input": "u1"})).await);
    let r2 = id(&server.create(json!({"model": "m", "input": "u2", "previous_response_id": r1})).await);
    let (status, compacted) =
        server.post("/v1/responses/compact", json!({"model": "m", "previous_response_id": r2})).await;
    assert_eq!(status, 200, "{compacted}");
    assert_eq!(common::mock::summarizations(&mock.take()), 1);
    // The window, then a new message, as the input of an unstored response on a socket; then a turn continuing it.
    let mut input = compacted["output"].as_array().unwrap().clone();
    input.push(msg("user", "u3"));
    let mut socket = Socket::open(&server).await;
    let r3 = id(&socket.completed(json!({"model": "m", "input": input, "store": false})).await);
    let window = vec![msg("user", "u1"), msg("user", "u2"), common::mock::summary("the story so far")];
    let mut expected = window.clone();
    expected.push(msg("user", "u3"));
    assert_eq!(mock.only_messages(), expected);
    socket.completed(json!({"model": "m", "input": "u4", "previous_response_id": r3, "store": false})).await;
    expected.extend([msg("assistant", "answer to u3"), msg("user", "u4")]);
    assert_eq!(mock.only_messages(), expected);
}
