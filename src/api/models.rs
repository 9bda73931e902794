//! GET /v1/models: the models the upstreams list, each under the upstream that would serve it.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::upstream::ModelInfo;

/// `{object:"list", data:[models]}`.
#[derive(Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelInfo>,
}

/// Lists every model a request could be routed to.
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList { object: "list", data: state.engine.upstreams().models().await })
}
