//! The MCP server at /mcp (JSON-RPC over Streamable HTTP): the tools' exact schemas; `stateful_chat` turns chained,
//! branched and continued across /v1/responses and /api/v1/chat with the exact upstream messages; `system_prompt`
//! kept, then ignored with a note; `stored_until` from the retention settings; `get_conversation` and
//! `delete_conversation_turn`; every failure an `isError` result; tenants kept apart with authentication on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{key, msg, words, Behavior, MockUpstream, Postgres, Sqlite, StoreKind, TestApp};
use rstest::rstest;
use serde_json::{json, Value};
use threadline::api::mcp::SYSTEM_PROMPT_IGNORED;
use threadline::config::AuthMode;
use threadline::model::new_id;

/// Sends one JSON-RPC request to /mcp (with the key, if any) and returns the status and body.
async fn rpc(app: &TestApp, key: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// Calls a tool (as `key`) and returns its result.
async fn call_as(app: &TestApp, key: Option<&str>, tool: &str, arguments: Value) -> Value {
    let (status, answer) = rpc(app, key, "tools/call", json!({"name": tool, "arguments": arguments})).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"].clone()
}

/// Calls a tool that succeeds and returns its structured content, checking that the text is the same JSON.
async fn ok(app: &TestApp, tool: &str, arguments: Value) -> Value {
    let result = call_as(app, None, tool, arguments).await;
    assert_eq!(result["isError"], false, "{result}");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, result["structuredContent"]);
    assert_eq!(result["content"].as_array().unwrap().len(), 1);
    result["structuredContent"].clone()
}

/// The message of a tool call that fails.
fn failure(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "{result}");
    assert!(result.get("structuredContent").is_none(), "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

async fn fails(app: &TestApp, tool: &str, arguments: Value) -> String {
    failure(&call_as(app, None, tool, arguments).await).to_string()
}

/// threadline in front of a mock upstream, with `m` as the MCP default model.
async fn server(store: StoreKind) -> Option<(MockUpstream, TestApp)> {
    let mock = MockUpstream::start().await;
    let app = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| config.mcp.default_model = Some("m".into()))
        .start()
        .await?;
    Some((mock, app))
}

fn id(result: &Value) -> &str {
    result["response_id"].as_str().unwrap()
}

#[tokio::test]
async fn the_tools_have_their_exact_schemas() {
    let app = TestApp::start("echo").await;
    let (status, answer) = rpc(&app, None, "tools/list", json!({})).await;
    assert_eq!(status, 200);
    let tools = &answer["result"]["tools"];
    let schemas: Vec<(&str, &Value)> =
        tools.as_array().unwrap().iter().map(|tool| (tool["name"].as_str().unwrap(), &tool["inputSchema"])).collect();
    let nullable = |kind: &str, description: &str| json!({"description": description, "type": [kind, "null"]});
    let expected = [
        (
            "stateful_chat",
            json!({
                "type": "object",
                "properties": {
                    "prompt": {"description": "What to say in this turn.", "type": "string"},
                    "response_id": nullable("string", "Continue from this stored turn (any earlier turn's id, to \
                        branch); null or absent starts a conversation."),
                    "model": {"description": "The model to ask; default: the server's `mcp.default_model`.",
                        "type": "string"},
                    "system_prompt": nullable("string", "Instructions kept for the whole conversation: only when \
                        starting one (with `response_id`, it is ignored)."),
                    "include_reasoning": {"description": "Return the model's reasoning text or summary, when it \
                        produced one.", "type": "boolean", "default": false},
                    "temperature": {"description": "Sampling temperature, 0 to 2.", "type": ["number", "null"],
                        "format": "double", "minimum": 0, "maximum": 2},
                    "max_tokens": {"description": "Most tokens the answer may have.", "type": ["integer", "null"],
                        "format": "uint32", "minimum": 1},
                },
                "additionalProperties": false,
                "required": ["prompt"],
            }),
        ),
        (
            "get_conversation",
            json!({
                "type": "object",
                "properties": {
                    "response_id": {"description": "The last turn of the chain to read.", "type": "string"},
                    "limit": {"description": "Most turns to return, the newest ones (1 to 100).", "type": "integer",
                        "format": "uint32", "minimum": 1, "maximum": 100, "default": 20},
                },
                "additionalProperties": false,
                "required": ["response_id"],
            }),
        ),
        (
            "delete_conversation_turn",
            json!({
                "type": "object",
                "properties": {"response_id": {"description": "The turn to delete.", "type": "string"}},
                "additionalProperties": false,
                "required": ["response_id"],
            }),
        ),
    ];
    let expected: Vec<(&str, &Value)> = expected.iter().map(|(name, schema)| (*name, schema)).collect();
    assert_eq!(schemas, expected);
    // The order of the properties is the order of the fields.
    let keys: Vec<&String> = tools[0]["inputSchema"]["properties"].as_object().unwrap().keys().collect();
    let fields = ["prompt", "response_id", "model", "system_prompt", "include_reasoning", "temperature", "max_tokens"];
    assert_eq!(keys, fields);
}

