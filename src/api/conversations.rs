//! The Conversations API: conversations (create, retrieve, update, delete) and their items (add, list, retrieve,
//! delete).

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::extract::{JsonBody, PathId, PathIds, Tenant};
use super::fields::{check_array_length, invalid_type, metadata, parse_metadata, Fields};
use super::ids;
use super::include::Include;
use super::input::parse_input;
use super::list::{List, PageQuery};
use super::openapi::{bodies, Failures};
use super::query::{IncludeQuery, PageParams, Query};
use super::AppState;
use crate::api::error::ApiResult;
use crate::engine::EngineError;
use crate::model::{Conversation, Item};

/// Most items one request may add.
const MAX_ITEMS: usize = 20;

/// POST /v1/conversations
#[utoipa::path(post, path = "/v1/conversations", operation_id = "createConversation", tag = "Conversations",
    summary = "Create a conversation", request_body = bodies::CreateConversationBody,
    responses((status = 200, body = Conversation), Failures))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Conversation>> {
    let mut f = Fields::new(body, "")?;
    let items = match f.take("items") {
        Some(items) => parse_items(items)?,
        None => Vec::new(),
    };
    let metadata = parse_metadata(&mut f)?;
    f.finish()?;
    Ok(Json(state.engine.create_conversation(&tenant, metadata, items).await?))
}

/// GET /v1/conversations/{id}
#[utoipa::path(get, path = "/v1/conversations/{id}", operation_id = "getConversation", tag = "Conversations",
    summary = "Retrieve a conversation",
    params(("id" = String, Path, description = "The conversation id (`conv_…`).")),
    responses((status = 200, body = Conversation), Failures))]
pub async fn retrieve(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
) -> ApiResult<Json<Conversation>> {
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    Ok(Json(state.engine.conversation(&tenant, &id).await?))
}

/// POST /v1/conversations/{id}: replaces the metadata.
#[utoipa::path(post, path = "/v1/conversations/{id}", operation_id = "updateConversation", tag = "Conversations",
    summary = "Replace a conversation's metadata",
    params(("id" = String, Path, description = "The conversation id (`conv_…`).")),
    request_body = bodies::UpdateConversationBody,
    responses((status = 200, body = Conversation), Failures))]
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Conversation>> {
    let mut f = Fields::new(body, "")?;
    let metadata = metadata(f.required("metadata")?)?;
    f.finish()?;
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    Ok(Json(state.engine.update_conversation(&tenant, &id, &metadata).await?))
}

/// DELETE /v1/conversations/{id}
#[utoipa::path(delete, path = "/v1/conversations/{id}", operation_id = "deleteConversation", tag = "Conversations",
    summary = "Delete a conversation",
    params(("id" = String, Path, description = "The conversation id (`conv_…`).")),
    responses((status = 200, body = bodies::Deleted), Failures))]
pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    state.engine.delete_conversation(&tenant, &id).await?;
    Ok(super::deleted(id, "conversation.deleted"))
}

/// POST /v1/conversations/{id}/items
#[utoipa::path(post, path = "/v1/conversations/{id}/items", operation_id = "createConversationItems",
    tag = "Conversations", summary = "Add items to a conversation",
    params(("id" = String, Path, description = "The conversation id (`conv_…`)."), IncludeQuery),
    request_body = bodies::AddItemsBody, responses((status = 200, body = List), Failures))]
pub async fn add_items(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    Query(query): Query<IncludeQuery>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<List>> {
    let include = Include::from_query(&query.include)?;
    let mut f = Fields::new(body, "")?;
    let items = parse_items(f.required("items")?)?;
    f.finish()?;
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    let items = state.engine.add_conversation_items(&tenant, &id, items).await?;
    let items = state.engine.presenter(&tenant, include.encrypted_reasoning).items(items);
    Ok(Json(List::new(items, false)))
}

/// GET /v1/conversations/{id}/items
#[utoipa::path(get, path = "/v1/conversations/{id}/items", operation_id = "listConversationItems",
    tag = "Conversations", summary = "List a conversation's items",
    params(("id" = String, Path, description = "The conversation id (`conv_…`)."), PageParams),
    responses((status = 200, body = List), Failures))]
pub async fn list_items(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    PageQuery(page, include): PageQuery,
) -> ApiResult<Json<List>> {
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    ids::cursor(page.after.as_deref())?;
    let page = state.engine.conversation_items(&tenant, &id, &page).await?;
    let items = state.engine.presenter(&tenant, include.encrypted_reasoning).items(page.items);
    Ok(Json(List::new(items, page.has_more)))
}

/// GET /v1/conversations/{id}/items/{item_id}
#[utoipa::path(get, path = "/v1/conversations/{id}/items/{item_id}", operation_id = "getConversationItem",
    tag = "Conversations", summary = "Retrieve a conversation's item",
    params(("id" = String, Path, description = "The conversation id (`conv_…`)."),
        ("item_id" = String, Path, description = "The item id (`msg_…`, `fc_…`, `fco_…`, `rs_…`, `cmp_…`)."),
        IncludeQuery),
    responses((status = 200, body = Item), Failures))]
pub async fn retrieve_item(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathIds(id, item_id): PathIds,
    Query(query): Query<IncludeQuery>,
) -> ApiResult<Json<Item>> {
    let include = Include::from_query(&query.include)?;
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    ids::known_or(&item_id, EngineError::ItemNotFound)?;
    let item = state.engine.conversation_item(&tenant, &id, &item_id).await?;
    Ok(Json(state.engine.presenter(&tenant, include.encrypted_reasoning).item(item)))
}

/// DELETE /v1/conversations/{id}/items/{item_id}: returns the conversation.
#[utoipa::path(delete, path = "/v1/conversations/{id}/items/{item_id}", operation_id = "deleteConversationItem",
    tag = "Conversations", summary = "Delete a conversation's item",
    params(("id" = String, Path, description = "The conversation id (`conv_…`)."),
        ("item_id" = String, Path, description = "The item id (`msg_…`, `fc_…`, `fco_…`, `rs_…`, `cmp_…`).")),
    responses((status = 200, description = "The conversation.", body = Conversation), Failures))]
pub async fn delete_item(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathIds(id, item_id): PathIds,
) -> ApiResult<Json<Conversation>> {
    ids::known_or(&id, EngineError::ConversationNotFound)?;
    ids::known_or(&item_id, EngineError::ItemNotFound)?;
    Ok(Json(state.engine.delete_conversation_item(&tenant, &id, &item_id).await?))
}

/// `items`: an array of at most 20 input items.
fn parse_items(value: Value) -> ApiResult<Vec<Item>> {
    match &value {
        Value::Array(items) => {
            check_array_length("items", items.len(), MAX_ITEMS)?;
            parse_input(value, "items")
        }
        other => Err(invalid_type("items", "an array", other)),
    }
}
