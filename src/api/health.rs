//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::api::error::ApiResult;

/// GET /healthz
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// GET /readyz
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.engine.store().ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