#[rstest]
#[tokio::test]
async fn turns_chain_and_branch_by_response_id_and_keep_the_system_prompt(
    #[values(Sqlite, Postgres)] store: StoreKind,
) {
    let Some((mock, app)) = server(store).await else { return };
    let first = ok(&app, "stateful_chat", json!({"prompt": "u1", "system_prompt": "Be terse."})).await;
    assert_eq!(mock.only_messages(), vec![msg("system", "Be terse."), msg("user", "u1")]);
    assert_eq!(first["content"], "answer to u1");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["model"], "m");
    assert!(first.get("note").is_none() && first.get("reasoning").is_none());
    let second = ok(
        &app,
        "stateful_chat",
        json!({"prompt": "u2", "response_id": id(&first), "temperature": 0.5, "max_tokens": 50}),
    )
    .await;
    assert_eq!(second["content"], "answer to u2");
    let bodies = mock.take();
    assert_eq!(
        bodies[0]["messages"],
        json!([msg("system", "Be terse."), msg("user", "u1"), msg("assistant", "answer to u1"), msg("user", "u2")])
    );
    assert_eq!((&bodies[0]["temperature"], &bodies[0]["max_tokens"]), (&json!(0.5), &json!(50)));
    // A branch from the first turn, whose new system prompt is ignored, and the result says so.
    let branch = ok(
        &app,
        "stateful_chat",
        json!({"prompt": "other", "response_id": id(&first), "system_prompt": "Be verbose.", "model": "m"}),
    )
    .await;
    assert_eq!(branch["note"], SYSTEM_PROMPT_IGNORED);
    assert_eq!(
        mock.only_messages(),
        vec![msg("system", "Be terse."), msg("user", "u1"), msg("assistant", "answer to u1"), msg("user", "other")]
    );
    // Both chains read back, oldest turn first.
    let conversation = ok(&app, "get_conversation", json!({"response_id": id(&second)})).await;
    let turns = [turn(&app, &first, json!("Be terse."), "u1").await, turn(&app, &second, Value::Null, "u2").await];
    assert_eq!(conversation, json!({"response_id": id(&second), "turns": turns, "has_more": false}));
    let last = ok(&app, "get_conversation", json!({"response_id": id(&branch), "limit": 1})).await;
    let turns = [turn(&app, &branch, Value::Null, "other").await];
    assert_eq!(last, json!({"response_id": id(&branch), "turns": turns, "has_more": true}));
}

#[tokio::test]
async fn a_long_conversation_drops_its_oldest_turns_and_keeps_its_system_prompt() {
    let (mock, app) = server(Sqlite).await.unwrap();
    mock.set_models(json!([{"id": "m", "object": "model", "created": 1, "owned_by": "mock", "context_length": 1000}]));
    let (a, b, c) = (words(200), format!("b {}", words(199)), format!("c {}", words(199)));
    let first = ok(&app, "stateful_chat", json!({"prompt": a, "system_prompt": "Be terse."})).await;
    let second = ok(&app, "stateful_chat", json!({"prompt": b, "response_id": id(&first)})).await;
    mock.take();
    let third = ok(&app, "stateful_chat", json!({"prompt": c, "response_id": id(&second)})).await;
    assert_eq!(third["content"], format!("answer to {c}"));
    // The first turn no longer fits beside the others: it is dropped, its system prompt is not.
    assert_eq!(
        mock.only_messages(),
        vec![msg("system", "Be terse."), msg("user", &b), msg("assistant", &format!("answer to {b}")), msg("user", &c)]
    );
}

