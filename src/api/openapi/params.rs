//! The path and query parameters of the routes, as the OpenAPI document describes them: the handlers read them by
//! hand (`QueryParams`, `PageQuery`, `PathId`), with the same names, ranges and defaults as here.

#![allow(dead_code)] // Read only by the document's generator.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// The path of a response.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ResponseId {
    /// The response id (`resp_…`).
    id: String,
}

/// The path of a conversation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversationId {
    /// The conversation id (`conv_…`).
    id: String,
}

/// The path of a conversation's item.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversationItemId {
    /// The conversation id (`conv_…`).
    id: String,
    /// The item id (`msg_…`, `fc_…`, `fco_…`, `rs_…`, `cmp_…`).
    item_id: String,
}

/// An extra to show (also written `include[]`).
#[derive(Deserialize, ToSchema)]
#[serde(rename = "include")]
pub enum IncludeValue {
    #[serde(rename = "message.output_text.logprobs")]
    Logprobs,
    #[serde(rename = "reasoning.encrypted_content")]
    EncryptedReasoning,
}

/// The order of a list by creation time.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    Desc,
}

/// `include` alone (reading one item).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeQuery {
    /// Extras to show (repeatable; also written `include[]`).
    #[param(inline)]
    include: Option<Vec<IncludeValue>>,
}

/// The paging parameters of a list of items.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// An item id from a previous page: list the items after it.
    after: Option<String>,
    /// How many items to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<Order>,
    /// Extras to show (repeatable; also written `include[]`).
    #[param(inline)]
    include: Option<Vec<IncludeValue>>,
}

/// The query of GET /v1/responses/{id}.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetrieveParams {
    /// Extras to show (repeatable; also written `include[]`).
    #[param(inline)]
    include: Option<Vec<IncludeValue>>,
    /// Stream the response's events from the start as `text/event-stream` (live while a background one runs).
    #[param(default = false)]
    stream: Option<bool>,
    /// With `stream=true`: only the events after this `sequence_number`.
    #[param(minimum = 0)]
    starting_after: Option<u64>,
    /// Accepted for compatibility; replays carry no obfuscation padding.
    include_obfuscation: Option<bool>,
}

/// The query of GET /v1/conversations.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationListParams {
    /// A conversation id from a previous page: list the conversations after it.
    after: Option<String>,
    /// How many conversations to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<Order>,
    /// `metadata[KEY]=VALUE` (repeatable): only the objects whose metadata has every such pair exactly.
    #[param(style = DeepObject, explode)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
    /// Threadline extension: only those whose preview contains this text (case-insensitive).
    search: Option<String>,
}

/// The query of GET /v1/responses (a threadline extension).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResponseListParams {
    /// A response id from a previous page: list the responses after it.
    after: Option<String>,
    /// How many responses to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<Order>,
    /// `metadata[KEY]=VALUE` (repeatable): only the responses whose metadata has every such pair exactly.
    #[param(style = DeepObject, explode)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
    /// Only those whose preview contains this text (case-insensitive).
    search: Option<String>,
    /// Only the responses that continue this one (its branches).
    previous_response_id: Option<String>,
    /// Only chain roots: responses continuing nothing, or a response that is deleted, expired or absent.
    #[param(default = false)]
    root: Option<bool>,
}

/// The query of GET /v1/responses/{id}/tree (a threadline extension).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    /// Levels below the response to include.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    depth: Option<u32>,
    /// Most nodes to include.
    #[param(minimum = 1, maximum = 1000, default = 200)]
    limit: Option<u32>,
}
