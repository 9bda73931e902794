//! Per-tenant limits: requests in progress and requests per minute (429 `rate_limit_exceeded` with `retry-after`,
//! counted in `threadline_rejected_requests_total`), with health, readiness and metrics exempt; and the request
//! timeout (a 504, a stream that has started not cut, the turn still stored).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{finish, text, usage, Behavior, MockUpstream, Step, TestApp, DONE};
use serde_json::{json, Value};

/// The rejection counters are the process's: the tests that compare them run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `threadline_rejected_requests_total{reason}` now.
async fn rejected(app: &TestApp, reason: &str) -> f64 {
    let (status, text) = get_text(app, "/metrics").await;
    assert_eq!(status, 200);
    let series = format!("threadline_rejected_requests_total{{reason=\"{reason}\"}} ");
    let line = text.lines().find(|line| line.starts_with(&series)).unwrap_or_else(|| panic!("no {series}in {text}"));
    line[series.len()..].parse().unwrap()
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts a body and returns the status, the `retry-after` header and the JSON body.
async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let response = app.client.post(format!("{}{path}", app.base)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_string());
    (status, retry_after, response.json().await.unwrap())
}

fn rate_error(message: &str) -> Value {
    json!({"error": {"message": message, "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
}

/// A streamed answer that waits for the test after its first delta.
fn gated_stream() -> Behavior {
    Behavior::Stream(vec![text("partial"), Step::Gate, finish("stop"), usage(11, 3), DONE])
}

#[tokio::test]
async fn requests_in_progress_are_limited_and_a_stream_counts_until_it_ends() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    mock.set(gated_stream());
    let limit = |c: &mut threadline::config::Config| c.limits.max_concurrent_requests_per_tenant = 1;
    let app = TestApp::builder().upstream(&mock.url).config(limit).start().await.unwrap();
    let before = rejected(&app, "concurrency").await;

    let mut stream = app.stream("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})).await;
    while stream.next_json().await["type"] != "response.output_text.delta" {}
    let refused = rate_error(
        "Too many concurrent requests: limit 1 in progress. Please try again once one of them has finished.",
    );
    let got = post(&app, "/v1/responses", json!({"model": "m", "input": "more"})).await;
    assert_eq!(got, (429, Some("1".to_string()), refused.clone()));
    let got = post(&app, "/api/v1/chat", json!({"model": "m", "input": "more"})).await;
    assert_eq!(got, (429, Some("1".to_string()), refused.clone()));
    assert_eq!(app.get("/v1/responses/resp_0").await, (429, refused));
    // Health, readiness and metrics are never limited.
    assert_eq!(get_text(&app, "/healthz").await.0, 200);
    assert_eq!(get_text(&app, "/readyz").await.0, 200);
    assert_eq!(rejected(&app, "concurrency").await - before, 3.0);

    // The slot is free as soon as the stream has ended.
    mock.release();
    let events = stream.rest_json().await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    mock.set(Behavior::Answer);
    assert_eq!(app.create(json!({"model": "m", "input": "again"})).await["status"], "completed");
    assert_eq!(app.create(json!({"model": "m", "input": "and again"})).await["status"], "completed");
}

#[tokio::test]
async fn requests_per_minute_are_limited_with_retry_after() {
    let _serial = SERIAL.lock().await;
    let limit = |c: &mut threadline::config::Config| c.limits.requests_per_minute_per_tenant = 2;
    let app = TestApp::builder().upstream("echo").config(limit).start().await.unwrap();
    let before = rejected(&app, "rate").await;
    for input in ["one", "two"] {
        assert_eq!(app.create(json!({"model": "echo", "input": input})).await["status"], "completed");
    }
    let (status, retry_after, body) = post(&app, "/v1/responses", json!({"model": "echo", "input": "three"})).await;
    assert_eq!(status, 429, "{body}");
    // Two a minute: the next one is allowed 30 s after the first, in whole seconds rounded up.
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!((29..=30).contains(&seconds), "{seconds}");
    let message = format!("Rate limit reached for requests per min (RPM): limit 2. Please try again in {seconds}s.");
    assert_eq!(body, rate_error(&message));
    assert_eq!(get_text(&app, "/healthz").await.0, 200);
    assert_eq!(rejected(&app, "rate").await - before, 1.0);
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_504_its_turn_is_stored_and_a_started_stream_is_not_cut() {
    let mock = MockUpstream::start().await;
    mock.set(gated_stream());
    let timeout = |c: &mut threadline::config::Config| c.limits.request_timeout = std::time::Duration::from_secs(1);
    let app = TestApp::builder().upstream(&mock.url).config(timeout).start().await.unwrap();
    // The tokenizer loads on first use, which in a debug build can take longer than the timeout.
    threadline::tokens::TokenCounter::default().text("warm up");

    let mut stream = app.stream("/v1/responses", json!({"model": "m", "input": "streamed", "stream": true})).await;
    let created = stream.next_json().await;
    while stream.next_json().await["type"] != "response.output_text.delta" {}
    mock.set(Behavior::Held);
    let got = app.post("/v1/responses", json!({"model": "m", "input": "slow"})).await;
    let message =
        "The server did not answer within its request timeout of 1s. A response it started is still completed and stored.";
    let timed_out = json!({"error": {"message": message, "type": "server_error", "param": null, "code": "timeout"}});
    assert_eq!(got, (504, timed_out));

    // Both upstream answers go on: the stream, open longer than the timeout, ends as usual, and the turn whose client
    // got the 504 is completed and stored.
    mock.release();
    mock.release();
    let events = stream.rest_json().await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let stream_id = created["response"]["id"].as_str().unwrap().to_string();
    let saved = [app.next_saved().await, app.next_saved().await];
    let slow = saved.iter().find(|id| **id != stream_id).unwrap();
    let (status, stored) = app.get(&format!("/v1/responses/{slow}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["output"][0]["content"][0]["text"], "answer to slow");
}