/// The turn `get_conversation` gives for a `stateful_chat` result with this system prompt and prompt.
async fn turn(app: &TestApp, response: &Value, system: Value, prompt: &str) -> Value {
    let (_, stored) = app.get(&format!("/v1/responses/{}", id(response))).await;
    json!({"response_id": id(response), "created_at": rfc3339(stored["created_at"].as_i64().unwrap()),
        "model": "m", "status": "completed", "system_prompt": system, "prompt": prompt,
        "content": format!("answer to {prompt}")})
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn stored_until_follows_the_retention_of_responses() {
    let mock = MockUpstream::start().await;
    let app = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.retention.responses = Some(Duration::from_secs(7 * 86_400)))
        .start()
        .await
        .unwrap();
    app.clock.advance(Duration::from_secs(3 * 86_400));
    let result = ok(&app, "stateful_chat", json!({"prompt": "hi", "model": "m"})).await;
    let (_, stored) = app.get(&format!("/v1/responses/{}", id(&result))).await;
    let created_at = stored["created_at"].as_i64().unwrap();
    assert_eq!(result["stored_until"], rfc3339(created_at + 7 * 86_400));
    // Still there just before, gone after.
    app.clock.advance(Duration::from_secs(7 * 86_400 - 60));
    assert_eq!(app.get(&format!("/v1/responses/{}", id(&result))).await.0, 200);
    app.clock.advance(Duration::from_secs(120));
    assert_eq!(app.get(&format!("/v1/responses/{}", id(&result))).await.0, 404);
    // Kept forever: null.
    let forever = TestApp::builder()
        .upstream(&mock.url)
        .config(|config| config.retention.responses = None)
        .start()
        .await
        .unwrap();
    let result = ok(&forever, "stateful_chat", json!({"prompt": "hi", "model": "m"})).await;
    assert_eq!(result["stored_until"], Value::Null);
}

#[tokio::test]
async fn reasoning_is_returned_only_when_asked_for() {
    let (mock, app) = server(Sqlite).await.unwrap();
    let message = json!({"role": "assistant", "content": "42", "reasoning_content": "six times seven"});
    mock.set(Behavior::Message(message.clone()));
    let plain = ok(&app, "stateful_chat", json!({"prompt": "q"})).await;
    assert_eq!((&plain["content"], plain.get("reasoning")), (&json!("42"), None));
    mock.set(Behavior::Message(message));
    let asked = ok(&app, "stateful_chat", json!({"prompt": "q", "include_reasoning": true})).await;
    assert_eq!((&asked["content"], &asked["reasoning"]), (&json!("42"), &json!("six times seven")));
    // Without reasoning in the answer, none is returned.
    let none = ok(&app, "stateful_chat", json!({"prompt": "q", "include_reasoning": true})).await;
    assert!(none.get("reasoning").is_none(), "{none}");
}

