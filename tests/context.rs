//! Long conversations: context windows (from the upstream's model list), `truncation` disabled and auto, backend
//! overflow errors, compaction (in a turn, reused by later turns and branches; and `/v1/responses/compact`), and
//! `/v1/responses/input_tokens` — with the exact messages the upstream receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_error, is_summary_request, msg, Behavior, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::model::{new_id, Response as ModelResponse};
use threadline::store::{NewTurn, Store};
use threadline::tokens::TokenCounter;

/// A text of `words` one-token words.
fn words(words: usize) -> String {
    vec!["apple"; words].join(" ")
}

/// A mock upstream whose model `m` has a window of `window` tokens, and threadline in front of it.
async fn windowed(window: u64, store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    mock.set_models(
        json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "context_length": window}]),
    );
    let server = TestApp::builder().store(store).upstream(&mock.url).start().await?;
    Some((mock, server))
}

/// Creates a turn and returns its id, asserting success.
async fn turn(server: &TestApp, body: Value) -> String {
    server.create(body).await["id"].as_str().unwrap().to_string()
}

/// Two turns of 200 words each, stored (with their 200-word answers) in a window of 1000 tokens.
async fn two_long_turns(server: &TestApp, mock: &MockUpstream) -> String {
    let r1 = turn(server, json!({"model": "m", "input": words(200)})).await;
    let r2 =
        turn(server, json!({"model": "m", "input": format!("b {}", words(199)), "previous_response_id": r1})).await;
    mock.take();
    r2
}

#[rstest]
#[tokio::test]
async fn a_context_past_the_window_is_a_400_without_an_upstream_call(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = windowed(1000, store).await else { return };
    let r2 = two_long_turns(&server, &mock).await;
    let body = json!({"model": "m", "input": format!("c {}", words(199)), "previous_response_id": r2});
    let got = server.post("/v1/responses", body).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    assert_eq!(
        got.1["error"]["message"],
        "Your input exceeds the context window of this model. Please adjust your input and try again."
    );
    assert_eq!(mock.take(), Vec::<Value>::new());
}

#[rstest]
#[tokio::test]
async fn truncation_auto_drops_the_oldest_whole_turns(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = windowed(1000, store).await else { return };
    let r2 = two_long_turns(&server, &mock).await;
    let (b, c) = (format!("b {}", words(199)), format!("c {}", words(199)));
    let response =
        server.create(json!({"model": "m", "input": c, "previous_response_id": r2, "truncation": "auto"})).await;
    assert_eq!(response["truncation"], "auto");
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", &b), msg("assistant", &format!("answer to {b}")), msg("user", &c)]
    );
}

#[tokio::test]
async fn truncation_keeps_instructions_and_system_messages() {
    let (mock, server) = windowed(1000, Sqlite).await.unwrap();
    let input = json!([msg("system", "Be brief."), msg("user", &words(200))]);
    let r1 = turn(&server, json!({"model": "m", "input": input})).await;
    let b = format!("b {}", words(199));
    let r2 = turn(&server, json!({"model": "m", "input": b, "previous_response_id": r1})).await;
    mock.take();
    let c = format!("c {}", words(199));
    let body = json!({"model": "m", "input": c, "previous_response_id": r2, "truncation": "auto", "instructions": "Answer in French."});
    server.create(body).await;
    assert_eq!(
        mock.only_messages(),
        vec![
            msg("system", "Answer in French."),
            msg("system", "Be brief."),
            msg("user", &b),
            msg("assistant", &format!("answer to {b}")),
            msg("user", &c),
        ]
    );
}

#[tokio::test]
async fn a_cut_never_leaves_a_function_output_without_its_call() {
    let (mock, server) = windowed(1000, Sqlite).await.unwrap();
    mock.set(common::calls(&[("call_1", "lookup", "{}")]));
    let r1 = turn(&server, json!({"model": "m", "input": words(200)})).await;
    let output = json!([{"type": "function_call_output", "call_id": "call_1", "output": words(150)}]);
    let r2 = turn(&server, json!({"model": "m", "input": output, "previous_response_id": r1})).await;
    mock.take();
    // Dropping the first turn alone would fit, but would leave the second turn's output without its call.
    let c = format!("c {}", words(300));
    server.create(json!({"model": "m", "input": c, "previous_response_id": r2, "truncation": "auto"})).await;
    assert_eq!(mock.only_messages(), vec![msg("user", &c)]);
}

