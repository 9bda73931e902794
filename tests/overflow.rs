//! Backends' overflow answers and windows nothing reports: the backend's numbers relayed to the client, a turn with
//! `truncation: "auto"` fitted again to them and the following turns fitted to them the first time, a model whose
//! window is unknown sent whole, and a silent upstream costing one timeout, not two. The overflow bodies are the
//! real backends' (llama.cpp's as b11434 answered here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{assert_error, msg, words, Behavior, MockUpstream, TestApp};
use rstest::rstest;
use serde_json::{json, Value};

/// llama.cpp server's answer to a prompt of `prompt` tokens in a context of `window`.
fn llama_cpp_overflow(prompt: u64, window: u64) -> Value {
    json!({"error": {"code": 400, "message": format!("request ({prompt} tokens) exceeds the available context size \
        ({window} tokens), try increasing it"), "type": "exceed_context_size_error", "n_prompt_tokens": prompt,
        "n_ctx": window}})
}

/// The 400 a client gets for a context too long, ending with `numbers`.
fn too_long(numbers: &str) -> Value {
    json!({"error": {"message": format!("Your input exceeds the context window of this model{numbers}. Please adjust \
        your input and try again."), "type": "invalid_request_error", "param": "input",
        "code": "context_length_exceeded"}})
}

#[rstest]
#[case::llama_cpp(
    400,
    llama_cpp_overflow(833, 512),
    ": the backend counted 833 tokens, and its context window is 512 tokens"
)]
#[case::vllm(400, json!({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4900 in the messages, 100 in the completion). Please reduce the length of the messages or completion.", "type": "BadRequestError", "param": null, "code": 400}), ": the backend counted 4900 tokens, and its context window is 4096 tokens")]
#[case::openai(400, json!({"error": {"message": "Your input exceeds the context window of this model. Please adjust your input and try again.", "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}), "")]
#[case::anthropic_style(400, json!({"error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}}), ": the backend counted 210000 tokens, and its context window is 200000 tokens")]
#[tokio::test]
async fn without_truncation_the_400_keeps_the_backends_numbers(
    #[case] status: u16,
    #[case] body: Value,
    #[case] numbers: &str,
) {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.fail_once(status, body.clone());
    assert_eq!(server.post("/v1/responses", json!({"model": "m", "input": "hi"})).await, (400, too_long(numbers)));
    // The stateless surface relays it alike.
    mock.fail_once(status, body);
    let got = server.post("/v1/chat/completions", json!({"model": "m", "messages": [msg("user", "hi")]})).await;
    assert_eq!(got, (400, too_long(numbers)));
}

/// Creates a turn and returns its id.
async fn turn(server: &TestApp, input: &str, previous: Option<&str>) -> String {
    let body = json!({"model": "m", "input": input, "previous_response_id": previous, "max_output_tokens": 16});
    server.create(body).await["id"].as_str().unwrap().to_string()
}

/// The tokens `/v1/responses/input_tokens` counts for `input` after `previous`.
async fn input_tokens(server: &TestApp, input: &str, previous: &str) -> u64 {
    let body = json!({"model": "m", "input": input, "previous_response_id": previous});
    let (status, counted) = server.post("/v1/responses/input_tokens", body).await;
    assert_eq!(status, 200, "{counted}");
    counted["input_tokens"].as_u64().unwrap()
}

/// The messages of turns `first..=last` (`t1` answered `answer to t1`, …).
fn turns(first: usize, last: usize) -> Vec<Value> {
    (first..=last).flat_map(|n| [msg("user", &format!("t{n}")), msg("assistant", &format!("answer to t{n}"))]).collect()
}

#[tokio::test]
async fn truncation_auto_fits_again_to_the_backends_numbers_and_the_next_turns_fit_the_first_time() {
    // The mock lists no window for `m`: nothing is known until the backend's answer.
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let mut ids = vec![turn(&server, "t1", None).await];
    for n in 2..=8 {
        let id = turn(&server, &format!("t{n}"), ids.last().map(String::as_str)).await;
        ids.push(id);
    }
    // Turns t1..t8 count alike: the context of t9 after turn k is `base + k * per_turn` tokens by threadline's count.
    let (after_1, after_2) = (input_tokens(&server, "t9", &ids[0]).await, input_tokens(&server, "t9", &ids[1]).await);
    let per_turn = after_2 - after_1;
    let base = after_1 - per_turn;
    let sent = input_tokens(&server, "t9", &ids[7]).await;
    assert_eq!(sent, base + 8 * per_turn);
    // The backend counts twice as many tokens, and its window holds the reply's 16 and three turns of history.
    let fits_three = base + 3 * per_turn + per_turn / 2;
    let window = 2 * fits_three + 16;
    mock.take();
    mock.fail_once(400, llama_cpp_overflow(2 * sent, window));
    let body = json!({"model": "m", "input": "t9", "previous_response_id": ids[7], "truncation": "auto",
        "max_output_tokens": 16});
    let ninth = server.create(body).await;
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["messages"].as_array().unwrap(), &[turns(1, 8), vec![msg("user", "t9")]].concat());
    assert_eq!(bodies[1]["messages"].as_array().unwrap(), &[turns(6, 8), vec![msg("user", "t9")]].concat());
    // The next turn is fitted to those numbers at once: one call.
    let body = json!({"model": "m", "input": "t10", "previous_response_id": ninth["id"], "truncation": "auto",
        "max_output_tokens": 16});
    server.create(body).await;
    assert_eq!(mock.only_messages(), [turns(7, 9), vec![msg("user", "t10")]].concat());
    // And a count is in the backend's tokens now.
    assert_eq!(input_tokens(&server, "t9", &ids[1]).await, 2 * after_2);
}

#[tokio::test]
async fn without_numbers_half_the_history_is_dropped() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let mut previous: Option<String> = None;
    for n in 1..=4 {
        previous = Some(turn(&server, &format!("t{n}"), previous.as_deref()).await);
    }
    mock.take();
    mock.fail_once(400, json!({"error": {"message": "input length exceeds maximum context length"}}));
    let body = json!({"model": "m", "input": "t5", "previous_response_id": previous, "truncation": "auto"});
    server.create(body).await;
    let bodies = mock.take();
    assert_eq!(bodies[1]["messages"].as_array().unwrap(), &[turns(3, 4), vec![msg("user", "t5")]].concat());
}

#[tokio::test]
async fn a_model_whose_window_nothing_reports_is_sent_whole_and_the_backend_decides() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    // Far past the 8,192 tokens once assumed for such a model.
    let long = words(20_000);
    let response = server.create(json!({"model": "m", "input": long})).await;
    assert_eq!(response["status"], "completed");
    assert_eq!(mock.only_messages(), vec![msg("user", &long)]);
}

#[tokio::test]
async fn a_silent_upstream_costs_the_discovery_wait_and_one_timeout_and_says_how_long_it_waited() {
    let mock = MockUpstream::start().await;
    mock.hang_models();
    mock.set(Behavior::Hang);
    let configure = |c: &mut threadline::config::Config| c.upstreams[0].timeout = Duration::from_secs(3);
    let server = TestApp::builder().upstream(&mock.url).config(configure).start().await.unwrap();
    let got = server.post("/v1/responses", json!({"model": "m", "input": "x"})).await;
    assert_error(&got, 504, None, None);
    // Discovery gave up after 2 s, the completion after its 3 s: 5 s in all, not twice the timeout.
    assert_eq!(got.1["error"]["message"], "Upstream 'default' did not answer within 5s.");
}
