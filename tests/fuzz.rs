//! Property-based fuzzing of every POST endpoint through the real router, on SQLite and Postgres: valid bodies with
//! one field replaced (by another JSON type, a huge string, Unicode edge cases, NUL bytes, nesting 10,000 levels
//! deep, a random id), removed or added, or the whole body replaced. Every answer must be below 500, and every 4xx
//! OpenAI's envelope with exactly its four keys; the data stored before the run must read back unchanged.
//!
//! `THREADLINE_FUZZ_CASES` sets the number of cases per store (default 256).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Postgres, Sqlite, StoreKind, TestApp};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use rstest::rstest;
use serde_json::{json, Value};

/// A string no generated body contains, replaced by the generated JSON text after serialising.
const HOLE: &str = "\u{1}fuzz-hole\u{1}";

/// How one valid body is changed.
#[derive(Clone, Debug)]
enum Mutation {
    /// The value at the `Index`-th JSON pointer of the body becomes this JSON text.
    Replace(Index, String),
    /// The field or array element at the `Index`-th pointer is removed.
    Remove(Index),
    /// An unknown key with this JSON text is added to the body.
    Add(String),
    /// The whole body is this text.
    Body(String),
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// JSON texts of every kind, edge cases weighted in.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or("1e308".into(), |n| n.to_string())),
        Just("-0.0".to_string()),
        Just("1e400".to_string()),
        any::<String>().prop_map(|s| json_string(&s)),
        (1usize..200_000).prop_map(|n| json_string(&"a".repeat(n))),
        prop::sample::select(vec![
            "\u{0}",
            "a\u{0}b",
            "\u{FEFF}",
            "\u{10FFFF}",
            "e\u{301}",
            "👩‍👩‍👧",
            "\u{202E}rtl",
            "\u{FFFF}",
            "",
            " ",
            "\r\n",
            "\u{7f}",
            "resp_\u{0}",
            "msg_\u{0}",
            "conv_\u{0}",
        ])
        .prop_map(json_string),
        Just("\"\\ud800\"".to_string()),
        Just("\"\\udc00x\\ud800\"".to_string()),
        prop::sample::select(vec!["resp_", "conv_", "msg_", "fc_", "fco_", "cmp_", ""])
            .prop_flat_map(|prefix| "[0-9a-f]{1,40}".prop_map(move |rest| json_string(&format!("{prefix}{rest}")))),
        (prop::sample::select(vec![100usize, 127, 128, 129, 10_000]), any::<bool>()).prop_map(|(depth, array)| {
            match array {
                true => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                false => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
            }
        }),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json_string(k))).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<Index>(), json_text()).prop_map(|(at, text)| Mutation::Replace(at, text)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => json_text().prop_map(Mutation::Add),
        1 => json_text().prop_map(Mutation::Body),
        1 => any::<Vec<u8>>().prop_map(|bytes| Mutation::Body(String::from_utf8_lossy(&bytes).into_owned())),
    ]
}

/// Every JSON pointer below the root of `value`.
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        out.push(pointer.clone());
        pointers(child, &pointer, out);
    }
}

