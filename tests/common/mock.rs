//! A mock Chat Completions upstream that records every request body (and its `x-request-id`) and answers as a test
//! scripts it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::spawn;

/// How the mock upstream answers.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// `answer to <last user message>` with usage (streamed when the request asks for a stream); a summarization
    /// request is answered `the story so far`.
    Answer,
    /// This status and body.
    Fail(u16, Value),
    /// This status and body, with these headers.
    FailWithHeaders(u16, Value, Vec<(&'static str, &'static str)>),
    /// This status and a body that is not JSON.
    FailText(u16, String),
    /// Never answers.
    Hang,
    /// `Answer`, once the test calls `release`.
    Held,
    /// A 200 whose body is not JSON.
    Garbage,
    /// A streamed answer, step by step.
    Stream(Vec<Step>),
    /// This assistant message (e.g. with `tool_calls`), then `answer to …` for later requests.
    Message(Value),
    /// This assistant text with these `logprobs.content` entries (see `token`), then `answer to …` for later
    /// requests.
    Logprobs(String, Vec<Value>),
}

/// One step of a streamed answer.
#[derive(Clone, Debug)]
pub enum Step {
    /// `data: <json>` then a blank line.
    Chunk(Value),
    /// These bytes as they are.
    Raw(&'static str),
    /// These bytes as they are, in a chunk of their own.
    Bytes(Vec<u8>),
    /// Wait until the test calls `release`.
    Gate,
}

/// A chunk with a content delta.
pub fn text(delta: &str) -> Step {
    Step::Chunk(
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]}),
    )
}

/// A chunk with a content delta and the log probabilities of its tokens (see `token`).
pub fn text_logprobs(delta: &str, logprobs: &[Value]) -> Step {
    Step::Chunk(json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": delta},
        "logprobs": {"content": logprobs}, "finish_reason": null}]}))
}

/// A token's log probability as Chat Completions gives it, with its likeliest alternatives `(token, logprob)`.
pub fn token(token: &str, logprob: f64, top: &[(&str, f64)]) -> Value {
    let top: Vec<Value> = top
        .iter()
        .map(|(token, logprob)| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()}))
        .collect();
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(), "top_logprobs": top})
}

/// A chunk with a reasoning delta.
pub fn reasoning(delta: &str) -> Step {
    Step::Chunk(
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"reasoning_content": delta}, "finish_reason": null}]}),
    )
}

/// A chunk that starts function call `index`.
pub fn call_start(index: usize, id: &str, name: &str) -> Step {
    Step::Chunk(json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]}))
}

