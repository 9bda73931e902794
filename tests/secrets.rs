//! Secrets never leave the server: the clients' keys (`Authorization`, `x-api-key`, `api-key`) and the upstream's key
//! appear in no log line — at the most verbose level, in both log formats — in no error and not in `/metrics`; and
//! an upstream that quotes a key (the configured one, or a client's own in `passthrough`) in its error — a relayed
//! 4xx, a 5xx, a body that is not JSON, an error mid-stream — in any form (as it is, after `Bearer `,
//! percent-encoded, JSON-escaped) has it scrubbed from what the client sees, what is stored and replayed, and the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::process::ServerProcess;
use common::{text, Behavior, MockUpstream, Postgres, Sqlite, Step, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::config::{AuthMode, Secret};

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

/// The configured upstream key and a client's own key (`passthrough`), each ending in a mark that no scrubbed text
/// may hold in any form.
const CONFIGURED_KEY: &str = "sk-up/Stream+Key=Zq81e3x";
const CLIENT_OWN_KEY: &str = "sk-pass/Through+Key=Wv42k9y";
const MARKS: [&str; 2] = ["Zq81e3x", "Wv42k9y"];

/// The forms in which an upstream may quote a key, each with what the client is to see in its place.
fn forms(key: &str) -> Vec<(String, &'static str)> {
    let percent = key.replace('/', "%2F").replace('+', "%2b").replace('=', "%3D");
    vec![
        (key.to_string(), "[redacted]"),
        (format!("Bearer {key}"), "Bearer [redacted]"),
        (percent, "[redacted]"),
        (key.replace('/', "\\/").replace('s', "\\u0073"), "[redacted]"),
    ]
}

/// A text quoting both keys, each in its `n`th form, and the text with both scrubbed.
fn quoting(n: usize, template: &str) -> (String, String) {
    let (configured, client) = (&forms(CONFIGURED_KEY)[n], &forms(CLIENT_OWN_KEY)[n]);
    let fill = |a: &str, b: &str| template.replacen("{}", a, 1).replacen("{}", b, 1);
    (fill(&configured.0, &client.0), fill(configured.1, client.1))
}

fn assert_no_key(text: &str, what: &str) {
    for mark in MARKS {
        assert!(!text.contains(mark), "{what} holds a key: {text}");
    }
}

/// Every log line of this test binary's servers, at the most verbose level (captured from the first call on).
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .init();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// threadline in `passthrough` mode in front of a mock upstream, with its own upstream key configured too.
async fn passthrough(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    logs();
    let mock = MockUpstream::start().await;
    let app = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.upstreams[0].api_key = Some(Secret(CONFIGURED_KEY.into()));
            config.auth.mode = Some(AuthMode::Passthrough);
        })
        .start()
        .await?;
    Some((mock, app))
}