/// The body text `mutation` makes of `valid`.
fn apply(valid: &Value, mutation: &Mutation) -> String {
    let mut body = valid.clone();
    let mut all = Vec::new();
    pointers(valid, "", &mut all);
    let text = match mutation {
        Mutation::Body(text) => return text.clone(),
        Mutation::Add(text) => {
            body["fuzz_extra"] = json!(HOLE);
            text
        }
        Mutation::Replace(at, text) => {
            *body.pointer_mut(at.get(&all).as_str()).unwrap() = json!(HOLE);
            text
        }
        Mutation::Remove(at) => {
            let pointer: &String = at.get(&all);
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match body.pointer_mut(parent).unwrap() {
                Value::Object(map) => {
                    map.shift_remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Value::Array(items) => {
                    items.remove(key.parse::<usize>().unwrap());
                }
                _ => unreachable!("a pointer's parent is a container"),
            }
            return body.to_string();
        }
    };
    body.to_string().replace(&json_string(HOLE), text)
}

/// What the run must not change: GET answers of the stored chain and conversation.
async fn snapshot(app: &TestApp, paths: &[String]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for path in paths {
        let response = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        out.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    out
}

fn cases() -> u32 {
    std::env::var("THREADLINE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_bodies_never_fail_the_server(#[values(Sqlite, Postgres)] store: StoreKind) {
    let Some(app) = TestApp::builder().store(store).upstream("echo").start().await else { return };
    let first = app.turn("remember this", None).await;
    let second = app.turn("and this", Some(&first)).await;
    let (_, kept) = app.post("/v1/conversations", json!({"items": [{"role": "user", "content": "kept"}]})).await;
    let kept = kept["id"].as_str().unwrap().to_string();
    let (_, scratch) = app.post("/v1/conversations", json!({})).await;
    let scratch = scratch["id"].as_str().unwrap().to_string();
    let watched: Vec<String> = vec![
        format!("/v1/responses/{first}"),
        format!("/v1/responses/{second}"),
        format!("/v1/responses/{second}/input_items"),
        format!("/v1/conversations/{kept}"),
        format!("/v1/conversations/{kept}/items"),
    ];
    let before = snapshot(&app, &watched).await;

    let message = json!({"role": "user", "content": [{"type": "input_text", "text": "hi"}]});
    let bodies: Vec<(String, Value)> = vec![
        (
            "/v1/responses".into(),
            json!({"model": "m", "input": [message], "previous_response_id": second,
            "instructions": "be brief", "metadata": {"k": "v"}, "temperature": 0.5, "max_output_tokens": 50,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
            "store": true}),
        ),
        (
            "/v1/responses".into(),
            json!({"model": "m", "input": "hi", "conversation": {"id": scratch},
            "stream": true}),
        ),
        ("/v1/responses/input_tokens".into(), json!({"model": "m", "input": "hi", "previous_response_id": second})),
        (
            "/v1/responses/compact".into(),
            json!({"model": "m", "input": [{"role": "user", "content": "hi"}],
            "previous_response_id": second}),
        ),
        (
            "/v1/conversations".into(),
            json!({"items": [{"type": "message", "role": "user", "content": "hi"}],
            "metadata": {"k": "v"}}),
        ),
        (format!("/v1/conversations/{scratch}"), json!({"metadata": {"k": "v"}})),
        (format!("/v1/conversations/{scratch}/items"), json!({"items": [{"role": "user", "content": "x"}]})),
        (
            "/v1/chat/completions".into(),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 20}),
        ),
        (
            "/api/v1/chat".into(),
            json!({"model": "m", "input": "hi", "previous_response_id": second,
            "system_prompt": "s", "store": true}),
        ),
    ];

    let runtime = tokio::runtime::Handle::current();
    let mut runner =
        TestRunner::new(RunnerConfig { cases: cases(), failure_persistence: None, ..RunnerConfig::default() });
    let strategy = (0..bodies.len(), mutation());
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(which, mutation)| {
            let (path, valid) = &bodies[which];
            let body = apply(valid, &mutation);
            let (status, text) = runtime.block_on(async {
                let response = app.client.post(format!("{}{path}", app.base)).body(body.clone()).send().await;
                let response = response.map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
                let status = response.status().as_u16();
                Ok::<_, TestCaseError>((status, response.text().await.unwrap_or_default()))
            })?;
            let shown = || format!("{path} {} → {status} {}", clip(&body), clip(&text));
            prop_assert!(status < 500, "{}", shown());
            if status >= 400 {
                let answer: Value = serde_json::from_str(&text).map_err(|_| TestCaseError::fail(shown()))?;
                let error = answer["error"].as_object().ok_or_else(|| TestCaseError::fail(shown()))?;
                let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
                keys.sort_unstable();
                prop_assert_eq!(keys, vec!["code", "message", "param", "type"], "{}", shown());
                prop_assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", shown());
            }
            Ok(())
        })
    });
    result.unwrap();
    assert_eq!(snapshot(&app, &watched).await, before, "stored data changed");
}

/// The start of a long text, for failure messages.
fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}
