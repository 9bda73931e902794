//! WebSocket mode of `/v1/responses`: `response.create` frames run responses one after another on one socket, each
//! answered with exactly the events of its SSE stream, one text frame each. The socket keeps its latest response's
//! whole context, so continuing it reads no history from the store (also when it was not stored).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{request, stream};
use crate::api::auth::Caller;
use crate::api::browse::ListPage;
use crate::api::error::{ApiError, ApiResult, ErrorBody};
use crate::api::fields::invalid_type;
use crate::api::input::check_input_items;
use crate::api::limits::Slot;
use crate::api::openapi::Failures;
use crate::api::query::{Query, ResponseListParams};
use crate::api::request_id::RequestId;
use crate::api::AppState;
use crate::engine::{EngineError, LocalContext, LocalTurn, Presenter, TurnEvent, TurnRequest};
use crate::model::{Response as ModelResponse, ResponseStatus};
use crate::store::ResponseNode;
use crate::telemetry;

/// How often the server pings an idle client, so that proxies keep the connection open.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a closing socket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// GET /v1/responses with upgrade headers: the socket (authenticated and admitted like any request, before the
/// upgrade). Without them, the list of stored responses (a threadline extension).
#[utoipa::path(get, path = "/v1/responses", operation_id = "listResponses", tag = "Responses",
    summary = "List stored responses (threadline extension); with WebSocket upgrade headers, WebSocket mode",
    params(ResponseListParams),
    responses((status = 200, description = "A page of stored responses, as nodes.", body = ListPage<ResponseNode>),
        (status = 101, description = "Switching Protocols: WebSocket mode, `response.create` frames answered with \
            their streamed events."),
        Failures),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    query: Result<Query<ResponseListParams>, ApiError>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The list reads the query; WebSocket mode takes none.
    let Ok(upgrade) = upgrade else {
        let listed = match query {
            Ok(Query(query)) => crate::api::browse::list_responses(&state, &caller.tenant, query).await,
            Err(err) => Err(err),
        };
        return listed.into_response();
    };
    // A frame may be as large as a request body; a larger one ends the socket.
    let largest = state.max_body_bytes;
    let upgrade = upgrade.max_message_size(largest).max_frame_size(largest);
    // A shutdown waits for the socket to send its last events and close.
    let held = state.engine.tasks().hold();
    let connection = Connection { state, caller, request_id, kept: None, running: None };
    upgrade.on_upgrade(move |socket| async move {
        connection.run(socket).await;
        drop(held);
    })
}

/// One socket's state.
struct Connection {
    state: AppState,
    caller: Caller,
    /// The upgrade request's id, which every turn of the socket passes upstream.
    request_id: String,
    /// The latest response of the socket with its whole context.
    kept: Option<Kept>,
    /// The response in flight.
    running: Option<Running>,
}

/// A response kept by its socket: its id and its whole context (history, input, output).
struct Kept {
    id: String,
    context: Arc<LocalContext>,
}

/// The response in flight on a socket.
struct Running {
    updates: mpsc::UnboundedReceiver<Update>,
    /// Whether it continues the kept response (which its failure evicts).
    continues_kept: bool,
    /// Whether it is kept once finished (a turn of a conversation is not: its id continues from the store).
    keep: bool,
    /// Its history and input, once it has started.
    context: LocalContext,
    sequence_number: u64,
    /// Shows its events as its `include` asked.
    presenter: Presenter,
    /// Its place among the tenant's requests in progress.
    _slot: Slot,
}

/// Why the server closes a socket.
enum Ending {
    /// It has been open `limits.websocket_lifetime`.
    Lifetime,
    /// The server is stopping (and no response is in flight).
    Stopping,
}

