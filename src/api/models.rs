//! GET /v1/models: the models the upstreams list, each under the upstream that would serve it.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::openapi::Failures;
use super::AppState;
use crate::upstream::ModelInfo;

/// `{object:"list", data:[models]}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelInfo>,
}

/// Lists every model a request could be routed to.
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "Models",
    summary = "List the models the upstreams serve", responses((status = 200, body = ModelList), Failures))]
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList { object: "list", data: state.engine.models().await })
}
