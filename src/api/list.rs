//! Cursor-paged lists: the `after`, `limit` and `order` query parameters, and the `{object:"list", data, first_id,
//! last_id, has_more}` answer.

use serde::Serialize;

use super::extract::QueryParams;
use super::fields::invalid_value;
use crate::api::error::ApiResult;
use crate::model::Item;
use crate::store::{Order, Page, PageRequest};

/// Reads `after`, `limit` (1–100, default 20) and `order` (`asc`|`desc`, default `desc`).
pub fn page_request(query: &mut QueryParams) -> ApiResult<PageRequest> {
    let after = query.take("after");
    let limit = query.integer("limit", 1, 100)?.unwrap_or(20) as u32;
    let order = match query.take("order").as_deref() {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(other) => return Err(invalid_value("order", other, &["asc", "desc"])),
    };
    Ok(PageRequest { after, limit, order })
}

/// A list of items as the API answers it.
#[derive(Serialize)]
pub struct List<'a> {
    object: &'static str,
    data: &'a [Item],
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
    has_more: bool,
}

impl<'a> List<'a> {
    /// `items`, followed by more when `has_more`.
    pub fn new(items: &'a [Item], has_more: bool) -> Self {
        let first_id = items.first().map(Item::id);
        Self { object: "list", data: items, first_id, last_id: items.last().map(Item::id), has_more }
    }

    /// A page read from the store.
    pub fn page(page: &'a Page) -> Self {
        Self::new(&page.items, page.has_more)
    }
}