/// What a running turn tells its socket.
enum Update {
    /// It started, with this context so far.
    Started(LocalContext),
    Event(Box<TurnEvent>),
    /// It failed before it started.
    Refused(EngineError),
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let _open = telemetry::WebSocketGuard::open();
        let limit = tokio::time::sleep(self.state.websocket_lifetime);
        tokio::pin!(limit);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let stopping = self.state.stopping.clone();
        let end = loop {
            let frames = tokio::select! {
                biased;
                () = stopping.cancelled(), if self.running.is_none() => break Ending::Stopping,
                () = &mut limit => break Ending::Lifetime,
                frame = socket.recv() => match frame {
                    Some(Ok(message)) => self.receive(message),
                    // Gone, or closed (tungstenite has answered its close frame).
                    Some(Err(_)) | None => return,
                },
                update = next_update(&mut self.running) => self.update(update),
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            for frame in frames {
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
        };
        let close = match end {
            Ending::Lifetime => {
                let minutes = self.state.websocket_lifetime.as_secs().div_ceil(60);
                let reached = ApiError::invalid(format!(
                    "Responses websocket connection limit reached ({minutes} minutes). Create a new websocket \
                     connection to continue."
                ))
                .code("websocket_connection_limit_reached");
                let _ = socket.send(Message::Text(error_event(reached).into())).await;
                CloseFrame { code: close_code::NORMAL, reason: "websocket_connection_limit_reached".into() }
            }
            Ending::Stopping => CloseFrame { code: close_code::AWAY, reason: "the server is stopping".into() },
        };
        if socket.send(Message::Close(Some(close))).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
        }
    }

    /// A client frame: the events to send back.
    fn receive(&mut self, message: Message) -> Vec<String> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let binary = ApiError::invalid("Binary frames are not supported; send JSON text frames.");
                return vec![error_event(binary.code("invalid_json"))];
            }
            // The socket answers pings itself; a close frame ends the socket at the next read.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Vec::new(),
        };
        match self.create(text.as_str()) {
            Ok(()) => Vec::new(),
            Err(err) => vec![error_event(err)],
        }
    }

    /// A `response.create` frame: starts its response.
    fn create(&mut self, text: &str) -> ApiResult<()> {
        let mut fields = create_fields(text)?;
        if self.running.is_some() {
            return Err(ApiError::invalid(
                "A response is already in progress on this connection; send the next response.create once it has \
                 finished.",
            )
            .code("response_already_in_progress"));
        }
        // Each response counts against the tenant's limits as a request does, in progress until it ends.
        let slot = self.state.limiter.admit_on_connection(&self.caller.tenant)?;
        // Every response on a socket is streamed: `stream: true` (which OpenAI's Agents SDK sends in every frame) says
        // so again and runs as if absent (it lets `stream_options` through, as over POST); any other `stream`, and
        // `background`, is refused.
        for key in ["stream", "background"] {
            let streamed = key == "stream" && fields.get(key) == Some(&Value::Bool(true));
            if fields.contains_key(key) && !streamed {
                return Err(ApiError::invalid(format!(
                    "Unsupported parameter: '{key}' is not allowed in WebSocket mode (every response is streamed)."
                ))
                .param(key)
                .code("unsupported_parameter"));
            }
        }
        let generate = match fields.remove("generate") {
            None => true,
            Some(Value::Bool(generate)) => generate,
            Some(other) => return Err(invalid_type("generate", "a boolean", &other)),
        };
        let body = Value::Object(fields);
        check_input_items(&body, self.state.max_input_items)?;
        let request = request::parse_create(body, self.caller.clone(), self.request_id.clone())?;
        let presenter = self.state.engine.presenter(&self.caller.tenant, request.include.encrypted_reasoning);
        self.start(request.turn, generate, presenter, slot);
        Ok(())
    }

    /// Runs `turn` as the socket's response in flight, on from the kept response when it continues that.
    fn start(&mut self, mut turn: TurnRequest, generate: bool, presenter: Presenter, slot: Slot) {
        let kept = self.kept.as_ref().filter(|kept| turn.previous_response_id.as_deref() == Some(kept.id.as_str()));
        let continues_kept = kept.is_some();
        turn.local = Some(LocalTurn { history: kept.map(|kept| kept.context.clone()), generate });
        let keep = turn.conversation.is_none();
        let (updates, receiver) = mpsc::unbounded_channel();
        let engine = self.state.engine.clone();
        // The turn runs on whether or not the socket is still open, and a shutdown waits for it.
        self.state.engine.tasks().spawn_starter(async move {
            match engine.respond_local(turn).await {
                Ok((mut events, context)) => {
                    let _ = updates.send(Update::Started(context));
                    while let Some(event) = events.recv().await {
                        let _ = updates.send(Update::Event(Box::new(event)));
                    }
                }
                Err(err) => {
                    let _ = updates.send(Update::Refused(err));
                }
            }
        });
        let context = LocalContext::default();
        let running =
            Running { updates: receiver, continues_kept, keep, context, sequence_number: 0, presenter, _slot: slot };
        self.running = Some(running);
    }

    /// What the running response told: the events to send.
    fn update(&mut self, update: Option<Update>) -> Vec<String> {
        let Some(running) = self.running.as_mut() else { return Vec::new() };
        match update {
            Some(Update::Started(context)) => {
                running.context = context;
                Vec::new()
            }
            Some(Update::Event(event)) => {
                // The socket keeps the response as it was made, not as this client was shown it.
                let finished = match &*event {
                    TurnEvent::Finished(response) => Some(response.clone()),
                    _ => None,
                };
                let shown = running.presenter.event(*event);
                let numbered = stream::numbered(&shown, &mut running.sequence_number);
                // The wire types serialize without fail (string keys, no fallible impls).
                let frames = numbered.iter().map(|event| serde_json::to_string(event).unwrap_or_default()).collect();
                if let Some(response) = finished {
                    self.finish(response);
                }
                frames
            }
            Some(Update::Refused(err)) => {
                self.finish_failed();
                vec![error_event(err.into())]
            }
            None => {
                self.finish_failed();
                vec![error_event(ApiError::internal("a response on a WebSocket stopped without its end"))]
            }
        }
    }

    /// The running response finished: it becomes the kept one (a failed one evicts what it continued).
    fn finish(&mut self, response: ModelResponse) {
        if !matches!(response.status, ResponseStatus::Completed | ResponseStatus::Incomplete) {
            return self.finish_failed();
        }
        let Some(running) = self.running.take() else { return };
        if running.keep {
            let mut context = running.context;
            let tokens = self.state.engine.item_tokens(&self.caller.tenant, &response.model, &response.output);
            context.extend(response.output, tokens);
            self.kept = Some(Kept { id: response.id, context: Arc::new(context) });
        }
    }

    /// The running response failed: a continuation of the kept response evicts it.
    fn finish_failed(&mut self) {
        if self.running.take().is_some_and(|running| running.continues_kept) {
            self.kept = None;
        }
    }
}

