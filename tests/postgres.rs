//! Scale-out on Postgres: two server processes sharing one database, 100 concurrent branches, a database
//! outage (503, then recovery with nothing lost) and a database that comes up after the server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::db::PostgresDb;
use common::proxy::Proxy;
use common::{assert_error, config_for, upstream, TestServer};
use serde_json::{json, Value};

/// A `threadline serve` process with the echo model.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    /// Starts a process on `database_url`; returns once it listens.
    fn start(database_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_threadline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "echo", "--database-url", database_url])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on ") {
                    let rest = &line[at + "listening on ".len()..];
                    let _ = sender.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let base = receiver.recv_timeout(Duration::from_secs(60)).expect("the replica did not start listening");
        Self { child, base }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(client: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn output_text(response: &Value) -> &str {
    response["output"][0]["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn two_replicas_share_chains_and_deletes() {
    let Some(db) = PostgresDb::create().await else { return };
    // Both start at once on a fresh database: the migrations run once, under an advisory lock.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Replica::start(&db.url));
        let b = s.spawn(|| Replica::start(&db.url));
        (a.join().unwrap(), b.join().unwrap())
    });
    let client = reqwest::Client::new();
    let mut previous: Option<String> = None;
    for (n, replica) in [&a, &b, &a, &b].into_iter().enumerate() {
        let body = json!({"model": "echo", "input": format!("u{}", n + 1), "previous_response_id": previous});
        let (status, response) = post(&client, &replica.base, "/v1/responses", body).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(
            output_text(&response),
            format!("echo: u{} [turn {}, {} messages in context]", n + 1, n + 1, 2 * n + 1)
        );
        previous = response["id"].as_str().map(str::to_string);
    }
    let tip = previous.unwrap();
    let deleted = client.delete(format!("{}/v1/responses/{tip}", a.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let got = client.get(format!("{}/v1/responses/{tip}", b.base)).send().await.unwrap();
    assert_eq!(got.status(), 404);
    let got =
        post(&client, &b.base, "/v1/responses", json!({"model": "echo", "input": "x", "previous_response_id": tip}))
            .await;
    assert_error(&got, 400, Some("previous_response_not_found"), Some("previous_response_id"));
}

#[tokio::test]
async fn a_hundred_concurrent_branches_each_see_their_own_history() {
    let Some(db) = PostgresDb::create().await else { return };
    let server = TestServer::with_config(config_for(&db.url, vec![upstream("echo")])).await;
    let root = server.turn("root", None).await;
    let branches = futures::future::join_all((0..100).map(|n| {
        let (server, root) = (&server, root.clone());
        async move {
            let body = json!({"model": "m", "input": format!("b{n}"), "previous_response_id": root});
            (n, server.post("/v1/responses", body).await)
        }
    }))
    .await;
    for (n, (status, response)) in branches {
        assert_eq!(status, 200, "{response}");
        assert_eq!(output_text(&response), format!("echo: b{n} [turn 2, 3 messages in context]"));
        let id = response["id"].as_str().unwrap();
        let next = server.create(json!({"model": "m", "input": "again", "previous_response_id": id})).await;
        assert_eq!(output_text(&next), "echo: again [turn 3, 5 messages in context]");
        let history = server.engine.store().history("default", id, 10).await.unwrap().unwrap();
        let texts: Vec<String> = history.items.iter().map(|item| item.text()).collect();
        assert_eq!(
            texts,
            [
                "root".to_string(),
                "echo: root [turn 1, 1 messages in context]".into(),
                format!("b{n}"),
                format!("echo: b{n} [turn 2, 3 messages in context]"),
            ]
        );
    }
}

#[tokio::test]
async fn a_database_outage_is_a_503_and_service_resumes_with_nothing_lost() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), true).await;
    let mut config = config_for(&db.url_via(proxy.addr), vec![upstream("echo")]);
    config.database.acquire_timeout_secs = 1.0;
    let server = TestServer::with_config(config).await;
    let first = server.turn("before", None).await;

    proxy.cut().await;
    let got =
        server.post("/v1/responses", json!({"model": "m", "input": "during", "previous_response_id": first})).await;
    assert_error(&got, 503, Some("storage_unavailable"), None);
    assert_eq!(got.1["error"]["type"], "server_error");
    assert_error(&server.get(&format!("/v1/responses/{first}")).await, 503, Some("storage_unavailable"), None);
    assert_error(&server.get("/readyz").await, 503, Some("storage_unavailable"), None);
    assert_eq!(server.get("/healthz").await.0, 200);

    proxy.restore();
    assert_eq!(server.get("/readyz").await.0, 200);
    let after = server.create(json!({"model": "m", "input": "after", "previous_response_id": first})).await;
    assert_eq!(output_text(&after), "echo: after [turn 2, 3 messages in context]");
    let (status, stored) = server.get(&format!("/v1/responses/{first}")).await;
    assert_eq!((status, output_text(&stored)), (200, "echo: before [turn 1, 1 messages in context]"));
}

#[tokio::test]
async fn the_server_waits_for_a_database_that_starts_later() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), false).await;
    let mut config = config_for(&db.url_via(proxy.addr), vec![upstream("echo")]);
    config.database.startup_timeout_secs = 60.0;
    let starting = tokio::spawn(async move { threadline::build_app(&config).await.map(|app| app.engine) });
    proxy.refused_at_least(2).await;
    assert!(!starting.is_finished());
    proxy.restore();
    let engine = starting.await.unwrap().expect("the server starts once the database is up");
    engine.store().ping().await.unwrap();
}

#[tokio::test]
async fn a_database_that_never_comes_up_fails_the_start_clearly() {
    let Some(db) = PostgresDb::create().await else { return };
    let proxy = Proxy::start(db.server_addr(), false).await;
    let mut config = config_for(&db.url_via(proxy.addr), vec![upstream("echo")]);
    config.database.startup_timeout_secs = 0.0;
    let err = threadline::build_app(&config).await.err().expect("the start fails");
    assert_eq!(err.to_string(), "cannot open the database");
}
