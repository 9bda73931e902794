//! Observability: `/metrics` describes every series and its counts move with exactly the traffic sent; `x-request-id`
//! is echoed, generated or replaced, returned on every answer and forwarded upstream; JSON logs carry it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::process::ServerProcess;
use common::sse::Events;
use common::{finish, text, usage, Behavior, MockUpstream, Step, TestApp, DONE};
use serde_json::{json, Value};

/// The metrics are the process's: the tests of this file that send requests to an app, and compare series before and
/// after, run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every series threadline exports, with its Prometheus type.
const SERIES: [(&str, &str); 16] = [
    ("threadline_http_requests_total", "counter"),
    ("threadline_http_request_duration_seconds", "histogram"),
    ("threadline_upstream_requests_total", "counter"),
    ("threadline_upstream_request_duration_seconds", "histogram"),
    ("threadline_tokens_total", "counter"),
    ("threadline_active_streams", "gauge"),
    ("threadline_active_websockets", "gauge"),
    ("threadline_background_queue_depth", "gauge"),
    ("threadline_history_depth", "histogram"),
    ("threadline_history_resolve_duration_seconds", "histogram"),
    ("threadline_history_cache_requests_total", "counter"),
    ("threadline_history_cache_bytes", "gauge"),
    ("threadline_db_pool_connections", "gauge"),
    ("threadline_turn_contexts_total", "counter"),
    ("threadline_rejected_requests_total", "counter"),
    ("threadline_purged_total", "counter"),
];

/// One scrape of `/metrics`: its text and its samples.
struct Scrape {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let response = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let text = response.text().await.unwrap();
        let samples = text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')).map(sample).collect();
        Self { text, samples }
    }

    /// The value of the series `name` with exactly these labels, if it is there.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|(n, l, _)| n == name && *l == labels).map(|(_, _, value)| *value)
    }

    /// The value of a series, 0 while it has never moved.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// `name{a="x",b="y"} 3` as its name, labels and value.
fn sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
    let Some((name, labels)) = series.split_once('{') else {
        return (series.to_string(), BTreeMap::new(), value);
    };
    let labels = labels.strip_suffix('}').unwrap();
    let labels = labels
        .split("\",")
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").unwrap();
            (key.to_string(), value.trim_end_matches('"').to_string())
        })
        .collect();
    (name.to_string(), labels, value)
}

/// An app in front of `url` whose one upstream is called `name` (a label no other test uses).
async fn app(url: &str, name: &'static str, timeout: Option<Duration>) -> TestApp {
    let builder = TestApp::builder().upstream(url).config(move |config| {
        config.upstreams[0].name = name.into();
        if let Some(timeout) = timeout {
            config.upstreams[0].timeout = timeout;
        }
    });
    builder.start().await.unwrap()
}

/// A base URL where nothing listens.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn every_series_is_described_and_shown_before_it_moves() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    let app = app(&mock.url, "obs-described", None).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let scrape = Scrape::of(&app).await;
    for (name, kind) in SERIES {
        assert!(scrape.text.contains(&format!("# HELP {name} ")), "no help for {name}:\n{}", scrape.text);
        assert!(scrape.text.contains(&format!("# TYPE {name} {kind}\n")), "no {kind} {name}:\n{}", scrape.text);
        let shown = if kind == "histogram" { format!("{name}_count") } else { name.to_string() };
        assert!(scrape.samples.iter().any(|(n, _, _)| *n == shown), "{shown} is not shown:\n{}", scrape.text);
    }
    // Registered at 0 before anything happened to them.
    assert_eq!(
        scrape.get("threadline_upstream_requests_total", &[("upstream", "obs-described"), ("outcome", "ok")]),
        Some(0.0)
    );
    let upstream = [("upstream", "obs-described")];
    assert_eq!(scrape.get("threadline_upstream_request_duration_seconds_count", &upstream), Some(0.0));
    assert_eq!(scrape.get("threadline_active_websockets", &[]), Some(0.0));
    assert_eq!(scrape.get("threadline_background_queue_depth", &[]), Some(0.0));
    for direction in ["input", "output"] {
        assert!(scrape.get("threadline_tokens_total", &[("direction", direction)]).is_some(), "{direction}");
    }
    for state in ["idle", "in_use"] {
        assert!(scrape.get("threadline_db_pool_connections", &[("state", state)]).is_some(), "{state}");
    }
    // Histograms have buckets (not quantiles), durations in seconds.
    let healthz = [("route", "/healthz"), ("method", "GET"), ("le", "0.005")];
    assert!(scrape.get("threadline_http_request_duration_seconds_bucket", &healthz).is_some(), "{}", scrape.text);
    let bucket = [("upstream", "obs-described"), ("le", "600")];
    assert_eq!(scrape.get("threadline_upstream_request_duration_seconds_bucket", &bucket), Some(0.0));
}