/// The fields of a `response.create` frame, its `type` taken off.
fn create_fields(text: &str) -> ApiResult<Map<String, Value>> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(text) else {
        return Err(ApiError::invalid("The frame is not a JSON object.").code("invalid_json"));
    };
    match fields.remove("type") {
        Some(Value::String(kind)) if kind == "response.create" => Ok(fields),
        Some(Value::String(kind)) => {
            Err(ApiError::invalid(format!("Invalid value: '{kind}'. Supported values are: 'response.create'."))
                .param("type")
                .code("invalid_value"))
        }
        Some(other) => Err(invalid_type("type", "a string", &other)),
        None => Err(ApiError::invalid("Missing required parameter: 'type'.")
            .param("type")
            .code("missing_required_parameter")),
    }
}

/// The next update of the running response; never, when none runs.
async fn next_update(running: &mut Option<Running>) -> Option<Update> {
    match running {
        Some(running) => running.updates.recv().await,
        None => std::future::pending().await,
    }
}

/// An error as a socket sends it: `{"type":"error","error":{message,type,param,code},"status":N}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "error")]
struct ErrorEvent {
    error: ErrorBody,
    status: u16,
}

/// An error as its event's text.
fn error_event(err: ApiError) -> String {
    err.log();
    let event = ErrorEvent { status: err.status.as_u16(), error: err.body };
    // The wire types serialize without fail (string keys, no fallible impls).
    serde_json::to_string(&event).unwrap_or_default()
}
