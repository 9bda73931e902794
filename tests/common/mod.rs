//! Test harness: `TestApp`, the real router on 127.0.0.1:0 over a database of its own (SQLite or Postgres, see
//! `db`), built with a config closure; a mock upstream that records every request body (`mock`); a strict SSE reader
//! that is not the product's decoder (`sse`); snapshot redaction (`snapshot`); a store wrapper that reports writes
//! and counts reads (`recorder`); and a TCP proxy that can cut a connection (`proxy`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod anthropic_mock;
pub mod db;
pub mod mock;
pub mod process;
pub mod proxy;
pub mod recorder;
pub mod responses_mock;
pub mod scripted;
pub mod snapshot;
pub mod sse;

#[allow(unused_imports)]
pub use mock::*;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use db::TestDb;
use recorder::Recorder;
use serde_json::{json, Value};
use sse::Events;
use threadline::clock::Clock;
use threadline::config::{Config, DefaultUpstream, KeyEntry, Limits, Secret, UpstreamConfig};
use threadline::engine::Engine;
use threadline::model::{Item, Pieces, Response as ModelResponse};
use threadline::store::{NewTurn, Store};

/// Where a test app keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[allow(unused_imports)]
pub use StoreKind::{Postgres, Sqlite};

/// A configured API key of `tenant`.
pub fn key(tenant: &str, key: &str) -> KeyEntry {
    KeyEntry { tenant: tenant.into(), key: Some(Secret(key.into())), key_sha256: None }
}

/// Serves a router (a mock's) on a random loopback port.
pub async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Serves threadline's router on a random loopback port as `threadline serve` does: on its own connections, under
/// the deadlines and the connection cap of `limits`.
pub async fn spawn_app(router: Router, limits: &Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(threadline::connections::serve(listener, router, limits, Default::default()));
    addr
}

/// An upstream config for `url` (`echo` or a base URL), serving every model.
pub fn upstream(url: &str) -> UpstreamConfig {
    UpstreamConfig::single(url, &DefaultUpstream::default())
}

/// Builds a `TestApp`: a store kind (or an existing database), upstreams and config changes.
pub struct Builder {
    store: StoreKind,
    database: Option<Arc<TestDb>>,
    upstreams: Vec<UpstreamConfig>,
    configure: Vec<ConfigChange>,
    clock: Clock,
}

/// A change to the config of a test app.
type ConfigChange = Box<dyn FnOnce(&mut Config)>;

impl Builder {
    /// Keeps the data in a fresh database of this kind (SQLite by default).
    pub fn store(mut self, kind: StoreKind) -> Self {
        self.store = kind;
        self
    }

    /// Keeps the data in this database (shared with another app, or surviving a restart).
    pub fn database(mut self, database: Arc<TestDb>) -> Self {
        self.database = Some(database);
        self
    }

    /// Adds an upstream: `echo` or a base URL, serving every model not served by an earlier one.
    pub fn upstream(mut self, url: &str) -> Self {
        self.upstreams.push(upstream(url));
        self
    }

    /// Changes the config before the app starts.
    pub fn config(mut self, change: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Starts the app; `None` (skip the test) only for Postgres when no test server is configured outside CI.
    pub async fn start(self) -> Option<TestApp> {
        // The server's warnings and errors show in the output of a failing test.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
        let database = match self.database {
            Some(database) => database,
            None => Arc::new(TestDb::create(self.store).await?),
        };
        let mut config =
            Config { database_url: database.url().to_string(), upstreams: self.upstreams, ..Config::default() };
        for change in self.configure {
            change(&mut config);
        }
        let inner = threadline::open_store(&config, self.clock.clone()).await.unwrap();
        let store = Arc::new(Recorder::new(inner));
        let app = threadline::build_app_with_store(&config, store.clone()).await.unwrap();
        let addr = spawn_app(app.router, &config.limits).await;
        let base = format!("http://{addr}");
        let clock = self.clock;
        Some(TestApp { base, engine: app.engine, store, database, clock, client: reqwest::Client::new() })
    }
}

/// A running threadline over a database of its own.
pub struct TestApp {
    pub base: String,
    pub engine: Arc<Engine>,
    /// The store, wrapped to report writes and count reads.
    pub store: Arc<Recorder>,
    pub database: Arc<TestDb>,
    /// The clock of its store: `app.clock.advance(…)` makes stored data older.
    pub clock: Clock,
    pub client: reqwest::Client,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            store: StoreKind::Sqlite,
            database: None,
            upstreams: Vec::new(),
            configure: Vec::new(),
            clock: Clock::default(),
        }
    }

    /// threadline in front of one upstream at `url` (or `echo`), on a fresh SQLite database.
    pub async fn start(url: &str) -> Self {
        Self::builder().upstream(url).start().await.unwrap()
    }

    /// Waits (at most 10 s, then fails) until the next turn is stored, and returns its id.
    pub async fn next_saved(&self) -> String {
        self.store.next_saved().await
    }

    /// Posts a body and returns the open event stream, asserting a 200 `text/event-stream` answer.
    pub async fn stream(&self, path: &str, body: Value) -> Events {
        Events::new(self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap())
    }

    /// GETs a path and returns the open event stream.
    pub async fn stream_get(&self, path: &str) -> Events {
        Events::new(self.client.get(format!("{}{path}", self.base)).send().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        decode(self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        decode(self.client.post(format!("{}{path}", self.base)).body(body).send().await.unwrap()).await
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

    /// Creates `input` on model `m` continuing `previous` and returns the new id.
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

/// A user message item with one text part.
pub fn user_item(text: &str) -> Item {
    use threadline::model::{new_id, ContentPart, ItemStatus, Message, Role};
    let content = vec![ContentPart::InputText { text: text.into() }];
    Item::Message(Message { id: new_id("msg"), status: ItemStatus::Completed, role: Role::User, content, phase: None })
}

/// An assistant message item with one output text part.
pub fn assistant_item(text: &str) -> Item {
    use threadline::model::{new_id, ContentPart, ItemStatus, Message, Role};
    let content = vec![ContentPart::output_text(text)];
    Item::Message(Message {
        id: new_id("msg"),
        status: ItemStatus::Completed,
        role: Role::Assistant,
        content,
        phase: None,
    })
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
    let turn = NewTurn { response, input, tokens: &[], pieces, store_response: true, conversation: None };
    store.save_turn(tenant, turn).await.unwrap();
}