/// A request made with the client's own key: its status and body text.
async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut request = app.client.request(method, format!("{}{path}", app.base)).bearer_auth(CLIENT_OWN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn a_key_an_upstream_quotes_in_its_error_reaches_neither_client_nor_log() {
    let (mock, app) = passthrough(Sqlite).await.unwrap();
    let turn = json!({"model": "m", "input": "hi"});
    let streamed = json!({"model": "m", "input": "hi", "stream": true});
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for n in 0..forms(CONFIGURED_KEY).len() {
        // A refusal of the request is relayed with its status, message, param and code.
        let (message, scrubbed) = quoting(n, "Invalid value for {} (and {})");
        let refusal = json!({"error": {"message": message, "type": "invalid_request_error", "param": message,
            "code": message}});
        let expected = json!({"error": {"message": scrubbed, "type": "invalid_request_error", "param": scrubbed,
            "code": scrubbed}});
        for (path, body) in [("/v1/responses", &turn), ("/v1/responses", &streamed), ("/v1/chat/completions", &chat)] {
            mock.set(Behavior::Fail(400, refusal.clone()));
            let (status, answer) = send(&app, reqwest::Method::POST, path, Some(body.clone())).await;
            assert_no_key(&answer, path);
            assert_eq!((status, serde_json::from_str::<Value>(&answer).unwrap()), (400, expected.clone()), "{path}");
        }
        // A failure of the upstream is a 502 naming it, whether its body is JSON or not.
        let (message, scrubbed) = quoting(n, "Internal failure for {}, {}");
        let (text, text_scrubbed) = quoting(n, "<html>Bad gateway: authorization {}; {}</html>");
        for (behavior, said) in [
            (Behavior::Fail(500, json!({"error": {"message": message}})), format!("HTTP 500): {scrubbed}")),
            (Behavior::Fail(503, json!({"message": message})), format!("HTTP 503): {scrubbed}")),
            (Behavior::FailText(502, text.clone()), format!("HTTP 502): {text_scrubbed}")),
        ] {
            for (path, body) in
                [("/v1/responses", &turn), ("/v1/responses", &streamed), ("/v1/chat/completions", &chat)]
            {
                mock.set(behavior.clone());
                let (status, answer) = send(&app, reqwest::Method::POST, path, Some(body.clone())).await;
                assert_no_key(&answer, path);
                let answer: Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(status, 502, "{answer}");
                assert_eq!(answer["error"]["message"], format!("Upstream 'default' failed ({said}"), "{path}");
            }
        }
    }
    let logs = logs();
    assert!(logs.contains("request failed") && logs.contains("Internal failure for"), "{logs}");
    assert_no_key(&logs, "the log");
}

#[rstest]
#[tokio::test]
async fn a_key_in_an_error_mid_stream_is_neither_streamed_nor_stored_nor_replayed_nor_logged(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, app)) = passthrough(store).await else { return };
    for n in 0..forms(CONFIGURED_KEY).len() {
        let (message, scrubbed) = quoting(n, "Internal failure for {} and {}");
        let error = Step::Chunk(json!({"error": {"message": message}}));
        mock.set(Behavior::Stream(vec![text("par"), error]));
        let body = json!({"model": "m", "input": "q", "stream": true});
        let (status, live) = send(&app, reqwest::Method::POST, "/v1/responses", Some(body)).await;
        assert_eq!(status, 200, "{live}");
        assert_no_key(&live, "the stream");
        let said = format!("Upstream 'default' failed mid-stream: {scrubbed}.");
        assert!(live.contains(&serde_json::to_string(&said).unwrap()), "{live}");
        let mut data = live.lines().filter_map(|line| line.strip_prefix("data: "));
        let last = data.rfind(|data| *data != "[DONE]").unwrap();
        let failed: Value = serde_json::from_str(last).unwrap();
        assert_eq!(failed["response"]["error"], json!({"code": "server_error", "message": said}));
        let path = format!("/v1/responses/{}", failed["response"]["id"].as_str().unwrap());
        let (status, stored) = send(&app, reqwest::Method::GET, &path, None).await;
        assert_no_key(&stored, "the stored response");
        assert_eq!((status, serde_json::from_str::<Value>(&stored).unwrap()), (200, failed["response"].clone()));
        let (status, replayed) = send(&app, reqwest::Method::GET, &format!("{path}?stream=true"), None).await;
        assert_no_key(&replayed, "the replay");
        assert!(status == 200 && replayed.contains(&serde_json::to_string(&said).unwrap()), "{replayed}");
    }
    let logs = logs();
    assert!(logs.contains("upstream failed mid-stream") && logs.contains("Internal failure for"), "{logs}");
    assert_no_key(&logs, "the log");
}

#[tokio::test]
async fn a_key_in_an_answer_chat_completions_passes_through_is_scrubbed() {
    let (mock, app) = passthrough(Sqlite).await.unwrap();
    let chat = |stream: bool| json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream});
    for n in 0..forms(CONFIGURED_KEY).len() {
        // An error event in a streamed answer, each key cut across two chunks.
        let (message, scrubbed) = quoting(n, "Internal failure for {} and {}");
        let event = format!("data: {}\n\n", json!({"error": {"message": message}}));
        let cut = event.find("Zq81").unwrap();
        let (first, rest) = event.split_at(cut);
        let (second, third) = rest.split_at(rest.find("Wv42").unwrap());
        let pieces = [first, second, third].map(|piece| Step::Bytes(piece.as_bytes().to_vec()));
        mock.set(Behavior::Stream([vec![text("par")], pieces.to_vec()].concat()));
        let (status, streamed) = send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat(true))).await;
        assert_no_key(&streamed, "the stream passed through");
        let expected = format!("data: {}\n\n", json!({"error": {"message": scrubbed}}));
        assert!(status == 200 && streamed.ends_with(&expected), "{streamed}");
        // A whole answer.
        let (content, scrubbed) = quoting(n, "Your keys: {} and {}");
        mock.set(Behavior::Message(json!({"role": "assistant", "content": content})));
        let (status, answer) = send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat(false))).await;
        assert_no_key(&answer, "the answer passed through");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!((status, &answer["choices"][0]["message"]["content"]), (200, &json!(scrubbed)));
    }
}
