//! The Responses API surface: create (plain, streamed or in the background), retrieve (or follow as a stream),
//! cancel, delete, list the input items of responses, count a request's input tokens, and compact a conversation
//! into a window; and WebSocket mode (`socket`).

mod request;
pub(super) mod socket;
mod stream;
mod tools;

pub use socket::connect;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};

use super::auth::Caller;
use super::extract::{JsonBody, PathId, Tenant};
use super::ids;
use super::include::Include;
use super::input::check_input_items;
use super::list::{List, PageQuery};
use super::request_id::RequestId;
use super::{sse, AppState};
use crate::api::error::ApiResult;
use crate::api::openapi::{bodies, Failures};
use crate::api::query::{PageParams, Query, RetrieveParams};
use crate::engine::EngineError;
use crate::model;

/// POST /v1/responses
#[utoipa::path(post, path = "/v1/responses", operation_id = "createResponse", tag = "Responses",
    summary = "Run a turn: plain, streamed or in the background", request_body = bodies::CreateResponseBody,
    responses((status = 200, description = "The response; with `stream`, its events.",
        content((model::Response = "application/json"), (String = "text/event-stream"))), Failures))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_input_items(&body, state.max_input_items)?;
    let request = request::parse_create(body, caller, request_id)?;
    let presenter = state.engine.presenter(&request.turn.tenant, request.include.encrypted_reasoning);
    if request.turn.background {
        let tenant = request.turn.tenant.clone();
        let queued = state.engine.enqueue(request.turn).await?;
        if request.stream {
            let events = state.engine.follow(&tenant, &queued.id).await?;
            return Ok(stream::into_sse(events.map(move |event| presenter.event(event)), None));
        }
        return Ok(Json(presenter.response(queued)).into_response());
    }
    if request.stream {
        let events = sse::turn_events(state.engine.respond_stream(request.turn).await?);
        return Ok(stream::into_sse(events.map(move |event| presenter.event(event)), None));
    }
    Ok(Json(presenter.response(state.engine.respond(request.turn).await?)).into_response())
}

/// GET /v1/responses/{id}, or with `stream=true` its events from the start (after `starting_after`, if given): a
/// replay, live as they come for a background response still running.
#[utoipa::path(get, path = "/v1/responses/{id}", operation_id = "getResponse", tag = "Responses",
    summary = "Retrieve a response, or follow its events",
    params(("id" = String, Path, description = "The response id (`resp_…`)."), RetrieveParams),
    responses((status = 200, description = "The response; with `stream=true`, its events.",
        content((model::Response = "application/json"), (String = "text/event-stream"))), Failures))]
pub async fn retrieve(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    Query(query): Query<RetrieveParams>,
) -> ApiResult<Response> {
    let include = Include::from_query(&query.include)?;
    let (stream, starting_after) = (query.stream.unwrap_or(false), query.starting_after);
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    let presenter = state.engine.presenter(&tenant, include.encrypted_reasoning);
    if stream {
        let events = state.engine.follow(&tenant, &id).await?;
        return Ok(stream::into_sse(events.map(move |event| presenter.event(event)), starting_after));
    }
    Ok(Json(presenter.response(state.engine.response(&tenant, &id).await?)).into_response())
}

/// POST /v1/responses/{id}/cancel
#[utoipa::path(post, path = "/v1/responses/{id}/cancel", operation_id = "cancelResponse", tag = "Responses",
    summary = "Cancel a background response",
    params(("id" = String, Path, description = "The response id (`resp_…`).")),
    responses((status = 200, body = model::Response), Failures))]
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
) -> ApiResult<Json<crate::model::Response>> {
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    Ok(Json(state.engine.presenter(&tenant, false).response(state.engine.cancel(&tenant, &id).await?)))
}

/// DELETE /v1/responses/{id}
#[utoipa::path(delete, path = "/v1/responses/{id}", operation_id = "deleteResponse", tag = "Responses",
    summary = "Delete a response",
    params(("id" = String, Path, description = "The response id (`resp_…`).")),
    responses((status = 200, body = bodies::Deleted), Failures))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    state.engine.delete_response(&tenant, &id).await?;
    Ok(crate::api::deleted(id, "response.deleted"))
}

/// GET /v1/responses/{id}/input_items
#[utoipa::path(get, path = "/v1/responses/{id}/input_items", operation_id = "listInputItems", tag = "Responses",
    summary = "List the input items of a response",
    params(("id" = String, Path, description = "The response id (`resp_…`)."), PageParams),
    responses((status = 200, body = List), Failures))]
pub async fn input_items(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    PageQuery(page, include): PageQuery,
) -> ApiResult<Json<List>> {
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    ids::cursor(page.after.as_deref())?;
    let page = state.engine.input_items(&tenant, &id, &page).await?;
    let items = state.engine.presenter(&tenant, include.encrypted_reasoning).items(page.items);
    Ok(Json(List::new(items, page.has_more)))
}

/// POST /v1/responses/input_tokens: the tokens of the context a create with these fields would send.
#[utoipa::path(post, path = "/v1/responses/input_tokens", operation_id = "countInputTokens", tag = "Responses",
    summary = "Count the input tokens of a create", request_body = bodies::InputTokensBody,
    responses((status = 200, body = bodies::InputTokens), Failures))]
pub async fn input_tokens(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    check_input_items(&body, state.max_input_items)?;
    let turn = request::parse_count(body, caller, request_id)?;
    let tokens = state.engine.count_input_tokens(turn).await?;
    Ok(Json(json!({"object": "response.input_tokens", "input_tokens": tokens})))
}

/// POST /v1/responses/compact: the conversation compacted into a window of kept user messages and a compaction item.
#[utoipa::path(post, path = "/v1/responses/compact", operation_id = "compactConversation", tag = "Responses",
    summary = "Compact a conversation into a window", request_body = bodies::CompactBody,
    responses((status = 200, body = bodies::Compacted), Failures))]
pub async fn compact(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    check_input_items(&body, state.max_input_items)?;
    let window = state.engine.compact(request::parse_compact(body, caller, request_id)?).await?;
    Ok(Json(json!({
        "id": window.id,
        "object": "response.compaction",
        "created_at": window.created_at,
        "output": window.output,
        "usage": window.usage,
    })))
}
