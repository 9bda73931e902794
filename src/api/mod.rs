//! The HTTP surfaces: one module per wire API, each translating its JSON to engine calls and back.

pub mod auth;
pub mod body;
mod browse;
mod chat;
mod console;
mod conversations;
pub mod error;
pub mod extract;
pub mod fields;
mod health;
pub mod ids;
mod include;
pub mod input;
pub mod limits;
mod list;
mod lmstudio;
pub mod mcp;
mod models;
mod openapi;
mod query;
pub mod request_id;
mod responses;
mod sse;
pub mod typed;
pub mod wording;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{HeaderName, AUTHORIZATION};
use axum::http::{Method, Uri};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::config::Limits;
use crate::engine::Engine;
use crate::telemetry;

/// The request headers that carry a client's key.
static CLIENT_KEY_HEADERS: [HeaderName; 3] =
    [AUTHORIZATION, HeaderName::from_static("x-api-key"), HeaderName::from_static("api-key")];

/// What every handler shares: the engine, who may call, the most items an `input` array may hold, how long a
/// WebSocket may stay open, and whether the server is stopping.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<auth::Authenticator>,
    pub max_input_items: usize,
    /// The largest request body, and WebSocket message.
    pub max_body_bytes: usize,
    /// How long a WebSocket may stay open.
    pub websocket_lifetime: std::time::Duration,
    /// Cancelled at shutdown: every WebSocket closes once its response in flight is done.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The per-tenant limits, which the routes and each response on a WebSocket go through.
    pub limiter: Arc<limits::Limiter>,
    /// The MCP server over Streamable HTTP (`/mcp`).
    pub mcp: mcp::http::Service,
}

/// The routes that serve a caller (behind authentication and the per-tenant limits), by path.
fn caller_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        // GET with upgrade headers: WebSocket mode; a plain GET lists the stored responses.
        ("/v1/responses", post(responses::create).get(responses::connect)),
        ("/v1/responses/compact", post(responses::compact)),
        ("/v1/responses/input_tokens", post(responses::input_tokens)),
        ("/v1/responses/{id}", get(responses::retrieve).delete(responses::delete)),
        ("/v1/responses/{id}/cancel", post(responses::cancel)),
        ("/v1/responses/{id}/input_items", get(responses::input_items)),
        ("/v1/responses/{id}/tree", get(browse::tree)),
        ("/v1/conversations", post(conversations::create).get(browse::list_conversations)),
        (
            "/v1/conversations/{id}",
            get(conversations::retrieve).post(conversations::update).delete(conversations::delete),
        ),
        ("/v1/conversations/{id}/items", post(conversations::add_items).get(conversations::list_items)),
        (
            "/v1/conversations/{id}/items/{item_id}",
            get(conversations::retrieve_item).delete(conversations::delete_item),
        ),
        ("/v1/chat/completions", post(chat::completions)),
        ("/v1/models", get(models::list)),
        ("/api/v1/chat", post(lmstudio::chat)),
        ("/mcp", post(mcp::http::handle)),
    ]
}

/// The paths of every route that serves a caller (the tests check each against tenant isolation).
pub fn caller_paths() -> Vec<&'static str> {
    caller_routes().into_iter().map(|(path, _)| path).collect()
}

/// All routes, with OpenAI-shaped answers for unknown paths, wrong methods, oversized bodies and panics; every
/// request counted and timed, and given an `x-request-id`.
///
/// Layers, outermost first: the clients' keys (`authorization`, `x-api-key`, `api-key`) marked sensitive, so that
/// no layer or log can print them (`Debug` shows `Sensitive`); `request_id::assign`, the tracing span,
/// `telemetry::track_http`, the panic catcher, the body limit; then, on the caller routes only (not health,
/// readiness, metrics or unknown paths), `auth::authenticate`, which names the caller and its tenant, inside it
/// `body::read_whole`, which reads the body within its deadline, and inside that `limits::enforce`: that tenant's
/// concurrency and rate limits and the request timeout, which so count a request only once its body is in.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let limiter = state.limiter.clone();
    let body = Arc::new(body::BodyRules::new(limits));
    let callers = caller_routes().into_iter().fold(Router::new(), |router, (path, route)| router.route(path, route));
    let callers = callers
        .route_layer(middleware::from_fn_with_state(limiter, limits::enforce))
        .route_layer(middleware::from_fn_with_state(body, body::read_whole))
        .route_layer(middleware::from_fn_with_state(state.auth.clone(), auth::authenticate));
    Router::new()
        .merge(callers)
        .route("/healthz", get(health::live))
        .merge(console::routes())
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .layer(middleware::from_fn(telemetry::track_http))
        // Every log line of a request — also from the turn task it spawns — carries its method, path and id.
        .layer(TraceLayer::new_for_http().make_span_with(request_id::span))
        .layer(middleware::from_fn(request_id::assign))
        .layer(SetSensitiveRequestHeadersLayer::new(CLIENT_KEY_HEADERS.clone()))
        .with_state(state)
}

/// The answer to a successful DELETE: `{id, object:"<kind>.deleted", deleted:true}`.
fn deleted(id: String, object: &'static str) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"id": id, "object": object, "deleted": true}))
}

/// GET /metrics: every series in the Prometheus text format, the store's gauges (and the background queue, shared by
/// every replica) read as of now.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "Operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Every series in the Prometheus text format.", content_type = "text/plain")),
    extensions(("x-threadline-extension" = json!(true))))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.engine.read_gauges().await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], telemetry::render())
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(false, format!("Invalid URL ({method} {})", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(true, format!("Method not allowed ({method} {})", uri.path()))
}
