//! Cursor-paged lists (`after`, `limit`, `order`) rendered as `{object:"list", data, first_id, last_id, has_more}`.

use serde_json::{json, Value};

use super::extract::QueryParams;
use super::fields::invalid_value;
use crate::error::{ApiError, ApiResult};
use crate::model::Item;

/// Paging parameters of a list endpoint.
pub struct ListParams {
    after: Option<String>,
    limit: usize,
    descending: bool,
}

impl ListParams {
    /// Reads `after`, `limit` (1–100, default 20) and `order` (`asc`|`desc`, default desc).
    pub fn from_query(query: &mut QueryParams) -> ApiResult<Self> {
        let after = query.take("after");
        let limit = query.integer("limit", 1, 100)?.unwrap_or(20) as usize;
        let descending = match query.take("order").as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(other) => return Err(invalid_value("order", other, &["asc", "desc"])),
        };
        Ok(Self { after, limit, descending })
    }

    /// One page of `items` (given oldest first); `after` names an item that must be in the list.
    pub fn page(&self, mut items: Vec<Item>) -> ApiResult<Value> {
        if self.descending {
            items.reverse();
        }
        let start = match &self.after {
            None => 0,
            Some(after) => match items.iter().position(|item| item.id() == after) {
                Some(at) => at + 1,
                None => {
                    return Err(ApiError::NotFound {
                        message: format!("No item found with id '{after}'."),
                        param: Some("after".into()),
                        code: None,
                    })
                }
            },
        };
        let rest = items.get(start..).unwrap_or_default();
        let data = &rest[..rest.len().min(self.limit)];
        Ok(json!({
            "object": "list",
            "data": data,
            "first_id": data.first().map(Item::id),
            "last_id": data.last().map(Item::id),
            "has_more": rest.len() > data.len(),
        }))
    }
}