#[tokio::test]
async fn requests_upstream_calls_and_tokens_are_counted_exactly() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    let app = app(&mock.url, "obs-counts", None).await;
    let before = Scrape::of(&app).await;

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.turn(&format!("hello {n}"), None).await);
    }
    mock.set(Behavior::Fail(500, json!({"error": {"message": "down"}})));
    let failed_5xx = app.post("/v1/responses", json!({"model": "m", "input": "q"})).await.0;
    mock.set(Behavior::Fail(400, json!({"error": {"message": "no"}})));
    let failed_4xx = app.post("/v1/responses", json!({"model": "m", "input": "q"})).await.0;
    mock.set(Behavior::Garbage);
    let garbage = app.post("/v1/responses", json!({"model": "m", "input": "q"})).await.0;
    assert_eq!(app.get(&format!("/v1/responses/{}", ids[0])).await.0, 200);
    assert_eq!(app.get("/no/such/path").await.0, 404);

    let after = Scrape::of(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    let requests = "threadline_http_requests_total";
    assert_eq!(moved(requests, &[("route", "/v1/responses"), ("method", "POST"), ("status", "200")]), 3.0);
    // The upstream's 500 and its unparsable answer are 502s; its 400 is passed on.
    assert_eq!((failed_5xx, failed_4xx, garbage), (502, 400, 502));
    assert_eq!(moved(requests, &[("route", "/v1/responses"), ("method", "POST"), ("status", "502")]), 2.0);
    assert_eq!(moved(requests, &[("route", "/v1/responses"), ("method", "POST"), ("status", "400")]), 1.0);
    let durations = "threadline_http_request_duration_seconds_count";
    assert_eq!(moved(durations, &[("route", "/v1/responses"), ("method", "POST")]), 6.0);
    // The route template, never the path with its id.
    assert_eq!(moved(requests, &[("route", "/v1/responses/{id}"), ("method", "GET"), ("status", "200")]), 1.0);
    assert!(!after.text.contains(&ids[0]), "a raw path is a label:\n{}", after.text);
    assert_eq!(moved(requests, &[("route", "unmatched"), ("method", "GET"), ("status", "404")]), 1.0);

    // The upstream's label is this test's own: its counts are exact.
    let upstream =
        |outcome| after.get("threadline_upstream_requests_total", &[("upstream", "obs-counts"), ("outcome", outcome)]);
    assert_eq!(upstream("ok"), Some(5.0), "three answers, the garbage one and the model list read for the window");
    assert_eq!(upstream("status_5xx"), Some(1.0));
    assert_eq!(upstream("status_4xx"), Some(1.0));
    assert_eq!(upstream("bad_answer"), Some(1.0));
    assert_eq!(upstream("timeout"), None);
    let timed = after.get("threadline_upstream_request_duration_seconds_count", &[("upstream", "obs-counts")]);
    assert_eq!(timed, Some(7.0));

    // Three finished turns of 11 input and 3 output tokens each (the mock's usage); failed turns count none.
    assert_eq!(moved("threadline_tokens_total", &[("direction", "input")]), 33.0);
    assert_eq!(moved("threadline_tokens_total", &[("direction", "output")]), 9.0);
}

#[tokio::test]
async fn unreachable_and_slow_upstreams_are_counted_by_outcome() {
    let _serial = SERIAL.lock().await;
    let unreachable = app(&closed_url().await, "obs-unreachable", None).await;
    assert_eq!(unreachable.post("/v1/responses", json!({"model": "m", "input": "q"})).await.0, 502);
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Hang);
    let slow = app(&mock.url, "obs-timeout", Some(Duration::from_millis(300))).await;
    assert_eq!(slow.post("/v1/responses", json!({"model": "m", "input": "q"})).await.0, 504);

    let scrape = Scrape::of(&slow).await;
    let count = |upstream, outcome| {
        scrape.get("threadline_upstream_requests_total", &[("upstream", upstream), ("outcome", outcome)])
    };
    // Each upstream was first asked for its model list (the context window), then for the completion.
    assert_eq!(count("obs-unreachable", "unreachable"), Some(2.0));
    assert_eq!(count("obs-unreachable", "ok"), Some(0.0));
    assert_eq!(count("obs-timeout", "timeout"), Some(1.0));
    assert_eq!(count("obs-timeout", "ok"), Some(1.0));
    let timed = scrape.get("threadline_upstream_request_duration_seconds_sum", &[("upstream", "obs-timeout")]).unwrap();
    assert!((0.3..10.0).contains(&timed), "{timed}");
}

