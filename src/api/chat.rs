//! POST /v1/chat/completions: a stateless pass-through to the upstream that serves the request's model.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::Value;

use super::extract::JsonBody;
use super::fields::{invalid_type, missing};
use super::{sse, AppState};
use crate::error::{ApiError, ApiResult};

/// Forwards the body unchanged and returns the upstream's answer; a streamed answer's chunks pass through as they
/// arrive.
pub async fn completions(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    if !body.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object.", None, Some("invalid_type")));
    }
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(missing("model")),
        Some(Value::String(model)) => model,
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    let upstream = state.engine.upstreams().route(model)?;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let chunks = upstream.chat_stream(&body).await?;
        // A broken upstream connection ends the stream; the client sees it end without `[DONE]`.
        return Ok(sse::response(
            chunks.take_while(|chunk| std::future::ready(chunk.is_ok())).filter_map(|chunk| async move { chunk.ok() }),
        ));
    }
    Ok(Json(upstream.chat(&body).await?).into_response())
}
