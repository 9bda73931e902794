//! Test harness: the real router on 127.0.0.1:0 over a temporary database, a mock upstream that records every
//! request body it receives (`mock`), test databases (`db`) and a TCP proxy that can cut a connection (`proxy`).
#![allow(dead_code)]

pub mod db;
pub mod mock;
pub mod proxy;

#[allow(unused_imports)]
pub use mock::*;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::Router;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use threadline::config::{Config, Overrides, UpstreamConfig};
use threadline::engine::Engine;
use threadline::error::ApiResult;
use threadline::model::{Conversation, Item, Metadata, Pieces, Response as ModelResponse};
use threadline::store::{Chain, NewTurn, Store};
use threadline::upstream::sse::{SseDecoder, SseEvent};
use tokio::sync::mpsc;

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
    /// The id of every turn stored, as it is committed.
    saved: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    _dir: Option<tempfile::TempDir>,
}

/// A store that reports each saved turn, so a test can wait for a write without sleeping.
struct ReportingStore {
    inner: Arc<dyn Store>,
    saved: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl Store for ReportingStore {
    async fn save_turn(&self, tenant: &str, turn: NewTurn<'_>) -> ApiResult<()> {
        self.inner.save_turn(tenant, turn).await?;
        let _ = self.saved.send(turn.response.id.clone());
        Ok(())
    }
    async fn create_conversation(&self, tenant: &str, conversation: &Conversation, items: &[Item]) -> ApiResult<()> {
        self.inner.create_conversation(tenant, conversation, items).await
    }
    async fn conversation(&self, tenant: &str, id: &str) -> ApiResult<Option<Conversation>> {
        self.inner.conversation(tenant, id).await
    }
    async fn update_conversation(
        &self,
        tenant: &str,
        id: &str,
        metadata: &Metadata,
    ) -> ApiResult<Option<Conversation>> {
        self.inner.update_conversation(tenant, id, metadata).await
    }
    async fn delete_conversation(&self, tenant: &str, id: &str) -> ApiResult<bool> {
        self.inner.delete_conversation(tenant, id).await
    }
    async fn add_conversation_items(&self, tenant: &str, id: &str, items: &[Item]) -> ApiResult<bool> {
        self.inner.add_conversation_items(tenant, id, items).await
    }
    async fn conversation_items(&self, tenant: &str, id: &str) -> ApiResult<Option<Vec<Item>>> {
        self.inner.conversation_items(tenant, id).await
    }
    async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> ApiResult<bool> {
        self.inner.delete_conversation_item(tenant, id, item_id).await
    }
    async fn response(&self, tenant: &str, id: &str) -> ApiResult<Option<(ModelResponse, Pieces)>> {
        self.inner.response(tenant, id).await
    }
    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> ApiResult<Option<Chain>> {
        self.inner.history(tenant, id, max_depth).await
    }
    async fn input_items(&self, tenant: &str, id: &str) -> ApiResult<Option<Vec<Item>>> {
        self.inner.input_items(tenant, id).await
    }
    async fn delete_response(&self, tenant: &str, id: &str) -> ApiResult<bool> {
        self.inner.delete_response(tenant, id).await
    }
    async fn ping(&self) -> ApiResult<()> {
        self.inner.ping().await
    }
    fn reads(&self) -> u64 {
        self.inner.reads()
    }
}

/// A config over the SQLite file `db` with the given upstreams.
pub fn config(db: &std::path::Path, upstreams: Vec<UpstreamConfig>) -> Config {
    config_for(&format!("sqlite://{}", db.display()), upstreams)
}

/// A config over the database at `url` with the given upstreams.
pub fn config_for(url: &str, upstreams: Vec<UpstreamConfig>) -> Config {
    let mut config = Config::load(None, Overrides { upstream_url: Some("echo".into()), ..Default::default() }).unwrap();
    config.database_url = url.to_string();
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

    /// threadline with a given config (the caller owns the database).
    pub async fn with_config(config: Config) -> Self {
        let db_path = PathBuf::from(config.database_url.trim_start_matches("sqlite://"));
        let (saved, receiver) = mpsc::unbounded_channel();
        let inner = threadline::store::open(&config.database_url, &config.database).await.unwrap();
        let store = ReportingStore { inner, saved };
        let app = threadline::build_app_with_store(&config, Arc::new(store)).unwrap();
        let addr = spawn(app.router).await;
        Self {
            base: format!("http://{addr}"),
            engine: app.engine,
            db_path,
            client: reqwest::Client::new(),
            saved: Mutex::new(Some(receiver)),
            _dir: None,
        }
    }

    /// Waits (at most 10 s, then fails) until the next turn is stored, and returns its id.
    pub async fn next_saved(&self) -> String {
        let mut receiver = self.saved.lock().unwrap().take().unwrap();
        let id = tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await.expect("no turn was stored");
        *self.saved.lock().unwrap() = Some(receiver);
        id.unwrap()
    }

    /// Posts a body and returns the open event stream, asserting a 200 `text/event-stream` answer.
    pub async fn stream(&self, path: &str, body: Value) -> Events {
        let response = self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        Events::new(response)
    }

    /// GETs a path and returns the open event stream.
    pub async fn stream_get(&self, path: &str) -> Events {
        Events::new(self.client.get(format!("{}{path}", self.base)).send().await.unwrap())
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

/// An SSE response read event by event; every wait is bounded so a stuck stream fails the test.
pub struct Events {
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: SseDecoder,
    pending: VecDeque<SseEvent>,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "text/event-stream; charset=utf-8");
        Self { bytes: response.bytes_stream().boxed(), decoder: SseDecoder::default(), pending: VecDeque::new() }
    }

    /// The next event, or `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.bytes.next()).await.expect("stream stalled");
            match chunk {
                Some(chunk) => self.pending.extend(self.decoder.push(&chunk.unwrap())),
                None => return None,
            }
        }
    }

    /// The next event's JSON data.
    pub async fn next_json(&mut self) -> Value {
        serde_json::from_str(&self.next().await.expect("stream ended").data).unwrap()
    }

    /// The JSON data of every remaining event, leaving out the final `[DONE]`.
    pub async fn rest_json(self) -> Vec<Value> {
        let frames = self.rest().await;
        frames.iter().filter(|f| f.data != "[DONE]").map(|f| serde_json::from_str(&f.data).unwrap()).collect()
    }

    /// Every remaining event.
    pub async fn rest(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
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

/// Stores a turn's response directly in a store.
pub async fn save(store: &dyn Store, tenant: &str, response: &ModelResponse, input: &[Item], pieces: &Pieces) {
    let turn = NewTurn { response, input, pieces, store_response: true, conversation: None };
    store.save_turn(tenant, turn).await.unwrap();
}
