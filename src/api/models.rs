//! GET /v1/models: the models the upstreams list, each under the upstream that would serve it.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use futures::future::join_all;
use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiResult;

/// Lists every model a request could be routed to; an upstream that cannot list falls back to its configured names.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let upstreams = state.engine.upstreams();
    let listings = join_all(upstreams.all().map(|(upstream, names)| async move {
        let listed = upstream.models().await.unwrap_or_else(|err| {
            tracing::warn!(upstream = upstream.name(), error = %err, "listing models failed; using configured names");
            names
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": upstream.name()}))
                .collect()
        });
        (upstream.clone(), listed)
    }))
    .await;
    let mut data: Vec<Value> = Vec::new();
    for (upstream, models) in listings {
        for model in models {
            let Some(id) = model.get("id").and_then(Value::as_str) else {
                continue;
            };
            let served_here = upstreams.route(id).is_ok_and(|route| Arc::ptr_eq(&route, &upstream));
            if served_here && !data.iter().any(|m| m["id"] == id) {
                data.push(model);
            }
        }
    }
    Ok(Json(json!({"object": "list", "data": data})))
}
