//! Secrets never leave the server: the clients' keys (`Authorization`, `x-api-key`, `api-key`) and the upstream's key
//! appear in no log line — at the most verbose level, in both log formats — in no error and not in `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::ServerProcess;
use common::{Behavior, MockUpstream};
use serde_json::json;

const CLIENT_KEY: &str = "sk-secret-client-4f9a1c";
const OTHER_KEY: &str = "sk-secret-other-77d2e0";
const UPSTREAM_KEY: &str = "sk-secret-upstream-b81e3";

#[tokio::test]
async fn keys_are_in_no_log_line_error_or_metric() {
    for format in ["text", "json"] {
        let mock = MockUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("threadline.db").display());
        let args = ["--upstream-url", &mock.url, "--database-url", &database];
        let env =
            [("RUST_LOG", "trace"), ("THREADLINE_LOG__FORMAT", format), ("THREADLINE_UPSTREAM_API_KEY", UPSTREAM_KEY)];
        let mut server = ServerProcess::start(&args, &env).await;
        let client = reqwest::Client::new();
        let post = |path: &str| {
            client
                .post(format!("{}{path}", server.base))
                .header("authorization", format!("Bearer {CLIENT_KEY}"))
                .header("x-api-key", OTHER_KEY)
                .header("api-key", OTHER_KEY)
        };
        let mut answers = Vec::new();
        // A plain and a streamed turn, a stateless chat, a validation error, an unknown route.
        for (path, body) in [
            ("/v1/responses", json!({"model": "m", "input": "hi"})),
            ("/v1/responses", json!({"model": "m", "input": "hi", "stream": true})),
            ("/v1/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
            ("/v1/responses", json!({"model": "m", "input": 5})),
            ("/v1/nowhere", json!({})),
        ] {
            answers.push(post(path).json(&body).send().await.unwrap().text().await.unwrap());
        }
        // The upstream refusing the key, and quoting it (as OpenAI's 401 does).
        let refusal = json!({"error": {"message": format!("Incorrect API key provided: {UPSTREAM_KEY}"), "code": "invalid_api_key"}});
        mock.set(Behavior::Fail(401, refusal));
        let refused = post("/v1/responses").json(&json!({"model": "m", "input": "hi"})).send().await.unwrap();
        assert_eq!(refused.status(), 502);
        answers.push(refused.text().await.unwrap());
        let chat = post("/v1/chat/completions").json(&json!({"model": "m", "messages": []})).send().await.unwrap();
        answers.push(chat.text().await.unwrap());
        answers.push(client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap());

        server.terminate();
        let (status, lines) = server.wait_exit().await;
        assert!(status.success());
        // Trace level logged the requests, so the check looked at their log lines.
        assert!(lines.iter().any(|line| line.contains("/v1/chat/completions")), "{lines:?}");
        for secret in [CLIENT_KEY, OTHER_KEY, UPSTREAM_KEY] {
            for line in &lines {
                assert!(!line.contains(secret), "{format} log line with {secret}: {line}");
            }
            for answer in &answers {
                assert!(!answer.contains(secret), "an answer with {secret}: {answer}");
            }
        }
    }
}