#[rstest]
#[case::openai_vllm(400, json!({"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4900 in the messages, 100 in the completion). Please reduce the length of the messages or completion.", "type": "BadRequestError", "param": null, "code": 400}}))]
#[case::openai_code(400, json!({"error": {"message": "Too long.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}))]
#[case::llama_cpp(400, json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}))]
#[case::ollama(500, json!({"error": {"message": "input length exceeds maximum context length", "type": "api_error"}}))]
#[case::lm_studio(400, json!({"error": "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded with context length of only 4096 tokens, which is not enough. Try to load the model with a larger context length, or provide a shorter input"}))]
#[tokio::test]
async fn a_backends_overflow_error_is_the_same_400(#[case] status: u16, #[case] body: Value) {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.fail_once(status, body.clone());
    let got = server.post("/v1/responses", json!({"model": "m", "input": "hi"})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    // The stateless surface maps it alike.
    mock.fail_once(status, body);
    let got = server.post("/v1/chat/completions", json!({"model": "m", "messages": [msg("user", "hi")]})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
}

#[tokio::test]
async fn with_truncation_auto_a_backends_overflow_drops_half_the_history_and_retries_once() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let mut previous: Option<String> = None;
    for text in ["t1", "t2", "t3", "t4"] {
        previous = Some(turn(&server, json!({"model": "m", "input": text, "previous_response_id": previous})).await);
    }
    mock.take();
    let overflow = json!({"error": {"message": "the request exceeds the available context size, try increasing it"}});
    mock.fail_once(400, overflow.clone());
    let body = json!({"model": "m", "input": "t5", "previous_response_id": previous, "truncation": "auto"});
    server.create(body.clone()).await;
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["messages"].as_array().unwrap().len(), 9);
    let answered = |text: &str| [msg("user", text), msg("assistant", &format!("answer to {text}"))];
    let expected: Vec<Value> = answered("t3").into_iter().chain(answered("t4")).chain([msg("user", "t5")]).collect();
    assert_eq!(bodies[1]["messages"].as_array().unwrap(), &expected);
    // Only once: a second overflow is the client's 400.
    mock.fail_once(400, overflow.clone());
    mock.fail_once(400, overflow);
    let got = server.post("/v1/responses", body).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    assert_eq!(mock.take().len(), 2);
}

/// The summary message threadline sends in place of compacted turns.
fn summary(text: &str) -> Value {
    msg("user", &format!("Summary of the earlier conversation:\n{text}"))
}

/// How many of these upstream requests were summarizations.
fn summarizations(bodies: &[Value]) -> usize {
    bodies.iter().filter(|body| is_summary_request(body)).count()
}

#[rstest]
#[tokio::test]
async fn a_compaction_is_made_once_and_reused_by_every_later_turn_and_branch(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let managed = json!([{"type": "compaction", "compact_threshold": 1000}]);
    let create = |input: String, previous: Option<String>| json!({"model": "m", "input": input, "previous_response_id": previous, "context_management": managed});
    let (mut previous, mut compacted) = (None, None);
    for i in 0..12 {
        let response = server.create(create(format!("{i} {}", words(60)), previous.clone())).await;
        if response["output"][0]["type"] == "compaction" {
            compacted = Some((i, response.clone()));
            break;
        }
        previous = response["id"].as_str().map(str::to_string);
    }
    let (i, response) = compacted.expect("a compaction past 1000 tokens");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{response}");
    assert!(output[0]["id"].as_str().unwrap().starts_with("cmp_"));
    assert!(output[0]["encrypted_content"].as_str().unwrap().starts_with("tl1."));
    assert_eq!(output[1]["type"], "message");
    let bodies = mock.take();
    assert_eq!(summarizations(&bodies), 1);
    // The newest turn within a quarter of the threshold stays as it is.
    let (kept, last) = (format!("{} {}", i - 1, words(60)), format!("{i} {}", words(60)));
    let answer = |text: &str| msg("assistant", &format!("answer to {text}"));
    let compacted = [summary("the story so far"), msg("user", &kept), answer(&kept), msg("user", &last)];
    assert_eq!(bodies.last().unwrap()["messages"].as_array().unwrap(), &compacted);
    // 50 later turns build on the summary without summarizing again.
    let node = response["id"].as_str().unwrap().to_string();
    let mut tip = node.clone();
    for _ in 0..50 {
        tip = turn(&server, create("ok".into(), Some(tip))).await;
    }
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (50, 0));
    let sent = bodies.last().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(sent[..5], [&compacted[..], &[answer(&last)]].concat());
    assert_eq!(sent.len(), 5 + 2 * 49 + 1);
    // So do three branches below the compaction point.
    for n in 0..3 {
        turn(&server, create(format!("branch {n}"), Some(node.clone()))).await;
    }
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (3, 0));
    assert_eq!(bodies[2]["messages"][0], summary("the story so far"));
}

