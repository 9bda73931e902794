//! Stopping the server (SIGTERM) never loses a turn: it stops accepting, waits for running turns — also those
//! whose client hung up — to be stored, and past the drain timeout says which turns it had to give up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::ServerProcess;
use common::{finish, text, usage, Behavior, MockUpstream, Step, DONE};
use serde_json::json;

/// Starts a streamed turn on `server`, reads its id and first delta, and hangs up.
async fn start_turn_and_hang_up(server: &ServerProcess) -> String {
    let client = reqwest::Client::new();
    let body = json!({"model": "m", "input": "q", "stream": true});
    let response = client.post(format!("{}/v1/responses", server.base)).json(&body).send().await.unwrap();
    let mut events = common::sse::Events::new(response);
    let id = events.next_json().await["response"]["id"].as_str().unwrap().to_string();
    while events.next_json().await["type"] != "response.output_text.delta" {}
    id
}

#[tokio::test]
async fn a_turn_whose_client_hung_up_is_stored_before_the_process_exits() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("threadline.db").display());
    let args = ["--upstream-url", &mock.url, "--database-url", &database];
    let mut server = ServerProcess::start(&args, &[]).await;

    // Work spawned for a request logs inside that request's span.
    mock.set(Behavior::Stream(vec![text("par")]));
    let client = reqwest::Client::new();
    let failing = json!({"model": "m", "input": "q", "stream": true});
    client.post(format!("{}/v1/responses", server.base)).json(&failing).send().await.unwrap().text().await.unwrap();
    let line = server.wait_for_log("upstream failed mid-stream").await;
    assert!(line.contains("request{method=POST uri=/v1/responses"), "{line}");

    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, text(" second"), finish("stop"), usage(3, 2), DONE]));
    let id = start_turn_and_hang_up(&server).await;
    server.terminate();
    let line = server.wait_for_log("shutting down").await;
    assert!(line.contains(&id), "the running turn is named: {line}");
    mock.release();
    let (status, last_lines) = server.wait_exit().await;
    assert!(status.success(), "{status}");
    assert!(last_lines.iter().any(|line| line.contains("every turn is stored; stopped")), "{last_lines:?}");

    let restarted = ServerProcess::start(&args, &[]).await;
    let stored: serde_json::Value =
        client.get(format!("{}/v1/responses/{id}", restarted.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["status"], "completed", "{stored}");
    assert_eq!(stored["output"][0]["content"][0]["text"], "first second");
}

#[tokio::test]
async fn past_the_drain_timeout_the_process_exits_and_names_the_lost_turns() {
    let mock = MockUpstream::start().await;
    mock.set(Behavior::Stream(vec![text("first"), Step::Gate, finish("stop"), DONE]));
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("threadline.db").display());
    let args = ["--upstream-url", &mock.url, "--database-url", &database];
    let mut server = ServerProcess::start(&args, &[("THREADLINE_DRAIN_TIMEOUT", "300ms")]).await;
    let id = start_turn_and_hang_up(&server).await;
    server.terminate();
    let (status, last_lines) = server.wait_exit().await;
    assert!(status.success(), "{status}");
    let lost = last_lines.iter().find(|line| line.contains("drain timeout reached")).expect("a warning");
    assert!(lost.contains(&id), "{lost}");
}
