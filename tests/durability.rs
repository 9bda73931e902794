//! A turn acknowledged to a client is on disk: `kill -9` under load loses none of them, on either store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::db::TestDb;
use common::process::ServerProcess;
use common::{Postgres, Sqlite, StoreKind};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::model::ResponseStatus;
use tokio::sync::Notify;

/// Concurrent clients, each continuing its own chain.
const CLIENTS: usize = 16;
/// Acknowledged turns to wait for before the kill.
const ACKNOWLEDGED: usize = 200;

/// Continues a chain until the server goes; returns the acknowledged turns: `(id, what the client said)`.
async fn client(base: String, n: usize, acknowledged: Arc<Mutex<usize>>, enough: Arc<Notify>) -> Vec<(String, String)> {
    let http = reqwest::Client::new();
    let mut turns: Vec<(String, String)> = Vec::new();
    loop {
        let said = format!("client {n} turn {}", turns.len());
        let previous = turns.last().map(|(id, _)| id.clone());
        let body = json!({"model": "m", "input": said, "previous_response_id": previous});
        let Ok(response) = http.post(format!("{base}/v1/responses")).json(&body).send().await else { break };
        let Ok(answer) = response.json::<Value>().await else { break };
        assert_eq!(answer["status"], "completed", "{answer}");
        turns.push((answer["id"].as_str().unwrap().to_string(), said));
        let mut count = acknowledged.lock().unwrap();
        *count += 1;
        if *count == ACKNOWLEDGED {
            enough.notify_one();
        }
    }
    turns
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_under_load_loses_no_acknowledged_turn(#[values(Sqlite, Postgres)] kind: StoreKind) {
    let Some(db) = TestDb::create(kind).await else { return };
    let mut server = ServerProcess::start(&["--upstream-url", "echo", "--database-url", db.url()], &[]).await;
    let (acknowledged, enough) = (Arc::new(Mutex::new(0)), Arc::new(Notify::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(server.base.clone(), n, acknowledged.clone(), enough.clone())))
        .collect();
    enough.notified().await;
    server.kill();
    let store = db.open().await;
    let mut checked = 0;
    for client in clients {
        let turns = client.await.unwrap();
        for (depth, (id, said)) in turns.iter().enumerate() {
            let (response, _) = store.response("default", id).await.unwrap().expect("an acknowledged turn was lost");
            assert_eq!(response.status, ResponseStatus::Completed);
            let history = store.history("default", id, 10_000).await.unwrap().unwrap();
            let items = history.items();
            assert_eq!(items.len(), 2 * (depth + 1), "{id}");
            assert_eq!(items[2 * depth].text(), *said);
            checked += 1;
        }
    }
    assert!(checked >= ACKNOWLEDGED, "{checked}");
}
