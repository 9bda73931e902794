//! A fast mock OpenAI Chat Completions upstream for the benchmark.
//!
//! `POST /v1/chat/completions` parses the body (the messages as raw JSON values) and answers "ok", whole or streamed
//! (`"stream": true`, with a usage chunk when `stream_options.include_usage`). A stream waits a delay between its
//! chunks: `--chunk-delay-ms`, the `x-mock-chunk-delay-ms` header, or a model named `…-delay-MS` (the one way through
//! threadline, which forwards the model name but not headers). `GET /v1/models` lists two models with their
//! `context_length`: `bench`, whose window holds the deepest chain measured, and `bench-window`, of 8,000 tokens
//! (`--bench-window-tokens`), to make threadline truncate a long chain. Other names (`bench-delay-500`…) work too;
//! unlisted, they get threadline's default window.
//!
//! A request with `tools`, or whose last message is a tool output (`"role":"tool"`), is answered with a call of the
//! function `lookup` instead, its id `call_N` for the request's N messages (so each turn of an agent loop gets a new
//! one), whole or streamed like the text (the `agent_loop` measurement's loop of tool calls).
//!
//! It reports what it received: a request whose last message's content starts with `capture-` is kept under that
//! content, and `GET /received?key=capture-…` answers its body as received (404 when none was kept).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use clap::Parser;
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The text of every answer.
const REPLY: &str = "ok";
/// A fixed `created` timestamp.
const CREATED: u64 = 1_700_000_000;
/// The window of the model `bench`, in tokens: a chain of 10,000 turns (about 11 tokens each) with room to spare.
const BENCH_WINDOW: u64 = 1_000_000;

#[derive(Parser)]
#[command(about = "A mock OpenAI Chat Completions upstream (POST /v1/chat/completions, GET /v1/models)")]
struct Args {
    /// Address to listen on; port 0 picks a free port. The address is printed as "listening on http://ADDR".
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Default delay between the chunks of a streamed answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// The context window listed for the model `bench-window`, in tokens. 8,000 leaves 6,000 once a quarter is set
    /// aside for output: about half a chain of 1,000 turns.
    #[arg(long, default_value_t = 8_000)]
    bench_window_tokens: u64,
}

struct Mock {
    chunk_delay: Duration,
    /// The models listed, with their context windows.
    models: Vec<(&'static str, u64)>,
    /// Bodies of the `capture-…` requests, by that last message's content.
    captured: Mutex<HashMap<String, Bytes>>,
}

/// The parts of a request body the mock reads; the messages are parsed as JSON but not taken apart.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    model: String,
    #[serde(borrow)]
    messages: Vec<&'a RawValue>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A message's content, when it is a string.
#[derive(Deserialize)]
struct Content {
    content: String,
}

/// A message's role.
#[derive(Deserialize)]
struct Role<'a> {
    role: &'a str,
}

/// What the mock answers: "ok", or a call of `lookup` with this id.
enum Answer {
    Text,
    Call(String),
}

impl Answer {
    /// A call when the request has tools or ends in a tool output, else the text.
    fn to(request: &ChatRequest) -> Self {
        let tool_output = request
            .messages
            .last()
            .is_some_and(|last| serde_json::from_str::<Role>(last.get()).is_ok_and(|Role { role }| role == "tool"));
        if request.tools.is_some() || tool_output {
            Self::Call(format!("call_{}", request.messages.len()))
        } else {
            Self::Text
        }
    }