#[tokio::test]
async fn a_compaction_trigger_compacts_the_history_of_that_turn() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let r1 = turn(&server, json!({"model": "m", "input": "u1"})).await;
    let r2 = turn(&server, json!({"model": "m", "input": "u2", "previous_response_id": r1})).await;
    mock.take();
    let input = json!([msg("user", "u3"), {"type": "compaction_trigger"}]);
    let response = server.create(json!({"model": "m", "input": input, "previous_response_id": r2})).await;
    assert_eq!(response["output"][0]["type"], "compaction");
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0]["messages"][1]["content"],
        "User: u1\n\nAssistant: answer to u1\n\nUser: u2\n\nAssistant: answer to u2"
    );
    assert_eq!(bodies[1]["messages"], json!([summary("the story so far"), msg("user", "u3")]));
    // Its input items hold no trigger.
    let (_, items) = server.get(&format!("/v1/responses/{}/input_items", response["id"].as_str().unwrap())).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 1);
    // A trigger anywhere but last is refused.
    let input = json!([{"type": "compaction_trigger"}, msg("user", "u3")]);
    let got = server.post("/v1/responses", json!({"model": "m", "input": input})).await;
    assert_error(&got, 400, Some("invalid_value"), Some("input[0]"));
}

#[rstest]
#[tokio::test]
async fn the_compacted_window_goes_back_as_input_and_the_upstream_gets_the_summary(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let r1 = turn(&server, json!({"model": "m", "input": "u1"})).await;
    let r2 = turn(&server, json!({"model": "m", "input": "u2", "previous_response_id": r1})).await;
    mock.take();
    let (status, compacted) =
        server.post("/v1/responses/compact", json!({"model": "m", "previous_response_id": r2})).await;
    assert_eq!(status, 200, "{compacted}");
    assert_eq!(compacted["object"], "response.compaction");
    let bodies = mock.take();
    assert_eq!(summarizations(&bodies), 1);
    assert_eq!(bodies[0]["messages"][1]["content"], "Assistant: answer to u1\n\nAssistant: answer to u2");
    let output = compacted["output"].as_array().unwrap().clone();
    assert_eq!(output.len(), 3, "{compacted}");
    for (item, text) in output.iter().zip(["u1", "u2"]) {
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "user");
        assert_eq!(item["content"], json!([{"type": "input_text", "text": text}]));
    }
    assert_eq!(output[2]["type"], "compaction");
    assert_eq!(compacted["usage"]["input_tokens"], 11);
    let mut input = output.clone();
    input.push(msg("user", "u3"));
    let response = server.create(json!({"model": "m", "input": input})).await;
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", "u1"), msg("user", "u2"), summary("the story so far"), msg("user", "u3")]
    );
    // Stored as input, the window is the next turn's history.
    turn(&server, json!({"model": "m", "input": "u4", "previous_response_id": response["id"]})).await;
    assert_eq!(mock.only_messages()[2], summary("the story so far"));
    let got = server.post("/v1/responses/compact", json!({"input": "hi"})).await;
    assert_error(&got, 400, Some("missing_required_parameter"), Some("model"));
}

#[tokio::test]
async fn a_forged_or_foreign_compaction_is_refused() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let forged = json!([{"type": "compaction", "encrypted_content": "tl1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, msg("user", "hi")]);
    let got = server.post("/v1/responses", json!({"model": "m", "input": forged})).await;
    assert_error(&got, 400, Some("invalid_encrypted_content"), Some("input"));
    let request = threadline::engine::CompactRequest {
        tenant: "someone-else".into(),
        model: "m".into(),
        input: vec![common::user_item("a secret")],
        instructions: None,
        previous_response_id: None,
        prompt_cache_key: None,
        request_id: None,
    };
    let window = server.engine.compact(request).await.unwrap();
    let foreign = serde_json::to_value(window.output.last().unwrap()).unwrap();
    let got = server.post("/v1/responses", json!({"model": "m", "input": [foreign, msg("user", "hi")]})).await;
    assert_error(&got, 400, Some("invalid_encrypted_content"), Some("input"));
    assert_eq!(summarizations(&mock.take()), 0);
}

#[rstest]
#[tokio::test]
async fn input_tokens_counts_what_a_create_sends(#[values("disabled", "auto")] truncation: &str) {
    // A backend that reports no usage: threadline's count is the usage.
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(Behavior::Message(json!({"role": "assistant", "content": "It is empty."})));
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]);
    let r1 = turn(&server, json!({"model": "m", "input": "What is in the box?", "instructions": "Be brief."})).await;
    let body = json!({"model": "m", "input": [msg("user", "And now?")], "previous_response_id": r1,
        "instructions": "Be brief.", "tools": tools, "truncation": truncation});
    let (status, counted) = server.post("/v1/responses/input_tokens", body.clone()).await;
    assert_eq!(status, 200, "{counted}");
    assert_eq!(counted.as_object().unwrap().len(), 2);
    assert_eq!(counted["object"], "response.input_tokens");
    mock.set(Behavior::Message(json!({"role": "assistant", "content": "Still empty."})));
    let response = server.create(body).await;
    assert_eq!(counted["input_tokens"], response["usage"]["input_tokens"]);
    assert_eq!(response["usage"]["output_tokens"], 3);
    assert!(counted["input_tokens"].as_u64().unwrap() > 20);
    let got = server.post("/v1/responses/input_tokens", json!({"model": "m", "input": "x", "stream": true})).await;
    assert_error(&got, 400, Some("unknown_parameter"), Some("stream"));
    let got =
        server.post("/v1/responses/input_tokens", json!({"model": "m", "previous_response_id": "resp_nope"})).await;
    assert_error(&got, 400, Some("previous_response_not_found"), Some("previous_response_id"));
}

