//! Stored items found by id anywhere in a tenant's data: what an `item_reference` names when the turn's own chain or conversation does not hold it.
//!
//! One statement reads every candidate for all the ids at once — the items of the tenant's responses that are not
//! deleted, and of its conversations that are neither deleted nor expired — through the `(tenant, item_id)` indexes
//! of both item tables. A deleted response's items are erased with it, and a `store: false` turn's were never
//! written; a response older than the retention counts only while it is alive (`retention.rs`), checked for the
//! candidate chosen, so items of expired responses are not found, exactly like deleted ones.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::statement::Statement;
use super::{Cutoffs, StoreResult};
use crate::model::Item;

/// The items of response rows: `tenant = $1` follows, then `ANY_ITEM_ID` and its list.
pub const RESPONSE_ITEMS_BY_ID: &str = "SELECT CAST(0 AS BIGINT), i.item_id, i.body, r.id, r.created_at FROM items i \
    JOIN responses r ON r.id = i.response_id AND r.tenant = i.tenant WHERE r.deleted_at IS NULL AND i.tenant = ";
pub const ANY_ITEM_ID: &str = " AND i.item_id IN ";
/// Then the items of conversations: the tenant follows, then `USED_SINCE` (the oldest last use kept), then
/// `ANY_CONVERSATION_ITEM_ID` and its list.
pub const CONVERSATION_ITEMS_BY_ID: &str = " UNION ALL \
    SELECT CAST(1 AS BIGINT), ci.item_id, ci.body, c.id, c.updated_at FROM conversation_items ci \
    JOIN conversations c ON c.id = ci.conversation_id AND c.tenant = ci.tenant \
    WHERE c.deleted_at IS NULL AND ci.tenant = ";
pub const USED_SINCE: &str = " AND c.updated_at >= ";
pub const ANY_CONVERSATION_ITEM_ID: &str = " AND ci.item_id IN ";

/// Ids per statement (each bound twice), well below both databases' bound-parameter limits.
pub const IDS_PER_SELECT: usize = 1000;

/// The kind of a candidate that is an item of a conversation (an item of a response is 0).
pub const CONVERSATION_ITEM: i64 = 1;

/// A row of those statements: kind, item id, item JSON, the id of its response or conversation, and that one's
/// creation time (a response) or last use (a conversation).
pub type StoredItemRow = (i64, String, String, String, i64);

/// The candidates of one id, best first: the items of its responses, newest response first, then of its
/// conversations, most recently used first.
pub fn ranked<'a>(rows: &'a [StoredItemRow], id: &str) -> Vec<&'a StoredItemRow> {
    let mut found: Vec<&StoredItemRow> = rows.iter().filter(|row| row.1 == id).collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| (b.4, &b.3).cmp(&(a.4, &a.3))));
    found
}

/// Whether a candidate row is certainly kept: a conversation's item (its expiry is in the statement), or an item of
/// a fresh response. Any other is kept only if its response is alive.
pub fn surely_kept(row: &StoredItemRow, cutoffs: &Cutoffs) -> bool {
    row.0 == CONVERSATION_ITEM || cutoffs.fresh(row.4)
}

/// The item of a candidate row.
pub fn item(row: &StoredItemRow) -> StoreResult<Item> {
    Ok(serde_json::from_str(&row.2)?)
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    /// The stored items of `tenant` with these ids, at most one per id (see `Store::stored_items`).
    pub(super) async fn stored_items_of(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Item>> {
        let cutoffs = self.retention.cutoffs();
        let mut rows: Vec<StoredItemRow> = Vec::new();
        for chunk in ids.chunks(IDS_PER_SELECT) {
            let mut query = Statement::new(RESPONSE_ITEMS_BY_ID);
            query.push_bind(tenant).push(ANY_ITEM_ID).push_list(chunk.iter().copied());
            query.push(CONVERSATION_ITEMS_BY_ID).push_bind(tenant);
            query.push(USED_SINCE).push_bind(cutoffs.conversations);
            query.push(ANY_CONVERSATION_ITEM_ID).push_list(chunk.iter().copied());
            rows.extend(query.query_as::<DB, StoredItemRow>().fetch_all(&self.pool).await?);
        }
        let mut found = Vec::new();
        let mut unique: Vec<&str> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        for id in unique {
            for row in ranked(&rows, id) {
                if surely_kept(row, &cutoffs) || self.alive(tenant, &row.3, row.4, &cutoffs).await? {
                    found.push(item(row)?);
                    break;
                }
            }
        }
        Ok(found)
    }
}