    /// The whole assistant message, and its finish reason.
    fn message(&self) -> (Value, &'static str) {
        match self {
            Self::Text => (json!({"role": "assistant", "content": REPLY}), "stop"),
            Self::Call(id) => {
                let call = json!({"id": id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}});
                (json!({"role": "assistant", "content": null, "tool_calls": [call]}), "tool_calls")
            }
        }
    }

    /// The deltas after the role's, and the finish reason.
    fn deltas(&self) -> (Vec<Value>, &'static str) {
        match self {
            Self::Text => (vec![json!({"content": REPLY})], "stop"),
            Self::Call(id) => {
                let start =
                    json!({"index": 0, "id": id, "type": "function", "function": {"name": "lookup", "arguments": ""}});
                let arguments = json!({"index": 0, "function": {"arguments": "{}"}});
                (vec![json!({"tool_calls": [start]}), json!({"tool_calls": [arguments]})], "tool_calls")
            }
        }
    }
}

#[derive(Deserialize)]
struct ReceivedQuery {
    key: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mock = Arc::new(Mock {
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        models: vec![("bench", BENCH_WINDOW), ("bench-window", args.bench_window_tokens)],
        captured: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/received", get(received))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    // Like a real upstream, send each chunk of a stream as it comes (no Nagle delay).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn completions(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid body: {err}")),
    };
    capture(&mock, &request, &body);
    // A cheap stand-in for token counts: one per message.
    let prompt_tokens = request.messages.len();
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1});
    let answer = Answer::to(&request);
    if !request.stream {
        let (message, finish) = answer.message();
        let answer = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": request.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        });
        return Json(answer).into_response();
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let frames = stream_frames(&request.model, &answer, include_usage.then_some(usage));
    let delay = chunk_delay(&mock, &headers, &request.model);
    let body = if delay.is_zero() {
        Body::from(frames.concat())
    } else {
        let frames = stream::iter(frames.into_iter().enumerate()).then(move |(i, frame)| async move {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Bytes::from(frame))
        });
        Body::from_stream(frames)
    };
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Keeps the body of a request whose last message's content starts with `capture-`.
fn capture(mock: &Mock, request: &ChatRequest, body: &Bytes) {
    let Some(last) = request.messages.last() else { return };
    let Ok(Content { content }) = serde_json::from_str(last.get()) else { return };
    if content.starts_with("capture-") {
        if let Ok(mut captured) = mock.captured.lock() {
            captured.insert(content, body.clone());
        }
    }
}

/// The delay between stream chunks: the model name's `-delay-MS`, else the header, else the default.
fn chunk_delay(mock: &Mock, headers: &HeaderMap, model: &str) -> Duration {
    let from_model = model.rsplit_once("-delay-").and_then(|(_, ms)| ms.parse().ok());
    let from_header = || headers.get("x-mock-chunk-delay-ms")?.to_str().ok()?.parse().ok();
    from_model.or_else(from_header).map_or(mock.chunk_delay, Duration::from_millis)
}

/// The SSE frames of a streamed answer: the role, the text (or the call's start and arguments), the finish, the usage
/// (if asked for), `[DONE]`.
fn stream_frames(model: &str, answer: &Answer, usage: Option<Value>) -> Vec<Vec<u8>> {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        format!("data: {chunk}\n\n").into_bytes()
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
    let (deltas, finish) = answer.deltas();
    let mut frames = vec![chunk(choice(json!({"role": "assistant"}), Value::Null), None)];
    frames.extend(deltas.into_iter().map(|delta| chunk(choice(delta, Value::Null), None)));
    frames.push(chunk(choice(json!({}), json!(finish)), None));
    if let Some(usage) = usage {
        frames.push(chunk(json!([]), Some(usage)));
    }
    frames.push(b"data: [DONE]\n\n".to_vec());
    frames
}

async fn models(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let data: Vec<Value> = mock
        .models
        .iter()
        .map(|(id, window)| {
            json!({"id": id, "object": "model", "created": CREATED, "owned_by": "mock", "context_length": window})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The body of the last request captured under `key`.
async fn received(State(mock): State<Arc<Mock>>, Query(query): Query<ReceivedQuery>) -> Response {
    let body = mock.captured.lock().ok().and_then(|captured| captured.get(&query.key).cloned());
    match body {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("nothing received under {}", query.key)),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": "invalid_request_error"}}))).into_response()
}
