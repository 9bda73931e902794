//! Slow, silent and idle connections, from raw sockets: headers late past `limits.header_read_timeout` and
//! connections idle past `limits.idle_timeout` are closed unanswered; a body late past `limits.body_read_timeout`
//! gets a 408 and never holds its tenant's place among the requests in progress; a stream, an answer its client is
//! slow to read and a WebSocket outlive all three; and past `limits.max_connections` a new connection waits until one
//! closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{finish, text, usage, Behavior, MockUpstream, Step, TestApp, DONE};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use threadline::config::Config;
use threadline::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const HEADER: Duration = Duration::from_secs(1);
const BODY: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(4);
/// How much earlier than its deadline a close may be seen (an idle deadline starts before the client has read the
/// answer that started it).
const EARLY: Duration = Duration::from_millis(250);
/// How much later than its deadline a close may come on a busy machine.
const LATE: Duration = Duration::from_secs(5);
/// How long a trickling client waits between two bytes.
const TRICKLE: Duration = Duration::from_millis(100);

/// The short deadlines of these tests.
fn deadlines(config: &mut Config) {
    config.limits.header_read_timeout = HEADER;
    config.limits.body_read_timeout = BODY;
    config.limits.idle_timeout = IDLE;
}

async fn start(change: impl FnOnce(&mut Config) + 'static) -> TestApp {
    TestApp::builder().upstream("echo").config(deadlines).config(change).start().await.unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Asserts that `elapsed` is `deadline`, give or take what the machine may add.
fn assert_about(elapsed: Duration, deadline: Duration) {
    assert!(elapsed + EARLY >= deadline && elapsed <= deadline + LATE, "{elapsed:?}, not about {deadline:?}");
}

/// Reads until the server closes the connection (a reset counts), and returns what it wrote.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut read = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let got = tokio::time::timeout(LATE * 4, stream.read(&mut buffer)).await;
        match got.expect("the server did not close the connection") {
            Ok(0) | Err(_) => return read,
            Ok(n) => read.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Writes `bytes` one at a time, `TRICKLE` apart (each write in time, the whole never), while reading; returns what
/// the server wrote once it has closed the connection.
async fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    let (mut reader, mut writer) = stream.split();
    let mut read = Vec::new();
    let mut buffer = [0; 4096];
    let mut left = bytes.iter();
    let mut ticks = tokio::time::interval(TRICKLE);
    loop {
        tokio::select! {
            got = tokio::time::timeout(LATE * 4, reader.read(&mut buffer)) => {
                match got.expect("the server did not close the connection") {
                    Ok(0) | Err(_) => return read,
                    Ok(n) => read.extend_from_slice(&buffer[..n]),
                }
            }
            _ = ticks.tick(), if read.is_empty() => {
                if let Some(byte) = left.next() {
                    let _ = writer.write_all(&[*byte]).await;
                }
            }
        }
    }
}

/// Reads one answer with a `content-length`: its status, head and body.
async fn answer(stream: &mut TcpStream) -> (u16, String, String) {
    answer_from(stream, Vec::new()).await
}

/// Reads the rest of an answer whose first bytes have been `read`.
async fn answer_from(stream: &mut TcpStream, mut read: Vec<u8>) -> (u16, String, String) {
    let mut buffer = [0; 4096];
    loop {
        if let Some(end) = read.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8(read[..end].to_vec()).unwrap();
            let length = head.lines().find_map(|line| line.strip_prefix("content-length: ")).unwrap();
            if read.len() >= end + 4 + length.parse::<usize>().unwrap() {
                let body = String::from_utf8(read[end + 4..].to_vec()).unwrap();
                return (head[9..12].parse().unwrap(), head, body);
            }
        }
        let n = tokio::time::timeout(LATE, stream.read(&mut buffer)).await.expect("no answer").unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buffer[..n]);
    }
}

/// Sends `GET /healthz` and asserts its answer.
async fn healthz(stream: &mut TcpStream) {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (status, _, body) = answer(stream).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
}

