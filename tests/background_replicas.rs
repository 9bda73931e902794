//! Background responses across server processes: two replicas on one Postgres database run a burst of queued
//! responses exactly once each and cancel each other's runs; a replica killed with SIGKILL leaves nothing queued or
//! running for good — the lease of its run lapses and another marks it failed, and its queued work runs elsewhere —
//! and a SQLite server killed the same way does the same for itself when it starts again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::db::TestDb;
use common::process::ServerProcess;
use common::*;
use serde_json::{json, Value};
use sqlx::Connection;
use threadline::engine::INTERRUPTED;

/// A server process on `database_url` in front of `upstream`, polling every 50 ms, with this background `lease`
/// (and `env`).
async fn replica(database_url: &str, upstream: &str, lease: &str, env: &[(&str, &str)]) -> ServerProcess {
    let mut variables = vec![("THREADLINE_BACKGROUND__POLL_INTERVAL", "50ms"), ("THREADLINE_BACKGROUND__LEASE", lease)];
    variables.extend_from_slice(env);
    ServerProcess::start(&["--upstream", upstream, "--database-url", database_url], &variables).await
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}")).await.unwrap().json().await.unwrap()
}

/// Queues a background response on `base` and returns its id.
async fn queue(base: &str, input: &str) -> String {
    let (status, queued) = post(base, "/v1/responses", json!({"model": "m", "input": input, "background": true})).await;
    assert_eq!((status, &queued["status"]), (200, &json!("queued")), "{queued}");
    queued["id"].as_str().unwrap().to_string()
}

/// The events of response `id` read through `base`: the first `count`, or all of them until it ends.
async fn events(base: &str, id: &str, count: Option<usize>) -> Vec<Value> {
    let response = reqwest::get(format!("{base}/v1/responses/{id}?stream=true")).await.unwrap();
    let mut events = sse::Events::new(response);
    let mut read = Vec::new();
    while count.is_none_or(|count| read.len() < count) {
        match events.next().await {
            Some(frame) if frame.data == "[DONE]" => break,
            Some(frame) => read.push(frame.json()),
            None => break,
        }
    }
    read
}

/// How many responses are still queued or running, and how many runs are left, as the database has them.
async fn unfinished(database: &TestDb) -> (i64, i64) {
    const RESPONSES: &str = "SELECT COUNT(*) FROM responses WHERE status IN ('queued', 'in_progress')";
    const RUNS: &str = "SELECT COUNT(*) FROM background_runs";
    match database {
        TestDb::Postgres(db) => {
            let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let responses: (i64,) = sqlx::query_as(RESPONSES).fetch_one(&mut connection).await.unwrap();
            let runs: (i64,) = sqlx::query_as(RUNS).fetch_one(&mut connection).await.unwrap();
            (responses.0, runs.0)
        }
        TestDb::Sqlite { url, .. } => {
            let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
            let responses: (i64,) = sqlx::query_as(RESPONSES).fetch_one(&mut connection).await.unwrap();
            let runs: (i64,) = sqlx::query_as(RUNS).fetch_one(&mut connection).await.unwrap();
            (responses.0, runs.0)
        }
    }
}

fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().unwrap();
    messages.iter().rev().find(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_replicas_run_a_burst_of_fifty_each_exactly_once() {
    let Some(database) = TestDb::postgres().await else { return };
    let mock = MockUpstream::start().await;
    let a = replica(database.url(), &mock.url, "30s", &[]).await;
    let b = replica(database.url(), &mock.url, "30s", &[]).await;
    let bases = [a.base.clone(), b.base.clone()];
    let created = (0..50).map(|i| {
        let base = bases[i % 2].clone();
        async move { queue(&base, &format!("job-{i}")).await }
    });
    let ids = futures::future::join_all(created).await;
    for (i, id) in ids.iter().enumerate() {
        // Followed through the other replica than the one that accepted it.
        let events = events(&bases[(i + 1) % 2], id, None).await;
        assert_eq!(events.last().unwrap()["type"], "response.completed", "{:?}", events.last());
        let stored = get(&bases[i % 2], &format!("/v1/responses/{id}")).await;
        assert_eq!(stored["output"][0]["content"][0]["text"], format!("answer to job-{i}"));
    }
    let mut asked: Vec<String> = mock.take().iter().map(last_user_text).collect();
    asked.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("job-{i}")).collect();
    expected.sort();
    assert_eq!(asked, expected, "each queued response reaches the upstream exactly once");
    assert_eq!(unfinished(&database).await, (0, 0));
}

#[tokio::test]
async fn a_cancel_through_one_replica_stops_the_run_on_the_other() {
    let Some(database) = TestDb::postgres().await else { return };
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("partial"), Step::Gate, text(" rest"), finish("stop"), DONE]));
    let a = replica(database.url(), &mock.url, "30s", &[]).await;
    let id = queue(&a.base, "go").await;
    // Running on A: its first delta is out.
    let started = events(&a.base, &id, Some(6)).await;
    assert_eq!(started[5]["delta"], "partial");
    let b = replica(database.url(), &mock.url, "30s", &[]).await;
    let asked = Instant::now();
    let (status, cancelled) = post(&b.base, &format!("/v1/responses/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["output"][0]["content"][0]["text"], "partial");
    mock.wait_cut().await;
    eprintln!("the run on the other replica stopped {:?} after the cancel", asked.elapsed());
    assert_eq!(get(&a.base, &format!("/v1/responses/{id}")).await, cancelled);
    assert_eq!(unfinished(&database).await, (0, 0));
}

/// A server killed while it runs one background response and has another queued: another server (a replica, or the
/// same one started again) marks the first failed once its lease lapses, and runs the second.
async fn a_killed_server_leaves_nothing_unfinished(database: TestDb) {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Held);
    let mut first = replica(database.url(), &mock.url, "1s", &[("THREADLINE_BACKGROUND__WORKERS", "1")]).await;
    let running = queue(&first.base, "first").await;
    let waiting = queue(&first.base, "second").await;
    let started = events(&first.base, &running, Some(3)).await;
    assert_eq!(started[2]["type"], "response.in_progress");
    first.kill();
    first.wait_exit().await;
    mock.set(Behavior::Answer);
    let second = replica(database.url(), &mock.url, "30s", &[]).await;
    let ended = events(&second.base, &running, None).await;
    let types: Vec<&str> = ended.iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["response.created", "response.queued", "response.in_progress", "error", "response.failed"]);
    let failed = get(&second.base, &format!("/v1/responses/{running}")).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], json!({"code": "server_error", "message": INTERRUPTED}));
    let ran = events(&second.base, &waiting, None).await;
    assert_eq!(ran.last().unwrap()["type"], "response.completed");
    let done = get(&second.base, &format!("/v1/responses/{waiting}")).await;
    assert_eq!(done["output"][0]["content"][0]["text"], "answer to second");
    assert_eq!(unfinished(&database).await, (0, 0));
}

#[tokio::test]
async fn a_killed_replicas_run_fails_by_its_lease_and_its_queue_runs_on_another() {
    let Some(database) = TestDb::postgres().await else { return };
    a_killed_server_leaves_nothing_unfinished(database).await;
}

#[tokio::test]
async fn a_killed_sqlite_server_ends_its_runs_when_it_starts_again() {
    a_killed_server_leaves_nothing_unfinished(TestDb::sqlite()).await;
}
