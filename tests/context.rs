//! Long conversations: context windows (from the upstream's model list, the config, LM Studio's `context_length`),
//! `truncation` disabled and auto, backends' overflow errors, the models' strategies, `/v1/responses/input_tokens`,
//! and a 10,000-turn chain in a 4,096-token window — with the exact messages the upstream receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    assert_error, msg, summarizations, summary, words, Behavior, MockUpstream, Postgres, Sqlite, StoreKind, TestApp,
};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::model::{new_id, Response as ModelResponse};
use threadline::store::{NewTurn, Store};
use threadline::tokens::TokenCounter;

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
        "Your input exceeds the context window of this model: it is 1027 tokens, and 750 fit (the window is 1000 \
         tokens, 250 kept for the output). Please adjust your input and try again."
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

#[tokio::test]
async fn a_models_last_turns_strategy_sends_only_its_latest_turns() {
    let mock = MockUpstream::start().await;
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| {
            let entry = json!({"models": ["m*"], "strategy": "last_turns", "last_turns": 2});
            config.context.models = vec![serde_json::from_value(entry).unwrap()];
        })
        .start()
        .await
        .unwrap();
    let mut previous: Option<String> = None;
    for text in ["t1", "t2", "t3", "t4"] {
        previous = Some(turn(&server, json!({"model": "m", "input": text, "previous_response_id": previous})).await);
    }
    mock.take();
    turn(&server, json!({"model": "m", "input": "t5", "previous_response_id": previous})).await;
    let answered = |text: &str| [msg("user", text), msg("assistant", &format!("answer to {text}"))];
    let expected: Vec<Value> = answered("t3").into_iter().chain(answered("t4")).chain([msg("user", "t5")]).collect();
    assert_eq!(mock.only_messages(), expected);
}

#[tokio::test]
async fn a_configured_window_wins_over_the_upstreams() {
    let mock = MockUpstream::start().await;
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "context_length": 100}]));
    let server = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| {
            config.context.models = vec![serde_json::from_value(json!({"models": ["m"], "window": 1000})).unwrap()];
        })
        .start()
        .await
        .unwrap();
    // 600 tokens fit the configured 750 (1000 less a quarter), not the reported 100.
    server.create(json!({"model": "m", "input": words(600)})).await;
    let got = server.post("/v1/responses", json!({"model": "m", "input": words(800)})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    // So does the request's own output reserve.
    let got = server.post("/v1/responses", json!({"model": "m", "input": words(600), "max_output_tokens": 500})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
}

#[rstest]
#[tokio::test]
async fn a_conversation_is_truncated_by_whole_turns(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, server)) = windowed(1000, store).await else { return };
    let (a, b, c) = (words(200), format!("b {}", words(199)), format!("c {}", words(199)));
    let items = json!([msg("developer", "Be brief."), msg("user", &a), msg("assistant", &format!("answer to {a}"))]);
    let (_, conversation) = server.post("/v1/conversations", json!({"items": items})).await;
    let id = conversation["id"].as_str().unwrap();
    server.create(json!({"model": "m", "input": b, "conversation": id})).await;
    mock.take();
    let body = json!({"model": "m", "input": c, "conversation": id, "truncation": "auto"});
    server.create(body).await;
    let expected =
        vec![msg("system", "Be brief."), msg("user", &b), msg("assistant", &format!("answer to {b}")), msg("user", &c)];
    assert_eq!(mock.only_messages(), expected);
}

#[tokio::test]
async fn usage_keeps_the_backends_cached_and_reasoning_tokens() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    let usage = json!({"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}});
    let steps = vec![
        common::text("hi"),
        common::finish("stop"),
        common::Step::Chunk(json!({"object": "chat.completion.chunk", "choices": [], "usage": usage})),
        common::DONE,
    ];
    mock.set(Behavior::Stream(steps));
    let events = server.stream("/v1/responses", json!({"model": "m", "input": "hello", "stream": true})).await;
    let completed = events.rest_json().await.pop().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["usage"],
        json!({"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
            "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 150})
    );
}

#[tokio::test]
async fn a_usage_of_zeros_is_replaced_by_the_count() {
    let mock = MockUpstream::start().await;
    let server = TestApp::start(&mock.url).await;
    mock.set(Behavior::Stream(vec![
        common::text("hello world"),
        common::finish("stop"),
        common::usage(0, 0),
        common::DONE,
    ]));
    let events = server.stream("/v1/responses", json!({"model": "m", "input": "hello world", "stream": true})).await;
    let completed = events.rest_json().await.pop().unwrap();
    // A message of two tokens and its framing, the reply priming; two tokens out.
    let usage = &completed["response"]["usage"];
    assert_eq!((usage["input_tokens"].as_u64(), usage["output_tokens"].as_u64()), (Some(9), Some(2)));
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

#[rstest]
#[tokio::test]
async fn each_stored_item_keeps_the_token_count_it_was_sent_with(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(server) = TestApp::builder().store(store).upstream(&mock.url).start().await else { return };
    let input = json!([msg("system", "Be brief."), msg("user", "hello world")]);
    let id = turn(&server, json!({"model": "m", "input": input})).await;
    let chain = server.store.history("default", &id, 10).await.unwrap().unwrap();
    let counter = TokenCounter::default();
    let expected: Vec<Option<u32>> = chain.tip.items().iter().map(|item| Some(counter.item(item))).collect();
    assert_eq!(chain.tip.tokens(), expected);
    // "Be brief." and "hello world" as messages, and the answer "answer to hello world".
    assert_eq!(expected, [Some(7), Some(6), Some(8)]);
}

#[tokio::test]
async fn an_older_llama_cpp_server_gives_the_window_it_runs_with_in_its_props_not_its_training_length() {
    let mock = MockUpstream::start().await;
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "llamacpp",
        "meta": {"vocab_type": 2, "n_vocab": 152_064, "n_ctx_train": 32768, "n_embd": 3584}}]));
    let server = TestApp::start(&mock.url).await;
    let got = server.post("/v1/responses", json!({"model": "m", "input": words(3500)})).await;
    assert_error(&got, 400, Some("context_length_exceeded"), Some("input"));
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("(the window is 4096 tokens, 1024 kept for the output)"), "{message}");
    assert_eq!(mock.take(), Vec::<Value>::new());
}
