//! Test harness: the real router on 127.0.0.1:0 over a temporary SQLite file, and a mock upstream that records
//! every request body it receives.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use threadline::config::{Config, Overrides, UpstreamConfig};
use threadline::engine::Engine;

/// How the mock upstream answers.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// `answer to <last user message>` with usage.
    Answer,
    /// This status and body.
    Fail(u16, Value),
    /// Never answers.
    Hang,
    /// A 200 whose body is not JSON.
    Garbage,
}

#[derive(Default)]
struct MockState {
    bodies: Mutex<Vec<Value>>,
    behavior: Mutex<Option<Behavior>>,
}

/// A Chat Completions backend that records what it receives.
#[derive(Clone)]
pub struct MockUpstream {
    pub url: String,
    state: Arc<MockState>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(MockState::default());
        let router = Router::new()
            .route("/v1/chat/completions", post(mock_chat))
            .route("/v1/models", get(mock_models))
            .with_state(state.clone());
        let addr = spawn(router).await;
        Self { url: format!("http://{addr}/v1"), state }
    }

    pub fn set(&self, behavior: Behavior) {
        *self.state.behavior.lock().unwrap() = Some(behavior);
    }

    /// Every body received so far, emptying the record.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.state.bodies.lock().unwrap())
    }

    /// The `messages` of the only request received since the last `take`.
    pub fn only_messages(&self) -> Vec<Value> {
        let bodies = self.take();
        assert_eq!(bodies.len(), 1, "expected one upstream request, got {bodies:?}");
        bodies[0]["messages"].as_array().unwrap().clone()
    }
}

fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    last.and_then(|m| m["content"].as_str()).unwrap_or("nothing").to_string()
}

async fn mock_chat(State(state): State<Arc<MockState>>, Json(body): Json<Value>) -> Response {
    state.bodies.lock().unwrap().push(body.clone());
    let behavior = state.behavior.lock().unwrap().clone().unwrap_or(Behavior::Answer);
    match behavior {
        Behavior::Answer => Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("answer to {}", last_user_text(&body))}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }))
        .into_response(),
        Behavior::Fail(status, body) => (StatusCode::from_u16(status).unwrap(), Json(body)).into_response(),
        Behavior::Hang => std::future::pending().await,
        Behavior::Garbage => "not json".into_response(),
    }
}

async fn mock_models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"}]}))
}

/// Serves a router on a random loopback port.
pub async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A running threadline and its database file.
pub struct TestServer {
    pub base: String,
    pub engine: Arc<Engine>,
    pub db_path: PathBuf,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

/// A config over the SQLite file `db` with the given upstreams.
pub fn config(db: &std::path::Path, upstreams: Vec<UpstreamConfig>) -> Config {
    let mut config = Config::load(None, Overrides { upstream_url: Some("echo".into()), ..Default::default() }).unwrap();
    config.database_url = format!("sqlite://{}", db.display());
    config.upstreams = upstreams;
    config
}

/// An upstream config pointing at `url`, serving every model.
pub fn upstream(url: &str) -> UpstreamConfig {
    UpstreamConfig::from_url(url, None)
}

impl TestServer {
    /// threadline in front of one upstream at `url` (or `echo`), on a fresh database.
    pub async fn start(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("threadline.db");
        let mut server = Self::with_config(config(&db, vec![upstream(url)])).await;
        server._dir = Some(dir);
        server
    }

    /// threadline with a given config (the caller owns the database file).
    pub async fn with_config(config: Config) -> Self {
        let db_path = PathBuf::from(config.database_url.trim_start_matches("sqlite://"));
        let app = threadline::build_app(&config).await.unwrap();
        let addr = spawn(app.router).await;
        Self { base: format!("http://{addr}"), engine: app.engine, db_path, client: reqwest::Client::new(), _dir: None }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        decode(response).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).body(body).send().await.unwrap();
        decode(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        decode(self.client.get(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        decode(self.client.delete(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    /// Creates a response and returns its body, asserting success.
    pub async fn create(&self, body: Value) -> Value {
        let (status, response) = self.post("/v1/responses", body).await;
        assert_eq!(status, 200, "{response}");
        response
    }

    /// Creates `input` on `model` continuing `previous` and returns the new id.
    pub async fn turn(&self, input: &str, previous: Option<&str>) -> String {
        let response = self.create(json!({"model": "m", "input": input, "previous_response_id": previous})).await;
        response["id"].as_str().unwrap().to_string()
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({content_type:?}): {text}"));
    (status, body)
}

/// `{"role": role, "content": content}`.
pub fn msg(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

/// Asserts the OpenAI error envelope with exactly these fields.
pub fn assert_error(got: &(u16, Value), status: u16, code: Option<&str>, param: Option<&str>) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    let error = &body["error"];
    assert_eq!(error.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    assert_eq!(error["param"].as_str(), param, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
}