#[tokio::test]
async fn every_failure_is_a_tool_error() {
    let (mock, app) = server(Sqlite).await.unwrap();
    let unknown = new_id("resp");
    let cases = [
        ("stateful_chat", json!({}), "Invalid arguments: missing field `prompt`."),
        ("stateful_chat", json!({"prompt": 3}), "Invalid arguments: invalid type: integer `3`, expected a string."),
        (
            "stateful_chat",
            json!({"prompt": "x", "stream": true}),
            "Invalid arguments: unknown field `stream`, expected one of `prompt`, `response_id`, `model`, \
             `system_prompt`, `include_reasoning`, `temperature`, `max_tokens`.",
        ),
        ("stateful_chat", json!({"prompt": ""}), "Invalid arguments: 'prompt' must not be empty."),
        (
            "stateful_chat",
            json!({"prompt": "x", "temperature": 2.5}),
            "Invalid arguments: 'temperature' must be between 0 and 2.",
        ),
        (
            "stateful_chat",
            json!({"prompt": "x", "max_tokens": 0}),
            "Invalid arguments: 'max_tokens' must be at least 1.",
        ),
        (
            "get_conversation",
            json!({"response_id": "x", "limit": 0}),
            "Invalid arguments: 'limit' must be between 1 and 100.",
        ),
        ("no_such_tool", json!({}), "Unknown tool 'no_such_tool'."),
    ];
    for (tool, arguments, message) in cases {
        assert_eq!(fails(&app, tool, arguments.clone()).await, message, "{tool} {arguments}");
    }
    let unknown_previous = format!("Previous response with id '{unknown}' not found.");
    assert_eq!(fails(&app, "stateful_chat", json!({"prompt": "x", "response_id": unknown})).await, unknown_previous);
    let not_found = format!("Response with id '{unknown}' not found.");
    assert_eq!(fails(&app, "get_conversation", json!({"response_id": unknown})).await, not_found);
    assert_eq!(fails(&app, "delete_conversation_turn", json!({"response_id": unknown})).await, not_found);
    assert_eq!(mock.take().len(), 0);
    // The upstream's failure.
    mock.fail_once(500, json!({"error": {"message": "the GPU melted"}}));
    let message = fails(&app, "stateful_chat", json!({"prompt": "x"})).await;
    assert_eq!(message, "Upstream 'default' failed (HTTP 500): the GPU melted");
    // No model, and no default.
    let bare = TestApp::start(&mock.url).await;
    let message = fails(&bare, "stateful_chat", json!({"prompt": "x"})).await;
    assert_eq!(message, "Invalid arguments: 'model' is required, as the server has no mcp.default_model.");
    // A malformed request is an OpenAI-shaped HTTP error.
    let answer = app.client.post(format!("{}/mcp", app.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(answer.status(), 406);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Not Acceptable: Client must accept both application/json and text/event-stream",
            "type": "invalid_request_error", "param": null, "code": null}})
    );
}

#[tokio::test]
async fn a_deleted_turn_is_gone_for_every_surface() {
    let (_mock, app) = server(Sqlite).await.unwrap();
    let first = ok(&app, "stateful_chat", json!({"prompt": "u1"})).await;
    let deleted = ok(&app, "delete_conversation_turn", json!({"response_id": id(&first)})).await;
    assert_eq!(deleted, json!({"response_id": id(&first), "deleted": true}));
    assert_eq!(app.get(&format!("/v1/responses/{}", id(&first))).await.0, 404);
    let message = format!("Previous response with id '{}' not found.", id(&first));
    assert_eq!(fails(&app, "stateful_chat", json!({"prompt": "u2", "response_id": id(&first)})).await, message);
}

#[rstest]
#[tokio::test]
async fn tenants_are_kept_apart_over_mcp(#[values(Sqlite, Postgres)] store: StoreKind) {
    let mock = MockUpstream::start().await;
    let Some(app) = TestApp::builder()
        .store(store)
        .upstream(&mock.url)
        .config(|config| {
            config.mcp.default_model = Some("m".into());
            config.auth.mode = Some(AuthMode::Keys);
            config.auth.keys = vec![key("alice", "sk-alice"), key("bob", "sk-bob")];
        })
        .start()
        .await
    else {
        return;
    };
    let (status, refused) = rpc(&app, None, "tools/list", json!({})).await;
    assert_eq!((status, &refused["error"]["code"]), (401, &json!("invalid_api_key")));
    let alices = call_as(&app, Some("sk-alice"), "stateful_chat", json!({"prompt": "secret"})).await;
    let alices = id(&alices["structuredContent"]).to_string();
    let unknown = new_id("resp");
    for (tool, arguments) in [
        ("stateful_chat", json!({"prompt": "x", "response_id": "{id}"})),
        ("get_conversation", json!({"response_id": "{id}"})),
        ("delete_conversation_turn", json!({"response_id": "{id}"})),
    ] {
        let with = |id: &str| serde_json::from_str::<Value>(&arguments.to_string().replace("{id}", id)).unwrap();
        let others = call_as(&app, Some("sk-bob"), tool, with(&alices)).await;
        let unknowns = call_as(&app, Some("sk-bob"), tool, with(&unknown)).await;
        assert_eq!(failure(&others).replace(&alices, &unknown), failure(&unknowns), "{tool}");
    }
    // Alice's turn is intact, and continues for her.
    let more = call_as(&app, Some("sk-alice"), "stateful_chat", json!({"prompt": "more", "response_id": alices})).await;
    assert_eq!(more["isError"], false, "{more}");
    let bodies = mock.take();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[1]["messages"],
        json!([msg("user", "secret"), msg("assistant", "answer to secret"), msg("user", "more")])
    );
}