/// A chunk with more arguments for function call `index`.
pub fn call_arguments(index: usize, arguments: &str) -> Step {
    Step::Chunk(json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": index, "function": {"arguments": arguments}}]}, "finish_reason": null}]}))
}

/// An assistant message calling functions `(id, name, arguments)`.
pub fn calls(calls: &[(&str, &str, &str)]) -> Behavior {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
        .collect();
    Behavior::Message(json!({"role": "assistant", "content": null, "tool_calls": tool_calls}))
}

/// The chunk that ends the choice.
pub fn finish(reason: &str) -> Step {
    Step::Chunk(
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
    )
}

/// The final usage chunk.
pub fn usage(prompt: u64, completion: u64) -> Step {
    Step::Chunk(json!({"object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}))
}

/// How threadline's summarization requests begin (their system message): the mock answers them with
/// `the story so far`.
pub const SUMMARY_PROMPT: &str = "You are compacting a conversation";

/// Whether an upstream request body is a summarization request.
pub fn is_summary_request(body: &Value) -> bool {
    body["messages"][0]["content"].as_str().is_some_and(|text| text.starts_with(SUMMARY_PROMPT))
}

/// How many of these upstream request bodies are summarization requests.
pub fn summarizations(bodies: &[Value]) -> usize {
    bodies.iter().filter(|body| is_summary_request(body)).count()
}

/// The message threadline sends upstream in place of compacted turns.
pub fn summary(text: &str) -> Value {
    json!({"role": "user", "content": format!("Summary of the earlier conversation:\n{text}")})
}

/// A text of `count` one-token words.
pub fn words(count: usize) -> String {
    vec!["apple"; count].join(" ")
}

pub const DONE: Step = Step::Raw("data: [DONE]\n\n");

#[derive(Default)]
struct MockState {
    bodies: Mutex<Vec<Value>>,
    request_ids: Mutex<Vec<Option<String>>>,
    authorizations: Mutex<Vec<Option<String>>>,
    behavior: Mutex<Option<Behavior>>,
    /// Failures (status, body) for the next requests, one each, before `behavior`.
    failures: Mutex<VecDeque<(u16, Value)>>,
    /// What `GET /v1/models` lists (one plain model by default).
    models: Mutex<Option<Value>>,
    /// Whether `GET /v1/models` never answers.
    models_hang: std::sync::atomic::AtomicBool,
    gate: Notify,
    /// Streamed answers whose client closed the connection before their end.
    cut: std::sync::atomic::AtomicUsize,
    cut_notice: Notify,
}

/// Counts a streamed answer as cut when it is dropped before its last step (which forgets it).
struct StreamEnd {
    state: Arc<MockState>,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        self.state.cut.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.state.cut_notice.notify_waiters();
    }
}

/// A Chat Completions backend that records what it receives.
#[derive(Clone)]
pub struct MockUpstream {
    pub url: String,
    state: Arc<MockState>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(MockState::default());
        let router = Router::new()
            .route("/v1/chat/completions", post(mock_chat))
            .route("/v1/models", get(mock_models))
            .route("/props", get(mock_props))
            .with_state(state.clone());
        let addr = spawn(router).await;
        Self { url: format!("http://{addr}/v1"), state }
    }

    pub fn set(&self, behavior: Behavior) {
        *self.state.behavior.lock().unwrap() = Some(behavior);
    }

    /// Fails the next request (after any failures queued before) with this status and body, once.
    pub fn fail_once(&self, status: u16, body: Value) {
        self.state.failures.lock().unwrap().push_back((status, body));
    }

    /// Lists these models on `GET /v1/models`.
    pub fn set_models(&self, models: Value) {
        *self.state.models.lock().unwrap() = Some(models);
    }

    /// Makes `GET /v1/models` never answer.
    pub fn hang_models(&self) {
        self.state.models_hang.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits (at most 10 s, then fails) until a streamed answer has been cut by its client, the upstream connection
    /// closed before the answer ended.
    pub async fn wait_cut(&self) {
        let wait = async {
            loop {
                let notice = self.state.cut_notice.notified();
                if self.state.cut.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    return;
                }
                notice.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait).await.expect("no streamed answer was cut");
    }

    /// How many streamed answers have been cut by their client.
    pub fn cut(&self) -> usize {
        self.state.cut.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets a streamed answer waiting at a `Gate` go on.
    pub fn release(&self) {
        self.state.gate.notify_one();
    }

    /// Every body received so far, emptying the record.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.state.bodies.lock().unwrap())
    }

    /// The `x-request-id` header of every request received so far (`None` where it had none), emptying the record.
    pub fn take_request_ids(&self) -> Vec<Option<String>> {
        std::mem::take(&mut *self.state.request_ids.lock().unwrap())
    }

    /// The `Authorization` header of every completion request received so far, emptying the record.
    pub fn take_authorizations(&self) -> Vec<Option<String>> {
        std::mem::take(&mut *self.state.authorizations.lock().unwrap())
    }

    /// The `messages` of the only request received since the last `take`.
    pub fn only_messages(&self) -> Vec<Value> {
        let bodies = self.take();
        assert_eq!(bodies.len(), 1, "expected one upstream request, got {bodies:?}");
        bodies[0]["messages"].as_array().unwrap().clone()
    }
}

fn last_user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    last.and_then(|m| m["content"].as_str()).unwrap_or("nothing").to_string()
}

async fn mock_chat(State(state): State<Arc<MockState>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let request_id = headers.get("x-request-id").map(|id| id.to_str().unwrap().to_string());
    state.request_ids.lock().unwrap().push(request_id);
    let authorization = headers.get("authorization").map(|value| value.to_str().unwrap().to_string());
    state.authorizations.lock().unwrap().push(authorization);
    state.bodies.lock().unwrap().push(body.clone());
    let failure = state.failures.lock().unwrap().pop_front();
    if let Some((status, body)) = failure {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let behavior = {
        let mut current = state.behavior.lock().unwrap();
        match current.clone() {
            Some(Behavior::Message(message)) => {
                *current = None;
                let finish = if message.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
                return Json(json!({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}]}))
                .into_response();
            }
            Some(Behavior::Logprobs(text, logprobs)) => {
                *current = None;
                return Json(json!({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                        "logprobs": {"content": logprobs, "refusal": null}, "finish_reason": "stop"}]}))
                .into_response();
            }
            other => other.unwrap_or(Behavior::Answer),
        }
    };
    let answer = match is_summary_request(&body) {
        true => "the story so far".to_string(),
        false => format!("answer to {}", last_user_text(&body)),
    };
    if let Behavior::Held = behavior {
        state.gate.notified().await;
    }
    let behavior = match behavior {
        Behavior::Held => Behavior::Answer,
        other => other,
    };
    let behavior = match behavior {
        // Asked to stream, the plain answer comes as a stream.
        Behavior::Answer if body["stream"] == true => {
            Behavior::Stream(vec![text(&answer), finish("stop"), usage(11, 3), DONE])
        }
        other => other,
    };
    match behavior {
        Behavior::Answer => Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }))
        .into_response(),
        Behavior::Fail(status, body) => (StatusCode::from_u16(status).unwrap(), Json(body)).into_response(),
        Behavior::FailWithHeaders(status, body, headers) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Behavior::FailText(status, text) => (StatusCode::from_u16(status).unwrap(), text).into_response(),
        Behavior::Hang => std::future::pending().await,
        Behavior::Garbage => "not json".into_response(),
        Behavior::Message(_) | Behavior::Logprobs(..) | Behavior::Held => unreachable!("answered above"),
        Behavior::Stream(steps) => {
            let end = StreamEnd { state: state.clone() };
            let frames = futures::stream::unfold((steps.into_iter(), end), |(mut steps, end)| async move {
                loop {
                    let Some(step) = steps.next() else {
                        std::mem::forget(end);
                        return None;
                    };
                    match step {
                        Step::Gate => end.state.gate.notified().await,
                        Step::Chunk(chunk) => return Some((Bytes::from(format!("data: {chunk}\n\n")), (steps, end))),
                        Step::Raw(raw) => return Some((Bytes::from(raw), (steps, end))),
                        Step::Bytes(bytes) => return Some((Bytes::from(bytes), (steps, end))),
                    }
                }
            });
            let body = Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>));
            ([("content-type", "text/event-stream")], body).into_response()
        }
    }
}

/// llama.cpp server's `/props`, as b11434 answered with `-c 4096` (its `default_generation_settings.params` left out).
async fn mock_props() -> Json<Value> {
    Json(json!({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1, "model_alias": "model.gguf",
        "model_path": "/models/model.gguf", "modalities": {"vision": false, "audio": false}}))
}

async fn mock_models(State(state): State<Arc<MockState>>) -> Json<Value> {
    if state.models_hang.load(std::sync::atomic::Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let listed = state.models.lock().unwrap().clone();
    let data =
        listed.unwrap_or_else(|| json!([{"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"}]));
    Json(json!({"object": "list", "data": data}))
}