#[tokio::test]
async fn an_open_stream_is_active_until_it_ends() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, text(" second"), finish("stop"), usage(5, 2), DONE]));
    let app = app(&mock.url, "obs-stream", None).await;
    let before = Scrape::of(&app).await;
    let active = |scrape: &Scrape| scrape.get("threadline_active_streams", &[]).unwrap();

    let mut events = app.stream("/v1/responses", json!({"model": "m", "input": "q", "stream": true})).await;
    while events.next_json().await["type"] != "response.output_text.delta" {}
    let during = Scrape::of(&app).await;
    assert_eq!(active(&during) - active(&before), 1.0);
    assert_eq!(
        during.value("threadline_tokens_total", &[("direction", "output")]),
        before.value("threadline_tokens_total", &[("direction", "output")])
    );

    mock.release();
    let rest = events.rest_json().await;
    assert_eq!(rest.last().unwrap()["type"], "response.completed");
    let after = Scrape::of(&app).await;
    assert_eq!(active(&after), active(&before));
    let moved = |direction| {
        let labels = [("direction", direction)];
        after.value("threadline_tokens_total", &labels) - before.value("threadline_tokens_total", &labels)
    };
    assert_eq!((moved("input"), moved("output")), (5.0, 2.0));
    let route = [("route", "/v1/responses"), ("method", "POST"), ("status", "200")];
    assert_eq!(
        after.value("threadline_http_requests_total", &route) - before.value("threadline_http_requests_total", &route),
        1.0
    );
}

/// Sends a request with an optional `x-request-id` and returns the status and the id answered.
async fn send(request: reqwest::RequestBuilder, id: Option<&str>) -> (u16, String) {
    let request = match id {
        Some(id) => request.header("x-request-id", id),
        None => request,
    };
    let response = request.send().await.unwrap();
    let answered = response.headers().get("x-request-id").expect("no x-request-id answered").to_str().unwrap();
    (response.status().as_u16(), answered.to_string())
}

/// Whether an id is one threadline made: a UUIDv7 in hex.
fn generated(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|uuid| uuid.get_version_num() == 7) && id.len() == 32
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_reach_the_upstream() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    let app = app(&mock.url, "obs-ids", None).await;
    let post = |path: &str, body: Value| app.client.post(format!("{}{path}", app.base)).json(&body);
    let turn = json!({"model": "m", "input": "q"});

    assert_eq!(send(post("/v1/responses", turn.clone()), Some("client-id.42")).await, (200, "client-id.42".into()));
    assert_eq!(mock.take_request_ids(), [Some("client-id.42".to_string())]);

    let (status, id) = send(post("/v1/responses", turn.clone()), None).await;
    assert_eq!(status, 200);
    assert!(generated(&id), "{id}");
    assert_eq!(mock.take_request_ids(), [Some(id.clone())]);
    let (_, other) = send(post("/v1/responses", turn.clone()), None).await;
    assert_ne!(other, id, "each request gets its own id");
    mock.take_request_ids();

    for invalid in ["has space", &"x".repeat(201), ""] {
        let (status, id) = send(post("/v1/responses", turn.clone()), Some(invalid)).await;
        assert_eq!(status, 200);
        assert!(generated(&id), "{invalid:?} was kept as {id}");
        assert_eq!(mock.take_request_ids(), [Some(id)]);
    }
    let longest = "y".repeat(200);
    assert_eq!(send(post("/v1/responses", turn.clone()), Some(&longest)).await, (200, longest.clone()));
    assert_eq!(mock.take_request_ids(), [Some(longest)]);

    // Every surface that calls the upstream passes the id on: streamed turns, LM Studio's chat, the stateless
    // Chat Completions pass-through (plain and streamed).
    mock.set(Behavior::Stream(vec![text("hi"), finish("stop"), DONE]));
    let streamed = json!({"model": "m", "input": "q", "stream": true});
    let response = post("/v1/responses", streamed).header("x-request-id", "stream-1").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "stream-1");
    Events::new(response).rest().await;
    mock.set(Behavior::Answer);
    assert_eq!(
        send(post("/api/v1/chat", json!({"model": "m", "input": "q"})), Some("lms-1")).await,
        (200, "lms-1".into())
    );
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(send(post("/v1/chat/completions", chat), Some("chat-1")).await, (200, "chat-1".into()));
    mock.set(Behavior::Stream(vec![text("hi"), finish("stop"), DONE]));
    let chat = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(send(post("/v1/chat/completions", chat), Some("chat-2")).await, (200, "chat-2".into()));
    let forwarded = ["stream-1", "lms-1", "chat-1", "chat-2"].map(|id| Some(id.to_string()));
    assert_eq!(mock.take_request_ids(), forwarded);

    // Errors, unknown paths and wrong methods answer with it too.
    let bad = app.client.post(format!("{}/v1/responses", app.base)).body("not json");
    assert_eq!(send(bad, Some("bad-1")).await, (400, "bad-1".into()));
    assert_eq!(send(app.client.get(format!("{}/nowhere", app.base)), Some("lost-1")).await, (404, "lost-1".into()));
    let (status, id) = send(app.client.put(format!("{}/v1/responses", app.base)), None).await;
    assert_eq!(status, 405);
    assert!(generated(&id), "{id}");
    assert_eq!(send(app.client.get(format!("{}/metrics", app.base)), Some("scrape-1")).await, (200, "scrape-1".into()));
    assert!(mock.take_request_ids().is_empty());
}