#[tokio::test]
async fn lm_studio_context_length_is_the_window_of_the_chat() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let first = server.post("/api/v1/chat", json!({"model": "m", "input": words(200)})).await.1;
    let b = format!("b {}", words(199));
    let body = json!({"model": "m", "input": b, "previous_response_id": first["response_id"]});
    let second = server.post("/api/v1/chat", body).await.1;
    mock.take();
    let c = format!("c {}", words(199));
    let body = json!({"model": "m", "input": c, "previous_response_id": second["response_id"], "context_length": 1000});
    let (status, _) = server.post("/api/v1/chat", body).await;
    assert_eq!(status, 200);
    assert_eq!(
        mock.only_messages(),
        vec![msg("user", &b), msg("assistant", &format!("answer to {b}")), msg("user", &c)]
    );
}

#[tokio::test]
async fn a_ten_thousand_turn_chain_keeps_going_in_a_4096_token_window() {
    let mock = MockUpstream::start().await;
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "max_model_len": 4096}]));
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.limits.max_chain_depth = 20_000)
        .start()
        .await
        .unwrap();
    let template: ModelResponse =
        serde_json::from_value(server.create(json!({"model": "m", "input": "seed"})).await).unwrap();
    // 9,999 more turns stored as a create stores them, each item with its token count.
    let counter = TokenCounter::default();
    let mut previous = template.id.clone();
    for n in 0..9_999 {
        let input = [common::user_item(&format!("question {n}"))];
        let mut response = template.clone();
        response.id = new_id("resp");
        response.previous_response_id = Some(previous);
        response.output = vec![common::assistant_item(&format!("answer {n}"))];
        let tokens: Vec<u32> = input.iter().chain(&response.output).map(|item| counter.item(item)).collect();
        let turn = NewTurn {
            response: &response,
            input: &input,
            pieces: &vec![vec![]],
            tokens: &tokens,
            store_response: true,
            conversation: None,
        };
        server.store.save_turn("default", turn).await.unwrap();
        previous = response.id;
    }
    mock.take();
    let body = |extra: Value| {
        let mut body = json!({"model": "m", "input": "what now?", "previous_response_id": previous});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    // Disabled: a clean 400, and the upstream is not called.
    let got = server.post("/v1/responses", body(json!({}))).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    assert_eq!(mock.take().len(), 0);
    // Auto: the newest whole turns that fit three quarters of the window.
    let response = server.create(body(json!({"truncation": "auto"}))).await;
    assert_eq!(response["status"], "completed");
    let sent = mock.only_messages();
    assert_eq!(sent[0], msg("user", &format!("question {}", 9_999 - (sent.len() - 1) / 2)));
    assert_eq!(sent[sent.len() - 2], msg("assistant", "answer 9998"));
    assert_eq!(sent.last().unwrap(), &msg("user", "what now?"));
    assert!((100..1000).contains(&sent.len()), "{}", sent.len());
    // Compaction: one summary of the turns, then every later turn builds on it.
    let managed = json!({"context_management": [{"type": "compaction", "compact_threshold": 2000}]});
    let response = server.create(body(managed.clone())).await;
    assert_eq!(response["output"][0]["type"], "compaction");
    let bodies = mock.take();
    assert_eq!((bodies.len(), summarizations(&bodies)), (2, 1));
    assert_eq!(bodies[1]["messages"][0], summary("the story so far"));
    let next = json!({"model": "m", "input": "and then?", "previous_response_id": response["id"], "context_management": managed["context_management"]});
    server.create(next).await;
    let sent = mock.only_messages();
    assert_eq!(sent[0], summary("the story so far"));
    assert!(sent.len() < 400, "{}", sent.len());
}