/// Creates a response on a connection of its own, and returns its status and text.
async fn create(app: &TestApp, input: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/responses", app.base))
        .json(&json!({"model": "m", "input": input}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["output"][0]["content"][0]["text"].clone())
}

#[tokio::test]
async fn a_connection_whose_headers_trickle_in_is_closed_at_the_header_deadline_unanswered() {
    let app = start(|_| {}).await;
    let mut stream = connect(&app).await;
    let opened = Instant::now();
    stream.write_all(b"GET /v1/models HTTP/1.1\r\n").await.unwrap();
    // Each byte of the rest comes in time, the headers as a whole not.
    let read = trickle(&mut stream, format!("host: x\r\nx-slow: {}\r\n\r\n", "a".repeat(60)).as_bytes()).await;
    assert_eq!(String::from_utf8_lossy(&read), "");
    assert_about(opened.elapsed(), HEADER);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
    let app = start(|_| {}).await;
    let mut stream = connect(&app).await;
    let opened = Instant::now();
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut stream).await), "");
    assert_about(opened.elapsed(), HEADER);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle_and_its_next_headers_have_their_own_deadline() {
    let app = start(|_| {}).await;
    let mut stream = connect(&app).await;
    healthz(&mut stream).await;
    healthz(&mut stream).await;
    let answered = Instant::now();
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut stream).await), "");
    assert_about(answered.elapsed(), IDLE);

    // The next request's first bytes start the header deadline, which is sooner.
    let mut stream = connect(&app).await;
    healthz(&mut stream).await;
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nho").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut stream).await), "");
    let elapsed = started.elapsed();
    assert!(elapsed >= HEADER && elapsed < IDLE, "{elapsed:?}");
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_a_408_and_never_holds_the_tenants_place() {
    let app = start(|config| config.limits.max_concurrent_requests_per_tenant = 1).await;
    let body = br#"{"model": "m", "input": "a body that trickles in, one byte at a time"}"#;
    let mut slow = connect(&app).await;
    let head = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         expect: 100-continue\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let sent = Instant::now();
    // The server reads the body: the request is in progress.
    let mut continued = [0; 25];
    slow.read_exact(&mut continued).await.unwrap();
    assert_eq!(&continued, b"HTTP/1.1 100 Continue\r\n\r\n");
    let trickled = tokio::spawn(async move { (trickle(&mut slow, body).await, sent.elapsed()) });

    // Meanwhile the tenant's one place is free for a client that sends its body whole.
    assert_eq!(create(&app, "meanwhile").await, (200, json!("echo: meanwhile [turn 1, 1 messages in context]")));
    assert!(!trickled.is_finished(), "the trickling body was not in progress all along");

    let (read, elapsed) = trickled.await.unwrap();
    let read = String::from_utf8(read).unwrap();
    let (head, answer) = read.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let expected = json!({"error": {
        "message": "The request body did not arrive within 2s. Please send it whole, without pauses, and try again.",
        "type": "invalid_request_error", "param": null, "code": "request_timeout"}});
    assert_eq!(serde_json::from_str::<Value>(answer).unwrap(), expected);
    assert_about(elapsed, BODY);
    assert_eq!(create(&app, "after").await, (200, json!("echo: after [turn 1, 1 messages in context]")));
}

