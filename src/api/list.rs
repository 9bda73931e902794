//! Cursor-paged lists: the `after`, `limit` and `order` query parameters, and the `{object:"list", data, first_id,
//! last_id, has_more}` answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;

use super::extract::QueryParams;
use super::fields::invalid_value;
use super::include::Include;
use crate::api::error::ApiError;
use crate::model::Item;
use crate::store::{Order, PageRequest};

/// The paging parameters of a list endpoint: `after`, `limit` (1–100, default 20) and `order` (`asc`|`desc`,
/// default `desc`), and the `include[]` extras to show; any other parameter is `unknown_parameter`.
pub struct PageQuery(pub PageRequest, pub Include);

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let mut query = QueryParams::from_request_parts(parts, state).await?;
        let after = query.take("after");
        let limit = query.integer("limit", 1, 100)?.unwrap_or(20) as u32;
        let order = match query.take("order").as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => return Err(invalid_value("order", other, &["asc", "desc"])),
        };
        let include = Include::from_query(&mut query)?;
        query.finish()?;
        Ok(PageQuery(PageRequest { after, limit, order }, include))
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
