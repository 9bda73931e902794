//! POST /v1/chat/completions: a stateless pass-through to the upstream that serves the request's model.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::extract::JsonBody;
use super::fields::{invalid_type, missing};
use super::AppState;
use crate::error::{ApiError, ApiResult};

/// Forwards the body unchanged and returns the upstream's answer.
pub async fn completions(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object.", None, Some("invalid_type")));
    }
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(missing("model")),
        Some(Value::String(model)) => model,
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::unsupported("stream", "Streaming"));
    }
    let upstream = state.engine.upstreams().route(model)?;
    Ok(Json(upstream.chat(&body).await?))
}
