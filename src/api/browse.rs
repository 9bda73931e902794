//! Browsing what a tenant stored: GET /v1/conversations (OpenAI's list, each conversation with a preview), and the
//! threadline extensions GET /v1/responses (the stored responses) and GET /v1/responses/{id}/tree (a response and
//! those that continue it, as nodes).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{PathId, QueryParams, Tenant};
use super::fields::invalid_value;
use super::ids;
use super::openapi::params::{ConversationListParams, ResponseId, TreeParams};
use super::openapi::Failures;
use super::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::engine::EngineError;
use crate::store::{ConversationEntry, ListQuery, Order, ResponseNode};

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

/// The parameters every list takes: `limit` (1–100, default 20), `after`, `order` (`desc` default), any number of
/// `metadata[KEY]=VALUE`, and `search`.
fn list_query(query: &mut QueryParams) -> ApiResult<ListQuery> {
    let after = query.take("after");
    ids::cursor(after.as_deref())?;
    let limit = query.integer("limit", 1, 100)?.unwrap_or(20) as u32;
    let order = match query.take("order").as_deref() {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(other) => return Err(invalid_value("order", other, &["asc", "desc"])),
    };
    let metadata = query.take_keyed("metadata");
    for (key, value) in &metadata {
        if key.is_empty() || key.chars().chain(value.chars()).any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "Invalid 'metadata[{key}]': a metadata key is not empty, and neither it nor its value holds a \
                 control character."
            ))
            .param(format!("metadata[{key}]"))
            .code("invalid_value"));
        }
    }
    let search = query.take("search");
    if search.as_deref().is_some_and(|text| text.contains('\0')) {
        return Err(ApiError::invalid("Invalid 'search': it holds a NUL character.")
            .param("search")
            .code("invalid_value"));
    }
    Ok(ListQuery { after, limit, order, metadata, search, parent: None, roots: false })
}

/// GET /v1/conversations
#[utoipa::path(get, path = "/v1/conversations", operation_id = "listConversations", tag = "Conversations",
    summary = "List conversations, newest first", params(ConversationListParams),
    responses((status = 200, description = "A page of conversations.", body = ListPage<ConversationEntry>), Failures))]
pub async fn list_conversations(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    mut query: QueryParams,
) -> ApiResult<Json<ListPage<ConversationEntry>>> {
    let list = list_query(&mut query)?;
    query.finish()?;
    let (entries, has_more) = state.engine.list_conversations(&tenant, &list).await?;
    Ok(Json(ListPage::new(entries, has_more, |entry| &entry.conversation.id)))
}

/// GET /v1/responses without a WebSocket upgrade: the list parameters, `previous_response_id` (only the responses
/// that continue it) and `root=true` (only chain roots).
pub async fn list_responses(
    state: &AppState,
    tenant: &str,
    mut query: QueryParams,
) -> ApiResult<Json<ListPage<ResponseNode>>> {
    let mut list = list_query(&mut query)?;
    list.parent = query.take("previous_response_id");
    if list.parent.as_deref().is_some_and(|id| !ids::is_possible(id)) {
        return Err(ApiError::invalid("Invalid 'previous_response_id': not a response id.")
            .param("previous_response_id")
            .code("invalid_value"));
    }
    list.roots = query.bool("root")?.unwrap_or(false);
    query.finish()?;
    let (nodes, has_more) = state.engine.list_responses(tenant, &list).await?;
    Ok(Json(ListPage::new(nodes, has_more, |node| &node.id)))
}

/// GET /v1/responses/{id}/tree: `depth` (1–1000, default 100) levels below it, at most `limit` (1–1000, default
/// 200) nodes.
#[utoipa::path(get, path = "/v1/responses/{id}/tree", operation_id = "getResponseTree", tag = "Responses",
    summary = "A response and the responses that continue it, branch by branch (threadline extension)",
    params(ResponseId, TreeParams),
    responses((status = 200, description = "The response, its descendants and its ancestors' ids.", body = ResponseTree),
        Failures),
    extensions(("x-threadline-extension" = json!(true))))]
pub async fn tree(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathId(id): PathId,
    mut query: QueryParams,
) -> ApiResult<Json<ResponseTree>> {
    let depth = query.integer("depth", 1, 1000)?.unwrap_or(100) as u32;
    let limit = query.integer("limit", 1, 1000)?.unwrap_or(200) as u32;
    query.finish()?;
    ids::known_or(&id, EngineError::ResponseNotFound)?;
    let tree = state.engine.response_tree(&tenant, &id, depth, limit).await?;
    Ok(Json(ResponseTree { object: "response.tree", id, path: tree.path, data: tree.nodes, has_more: tree.has_more }))
}
