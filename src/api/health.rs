//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::openapi::bodies::Health;
use super::openapi::Failures;
use super::AppState;
use crate::api::error::ApiResult;

/// GET /healthz
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "Operations", summary = "Liveness",
    responses((status = 200, body = Health)),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// GET /readyz
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "Operations",
    summary = "Readiness: the database answers", responses((status = 200, body = Health), Failures),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.engine.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
