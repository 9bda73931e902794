//! `POST /mcp`: the MCP server over Streamable HTTP, stateless (each request stands alone, so any replica answers
//! it and each is authenticated and limited like any other caller request), answering in JSON. The body is read
//! as JSON whatever its content type, and refused as on every route (malformed or too deeply nested: 400; too
//! large: 413) before the SDK sees it; the SDK's own refusals (a wrong `Accept`; JSON that is no JSON-RPC message,
//! which it answers 415) become OpenAI-shaped errors, a 400 for the latter.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceExt;

use super::schema::{AcceptBoth, JsonRpcMessage};
use super::Server;
use crate::api::error::ApiError;
use crate::api::extract::JsonBytes;
use crate::api::openapi::Failures;
use crate::api::AppState;

/// The Streamable HTTP service of the MCP server.
pub type Service = StreamableHttpService<Server, NeverSessionManager>;

/// Most bytes of an SDK refusal's text kept as the error message.
const MAX_REFUSAL_BYTES: usize = 4096;

/// The service answering `/mcp` with `server`, reading bodies of at most `max_body_bytes`.
pub fn service(server: Server, max_body_bytes: usize) -> Service {
    // Hosts are not checked: the server's own authentication guards every caller route, /mcp among them.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(max_body_bytes);
    StreamableHttpService::new(move || Ok(server.clone()), Arc::new(NeverSessionManager::default()), config)
}

/// POST /mcp
#[utoipa::path(post, path = "/mcp", operation_id = "mcp", tag = "MCP", summary = "The MCP server (Streamable HTTP)",
    description = "Threadline extension: the Model Context Protocol over Streamable HTTP, stateless, answering in \
        JSON. Its tools `stateful_chat`, `get_conversation` and `delete_conversation_turn` hold conversations kept \
        like any response here, continuable through `/v1/responses` and `/api/v1/chat`. The body is a JSON-RPC \
        message; send `Accept: application/json, text/event-stream`.",
    params(("Accept" = inline(AcceptBoth), Header,
        description = "Both content types, as Streamable HTTP asks (otherwise a 406).")),
    request_body(content = inline(JsonRpcMessage), description = "A JSON-RPC request or notification.",
        content_type = "application/json"),
    responses((status = 200, description = "The JSON-RPC answer.", content_type = "application/json"),
        (status = 202, description = "A notification was accepted."), Failures),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn handle(State(state): State<AppState>, mut parts: Parts, JsonBytes(body): JsonBytes) -> Response {
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let request = Request::from_parts(parts, Body::from(body));
    let response = match state.mcp.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let json =
        response.headers().get(CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response.map(Body::new);
    }
    let text = to_bytes(Body::new(response.into_body()), MAX_REFUSAL_BYTES).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("Refused").to_string() } else { message };
    match status {
        _ if status.is_server_error() => ApiError::internal(message).into_response(),
        // The body is JSON (read above), but no JSON-RPC message.
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::invalid(message).into_response(),
        _ => ApiError::status(status, message).into_response(),
    }
}
