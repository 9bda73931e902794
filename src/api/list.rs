//! Cursor-paged lists: the `after`, `limit` and `order` query parameters, and the `{object:"list", data, first_id,
//! last_id, has_more}` answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;

use super::include::Include;
use super::query::{PageParams, Query};
use crate::api::error::ApiError;
use crate::model::Item;
use crate::store::PageRequest;

/// The paging parameters of a list endpoint (`PageParams`): the page, and the `include[]` extras to show.
pub struct PageQuery(pub PageRequest, pub Include);

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<PageParams>::from_request_parts(parts, state).await?;
        let include = Include::from_query(&params.include)?;
        Ok(PageQuery(params.page(), include))
    }
}

/// A list of items as the API answers it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ItemList)]
pub struct List {
    object: &'static str,
    data: Vec<Item>,
    first_id: Option<String>,
    last_id: Option<String>,
    has_more: bool,
}

impl List {
    /// `items`, followed by more when `has_more`.
    pub fn new(items: Vec<Item>, has_more: bool) -> Self {
        let first_id = items.first().map(|item| item.id().to_string());
        let last_id = items.last().map(|item| item.id().to_string());
        Self { object: "list", data: items, first_id, last_id, has_more }
    }
}
