//! Browsing what a tenant stored: GET /v1/conversations (OpenAI's list, each conversation with a preview), and the
//! threadline extensions GET /v1/responses (the stored responses) and GET /v1/responses/{id}/tree (a response and
//! those that continue it, as nodes).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{PathId, Tenant};
use super::ids;
use super::openapi::Failures;
use super::query::{ConversationListParams, Query, ResponseListParams, TreeParams};
use super::AppState;
use crate::api::error::ApiResult;
use crate::engine::EngineError;
use crate::store::{ConversationEntry, ResponseNode};

/// A page of a list as the API answers it.
#[derive(Serialize, ToSchema)]
pub struct ListPage<T> {
    object: &'static str,
    data: Vec<T>,
    first_id: Option<String>,
    last_id: Option<String>,
    has_more: bool,
}

impl<T> ListPage<T> {
    fn new(data: Vec<T>, has_more: bool, id: impl Fn(&T) -> &str) -> Self {
        let first_id = data.first().map(|entry| id(entry).to_string());
        let last_id = data.last().map(|entry| id(entry).to_string());
        Self { object: "list", data, first_id, last_id, has_more }
    }
}

/// A response's tree as the API answers it.
#[derive(Serialize, ToSchema)]
pub struct ResponseTree {
    object: &'static str,
    id: String,
    path: Vec<String>,
    data: Vec<ResponseNode>,
    has_more: bool,
}

/// GET /v1/conversations
#[utoipa::path(get, path = "/v1/conversations", operation_id = "listConversations", tag = "Conversations",
    summary = "List conversations, newest first", params(ConversationListParams),
    responses((status = 200, description = "A page of conversations.", body = ListPage<ConversationEntry>), Failures))]
pub async fn list_conversations(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(query): Query<ConversationListParams>,
) -> ApiResult<Json<ListPage<ConversationEntry>>> {
    let list = query.list();
    let (entries, has_more) = state.engine.list_conversations(&tenant, &list).await?;
    Ok(Json(ListPage::new(entries, has_more, |entry| &entry.conversation.id)))
}

/// GET /v1/responses without a WebSocket upgrade: the list parameters, `previous_response_id` (only the responses
/// that continue it) and `root=true` (only chain roots).
pub async fn list_responses(
    state: &AppState,
    tenant: &str,
    query: ResponseListParams,
) -> ApiResult<Json<ListPage<ResponseNode>>> {
    let list = query.list();
    let (nodes, has_more) = state.engine.list_responses(tenant, &list).await?;
    Ok(Json(ListPage::new(nodes, has_more, |node| &node.id)))
}

/// GET /v1/responses/{id}/tree: `depth` (1–1000, default 100) levels below it, at most `limit` (1–1000, default
/// 200) nodes.
#[utoipa::path(get, path = "/v1/responses/{id}/tree", operation_id = "getResponseTree", tag = "Responses",
    summary = "A response and the responses that continue it, branch by branch (threadline extension)",
    params(("id" = String, Path, description = "The response id (`resp_…`)."), TreeParams),
    responses((status = 200, description = "The response, its descendants and its ancestors' ids.", body = ResponseTree),
        Failures),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn tree(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    Query(query): Query<TreeParams>,
) -> ApiResult<Json<ResponseTree>> {
    let (depth, limit) = query.bounds();
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    let tree = state.engine.response_tree(&tenant, &id, depth, limit).await?;
    Ok(Json(ResponseTree { object: "response.tree", id, path: tree.path, data: tree.nodes, has_more: tree.has_more }))
}