#[tokio::test]
async fn json_logs_carry_the_request_id_into_the_turn() {
    let mock = MockUpstream::start().await;
    // A stream that breaks off: the turn task logs a warning, inside the request's span.
    mock.set(Behavior::Stream(vec![text("par")]));
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("threadline.db").display());
    let args = ["--upstream-url", &mock.url, "--database-url", &database];
    let mut server = ServerProcess::start(&args, &[("THREADLINE_LOG__FORMAT", "json")]).await;
    let client = reqwest::Client::new();
    let request = json!({"model": "m", "input": "q", "stream": true});
    let response = client.post(format!("{}/v1/responses", server.base)).header("x-request-id", "json-log-7");
    response.json(&request).send().await.unwrap().text().await.unwrap();
    loop {
        let line = server.next_log().await;
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
        if event["message"] == "upstream failed mid-stream" {
            assert_eq!(event["level"], "WARN", "{line}");
            assert_eq!(event["span"]["request_id"], "json-log-7", "{line}");
            assert_eq!(event["span"]["uri"], "/v1/responses", "{line}");
            break;
        }
    }
}

#[tokio::test]
async fn chains_resolved_from_the_cache_and_the_database_are_counted() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::start("echo").await;
    let before = Scrape::of(&app).await;
    let first = app.turn("one", None).await;
    let second = app.turn("two", Some(&first)).await;
    app.turn("three", Some(&second)).await;
    // A second app over the same database has nothing cached: its first read of the chain is a miss.
    let other = TestApp::builder().database(app.database.clone()).upstream("echo").start().await.unwrap();
    other.turn("four", Some(&second)).await;
    let after = Scrape::of(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    assert_eq!(moved("threadline_history_cache_requests_total", &[("result", "hit")]), 2.0);
    assert_eq!(moved("threadline_history_cache_requests_total", &[("result", "miss")]), 1.0);
    // Chains of 1, 2 and 2 turns.
    assert_eq!(moved("threadline_history_depth_count", &[]), 3.0);
    assert_eq!(moved("threadline_history_depth_sum", &[]), 5.0);
    assert_eq!(moved("threadline_history_resolve_duration_seconds_count", &[]), 3.0);
    assert!(after.value("threadline_history_cache_bytes", &[]) > 0.0, "{}", after.text);
    let connections = after.value("threadline_db_pool_connections", &[("state", "idle")])
        + after.value("threadline_db_pool_connections", &[("state", "in_use")]);
    assert!(connections >= 1.0, "{}", after.text);
}

#[tokio::test]
async fn turn_contexts_are_counted_by_how_they_fit_the_window() {
    let _serial = SERIAL.lock().await;
    let mock = MockUpstream::start().await;
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "context_length": 1000}]));
    let app = app(&mock.url, "obs-contexts", None).await;
    let before = Scrape::of(&app).await;
    let first = app.create(json!({"model": "m", "input": common::words(300)})).await;
    let longer = json!({"model": "m", "input": common::words(500), "previous_response_id": first["id"]});
    assert_eq!(app.post("/v1/responses", longer.clone()).await.0, 400);
    let mut truncated = longer;
    truncated["truncation"] = json!("auto");
    app.create(truncated).await;
    let trigger = json!([{"role": "user", "content": "x"}, {"type": "compaction_trigger"}]);
    app.create(json!({"model": "m", "input": trigger, "previous_response_id": first["id"]})).await;
    let after = Scrape::of(&app).await;
    let moved = |fit| {
        let labels = [("fit", fit)];
        after.value("threadline_turn_contexts_total", &labels) - before.value("threadline_turn_contexts_total", &labels)
    };
    assert_eq!([moved("whole"), moved("too_long"), moved("truncated"), moved("compacted")], [1.0; 4]);
}
