//! An upstream's 429 reaches the client with its `Retry-After` header, on every surface that calls the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Behavior, MockUpstream, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn an_upstream_429_passes_its_retry_after_on() {
    let mock = MockUpstream::start().await;
    let app = TestApp::start(&mock.url).await;
    let envelope = json!({"error": {"message": "slow down", "type": "invalid_request_error", "param": null,
        "code": "rate_limit_exceeded"}});
    let requests = [
        ("/v1/responses", json!({"model": "m", "input": "x"})),
        ("/v1/responses", json!({"model": "m", "input": "x", "stream": true})),
        ("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})),
        ("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": true})),
        ("/api/v1/chat", json!({"model": "m", "input": "x"})),
    ];
    for (retry_after, expected) in
        [("7", Some("7")), ("Wed, 21 Oct 2026 07:28:00 GMT", Some("Wed, 21 Oct 2026 07:28:00 GMT")), ("", None)]
    {
        let headers = if retry_after.is_empty() { vec![] } else { vec![("retry-after", retry_after)] };
        mock.set(Behavior::FailWithHeaders(
            429,
            json!({"error": {"message": "slow down", "code": "rate_limit_exceeded"}}),
            headers,
        ));
        for (path, body) in &requests {
            let response = app.client.post(format!("{}{path}", app.base)).json(body).send().await.unwrap();
            assert_eq!(response.status(), 429, "{path} {body}");
            let header = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(header.as_deref(), expected, "{path} {body}");
            let got: Value = response.json().await.unwrap();
            if *path != "/api/v1/chat" {
                assert_eq!(got, envelope, "{path}");
            }
        }
    }
    // Another status keeps no Retry-After: a 503 is the upstream failing, a 502 here.
    mock.set(Behavior::FailWithHeaders(503, json!({"error": {"message": "busy"}}), vec![("retry-after", "5")]));
    let response = app.client.post(format!("{}/v1/responses", app.base)).json(&requests[0].1).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.headers().get("retry-after").is_none());
}
