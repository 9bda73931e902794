//! Requests refused before any handler runs — by hyper (414, 431, 400) or by the router (404, 405, 413) — answer
//! with OpenAI's envelope like every other error. hyper's own answers are provoked with raw TCP writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `request` on a new connection and reads the answer until the server closes it: status and JSON body.
async fn raw(app: &TestApp, request: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    // The server may answer (and close) before the whole request is written.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap())
}

fn envelope(message: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
}

#[tokio::test]
async fn a_url_over_64_kib_gets_414_with_the_envelope() {
    let app = TestApp::start("echo").await;
    let request = format!("GET /v1/responses/{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100 * 1024));
    let expected = envelope("The request URL is longer than this server accepts.", Some("request_uri_too_long"));
    assert_eq!(raw(&app, request.as_bytes()).await, (414, expected));
}

#[tokio::test]
async fn oversized_headers_get_431_with_the_envelope() {
    let app = TestApp::start("echo").await;
    let expected =
        envelope("The request's headers are larger than this server accepts.", Some("request_headers_too_large"));
    let big = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(1024 * 1024));
    assert_eq!(raw(&app, big.as_bytes()).await, (431, expected.clone()));
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    assert_eq!(raw(&app, many.as_bytes()).await, (431, expected));
}

#[tokio::test]
async fn unparsable_http_gets_400_with_the_envelope() {
    let app = TestApp::start("echo").await;
    let expected = envelope("The request could not be parsed as HTTP.", Some("invalid_request"));
    assert_eq!(raw(&app, b"GET / HTTP/1.1\r\nbad header line\r\n\r\n").await, (400, expected));
}

#[tokio::test]
async fn router_rejections_carry_the_envelope() {
    let app = TestApp::builder().upstream("echo").config(|c| c.limits.max_body_bytes = 1024).start().await.unwrap();
    assert_eq!(app.get("/nowhere").await, (404, envelope("Invalid URL (GET /nowhere)", None)));
    assert_eq!(app.delete("/v1/models").await, (405, envelope("Method not allowed (DELETE /v1/models)", None)));
    let expected = envelope("The request body is larger than this server accepts.", Some("request_too_large"));
    assert_eq!(app.post_raw("/v1/responses", vec![b' '; 4096]).await, (413, expected.clone()));
    // Over raw TCP, with a body of another content type and sent with its length announced.
    let body = "x".repeat(4096);
    let request =
        format!("POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n{body}");
    assert_eq!(raw(&app, request.as_bytes()).await, (413, expected));
}

#[tokio::test]
async fn json_nested_10_000_levels_deep_is_a_400_not_a_stack_overflow() {
    let app = TestApp::start("echo").await;
    let deep = format!("{{\"model\":\"m\",\"input\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let message = "We could not parse the JSON body of your request (recursion limit exceeded at line 1 column 148). \
                   The API expects a JSON payload.";
    let expected = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    assert_eq!(app.post_raw("/v1/responses", deep).await, (400, expected));
}