#[tokio::test]
async fn a_stream_and_a_websocket_outlive_every_deadline() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, text(" second"), finish("stop"), usage(3, 2), DONE]));
    let gated = |config: &mut Config| config.upstreams[0].models = vec!["gated".into()];
    let app = TestApp::builder().upstream(&mock.url).upstream("echo").config(deadlines).config(gated);
    let app = app.start().await.unwrap();
    let mut stream = app.stream("/v1/responses", json!({"model": "gated", "input": "q", "stream": true})).await;
    while stream.next_json().await["type"] != "response.output_text.delta" {}
    let url = format!("{}/v1/responses", app.base.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut respond = async |input: &str| {
        let create = json!({"type": "response.create", "model": "m", "input": input});
        socket.send(Message::text(create.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(LATE, socket.next()).await.expect("no frame").unwrap().unwrap();
            let frame: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if ["response.completed", "response.failed", "error"].contains(&frame["type"].as_str().unwrap()) {
                return frame;
            }
        }
    };
    assert_eq!(respond("one").await["type"], "response.completed");

    // While a connection stays idle until it is closed, longer than every deadline, both stay open.
    let mut idle = connect(&app).await;
    healthz(&mut idle).await;
    let answered = Instant::now();
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut idle).await), "");
    assert_about(answered.elapsed(), IDLE);
    mock.release();
    let events = stream.rest_json().await;
    let completed = events.iter().find(|event| event["type"] == "response.completed").unwrap();
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "first second");
    let frame = respond("two").await;
    assert_eq!(frame["type"], "response.completed", "{frame}");
    assert_eq!(frame["response"]["output"][0]["content"][0]["text"], "echo: two [turn 1, 1 messages in context]");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let app = TestApp::builder().upstream("echo").config(|c| c.limits.max_connections = 2).start().await.unwrap();
    let mut first = connect(&app).await;
    healthz(&mut first).await;
    let mut second = connect(&app).await;
    healthz(&mut second).await;
    // The kernel completes the third's handshake; the server does not accept it.
    let mut third = connect(&app).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    healthz(&mut first).await;
    healthz(&mut second).await;
    let mut byte = [0; 1];
    let unanswered = third.try_read(&mut byte);
    assert!(unanswered.as_ref().is_err_and(|err| err.kind() == std::io::ErrorKind::WouldBlock), "{unanswered:?}");
    drop(second);
    let (status, _, body) = answer(&mut third).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    healthz(&mut first).await;
}

#[tokio::test]
async fn an_answer_the_client_is_slow_to_read_is_not_idle() {
    let app = start(|_| {}).await;
    // A stored turn with 10 MB of input, written straight to the store.
    let first = app.turn("hi", None).await;
    let (mut response, pieces) = app.store.response("default", &first).await.unwrap().unwrap();
    response.id = threadline::model::new_id("resp");
    let text = "a".repeat(1 << 20);
    common::save(&*app.store, "default", &response, &vec![common::user_item(&text); 10], &pieces).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive window: most of the answer waits in the server until the client reads it.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(app.base.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let request = format!("GET /v1/responses/{}/input_items HTTP/1.1\r\nhost: x\r\n\r\n", response.id);
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0; 17];
    slow.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");

    // While a connection stays idle until it is closed, the answer waits, unread, and its connection stays open.
    let mut idle = connect(&app).await;
    healthz(&mut idle).await;
    let answered = Instant::now();
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut idle).await), "");
    assert_about(answered.elapsed(), IDLE);
    let (status, _, body) = answer_from(&mut slow, first.to_vec()).await;
    let items = serde_json::from_str::<Value>(&body).unwrap()["data"].as_array().unwrap().clone();
    let texts: Vec<&Value> = items.iter().map(|item| &item["content"][0]["text"]).collect();
    assert!(status == 200 && texts == vec![&json!(text); 10], "{status}: {} bytes", body.len());
    healthz(&mut slow).await;
}

#[tokio::test]
async fn bodies_arriving_together_take_at_most_the_buffered_bytes_and_wait_for_room() {
    let app = start(|config| {
        config.limits.max_body_bytes = 1000;
        config.limits.max_buffered_body_bytes = 1000;
    })
    .await;
    // One body stalls after 800 of its 900 bytes, holding their room until its deadline.
    let mut stalled = connect(&app).await;
    let head =
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900\r\n\r\n";
    stalled.write_all(format!("{head}{}", " ".repeat(800)).as_bytes()).await.unwrap();
    let stalled_at = Instant::now();
    // A whole body of 300 bytes finds only 200 free: it is answered once the stalled one has had its 408.
    let input = "x".repeat(300 - r#"{"model":"m","input":""}"#.len());
    let body = json!({"model": "m", "input": input}).to_string();
    assert_eq!(body.len(), 300);
    let whole = tokio::spawn({
        let app_url = app.base.clone();
        async move {
            let client = reqwest::Client::new();
            let answer = client.post(format!("{app_url}/v1/responses")).body(body).send().await.unwrap();
            (answer.status().as_u16(), Instant::now())
        }
    });
    let read = String::from_utf8(until_closed(&mut stalled).await).unwrap();
    assert!(read.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{read}");
    let (status, answered) = whole.await.unwrap();
    assert_eq!(status, 200);
    // Not at once, but when the stalled body's deadline freed its room.
    assert_about(answered.duration_since(stalled_at), BODY);
}