#[rstest]
#[tokio::test]
async fn turns_continue_across_mcp_responses_and_lm_studio(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some((mock, app)) = server(store).await else { return };
    let first = ok(&app, "stateful_chat", json!({"prompt": "from mcp", "system_prompt": "Be terse."})).await;
    let responses =
        app.create(json!({"model": "m", "input": "from responses", "previous_response_id": id(&first)})).await;
    let (status, lm) = app
        .post("/api/v1/chat", json!({"model": "m", "input": "from lm studio", "previous_response_id": responses["id"]}))
        .await;
    assert_eq!(status, 200, "{lm}");
    let back = ok(&app, "stateful_chat", json!({"prompt": "back in mcp", "response_id": lm["response_id"]})).await;
    assert_eq!(back["content"], "answer to back in mcp");
    let bodies = mock.take();
    assert_eq!(bodies.len(), 4);
    assert_eq!(
        bodies[3]["messages"],
        json!([
            msg("system", "Be terse."),
            msg("user", "from mcp"),
            msg("assistant", "answer to from mcp"),
            msg("user", "from responses"),
            msg("assistant", "answer to from responses"),
            msg("user", "from lm studio"),
            msg("assistant", "answer to from lm studio"),
            msg("user", "back in mcp"),
        ])
    );
    // The MCP turn is an ordinary stored response.
    let (status, stored) = app.get(&format!("/v1/responses/{}", id(&first))).await;
    assert_eq!((status, stored["output"][0]["content"][0]["text"].as_str()), (200, Some("answer to from mcp")));
    let conversation = ok(&app, "get_conversation", json!({"response_id": id(&back)})).await;
    let prompts: Vec<&Value> = conversation["turns"].as_array().unwrap().iter().map(|turn| &turn["prompt"]).collect();
    assert_eq!(
        prompts,
        [&json!("from mcp"), &json!("from responses"), &json!("from lm studio"), &json!("back in mcp")]
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_json_rpc_message_is_a_400_as_on_every_route() {
    let app = TestApp::start("echo").await;
    let post = |body: String, content_type: &'static str| {
        let request = app.client.post(format!("{}/mcp", app.base)).header("content-type", content_type);
        request.header("accept", "application/json, text/event-stream").body(body).send()
    };
    let envelope = |message: &str| json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    // JSON 100,000 levels deep, a JSON-RPC request around it: the same 400 as /v1/responses gives it.
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let message = "We could not parse the JSON body of your request (recursion limit exceeded at line 1 column 182). \
                   The API expects a JSON payload.";
    let answer = post(deep.clone(), "application/json").await.unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(answer.json::<Value>().await.unwrap(), envelope(message));
    let elsewhere = app.post_raw("/v1/responses", deep.replace("\"params\"", "\"input\"")).await;
    let message = message.replace("column 182", "column 181");
    assert_eq!(elsewhere, (400, envelope(&message)));
    // Malformed JSON, whatever the content type.
    let answer = post("{\"jsonrpc\":".into(), "text/plain").await.unwrap();
    assert_eq!(answer.status(), 400);
    let message = "We could not parse the JSON body of your request (EOF while parsing a value at line 1 column 11). \
                   The API expects a JSON payload.";
    assert_eq!(answer.json::<Value>().await.unwrap(), envelope(message));
    // JSON, but no JSON-RPC message (the SDK's refusal, a 415 of its own, is a 400 here).
    let answer = post("{}".into(), "application/json").await.unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("fail to deserialize request body"), "{body}");
    // Any content type is read as JSON, as on every route: no 415.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string();
    let answer = post(list, "text/plain").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.json::<Value>().await.unwrap()["result"]["tools"].is_array());
}
