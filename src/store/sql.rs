//! The SQL shared by both stores and the plain functions that turn rows into model types; `sql_store.rs` expands
//! the one implementation of `Store` for each sqlx database type.
//!
//! Statements read alike on SQLite and Postgres: `$n` parameters, each first used in order (SQLite numbers named
//! parameters by first appearance), and rows read into plain tuples.

use serde_json::Value;

use super::{Chain, ItemList, Order, Page, PageRequest, StoreError, StoreResult};
use crate::model::{Conversation, Item, Pieces, Response, ResponseStatus};

pub const INPUT: i64 = 0;
pub const OUTPUT: i64 = 1;
/// Items per multi-row INSERT, well below both databases' bound-parameter limits.
pub const ITEMS_PER_INSERT: usize = 1000;

pub const INSERT_RESPONSE: &str = "INSERT INTO responses \
    (id, tenant, previous_response_id, status, created_at, body, pieces) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub const INSERT_ITEMS: &str = "INSERT INTO items (tenant, response_id, direction, position, item_id, body) ";

/// A response's body and pieces with its output items (a row with NULL item when it has none).
pub const SELECT_RESPONSE: &str = "SELECT r.body, r.pieces, i.body FROM responses r \
    LEFT JOIN items i ON i.response_id = r.id AND i.tenant = r.tenant AND i.direction = 1 \
    WHERE r.tenant = $1 AND r.id = $2 AND r.deleted_at IS NULL ORDER BY i.position";

/// The chain ending at `$2`, deepest ancestor first, each turn's input then output items.
pub const SELECT_HISTORY: &str = "WITH RECURSIVE chain(id, parent, status, depth) AS ( \
        SELECT id, previous_response_id, status, CAST(0 AS BIGINT) FROM responses \
        WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL \
        UNION ALL \
        SELECT r.id, r.previous_response_id, r.status, c.depth + 1 FROM responses r \
        JOIN chain c ON r.id = c.parent \
        WHERE r.tenant = $1 AND c.depth + 1 < $3 \
    ) \
    SELECT c.depth, c.parent, c.status, i.body FROM chain c \
    LEFT JOIN items i ON i.response_id = c.id AND i.tenant = $1 \
    ORDER BY c.depth DESC, i.direction, i.position";

/// Whether response `$2` exists, and the position of its input item `$3` (the paging cursor).
pub const INPUT_CURSOR: &str = "SELECT r.id, (SELECT MIN(i.position) FROM items i \
        WHERE i.tenant = $1 AND i.response_id = $2 AND i.direction = 0 AND i.item_id = $3) \
    FROM responses r WHERE r.tenant = $1 AND r.id = $2 AND r.deleted_at IS NULL";

/// Up to `$4` input items of response `$2` after position `$3`, oldest or newest first.
pub const INPUT_PAGE: [&str; 2] = [
    "SELECT body FROM items WHERE tenant = $1 AND response_id = $2 AND direction = 0 AND position > $3 \
        ORDER BY position LIMIT $4",
    "SELECT body FROM items WHERE tenant = $1 AND response_id = $2 AND direction = 0 AND position < $3 \
        ORDER BY position DESC LIMIT $4",
];

pub const DELETE_RESPONSE: &str = "UPDATE responses SET body = NULL, pieces = NULL, deleted_at = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL";

pub const DELETE_ITEMS: &str = "DELETE FROM items WHERE tenant = $1 AND response_id = $2";

pub const INSERT_CONVERSATION: &str = "INSERT INTO conversations (id, tenant, created_at, metadata, next_position) \
    VALUES ($1, $2, $3, $4, 0)";

pub const SELECT_CONVERSATION: &str = "SELECT id, created_at, metadata FROM conversations \
    WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL";

pub const UPDATE_CONVERSATION: &str = "UPDATE conversations SET metadata = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL";

/// Reserves `$1` positions at the end of a conversation (locking its row until the transaction ends) and returns
/// the position after them.
pub const RESERVE_POSITIONS: &str = "UPDATE conversations SET next_position = next_position + $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL RETURNING next_position";

pub const INSERT_CONVERSATION_ITEMS: &str =
    "INSERT INTO conversation_items (tenant, conversation_id, position, item_id, body) ";

/// A conversation's items in order (one row with a NULL item when it has none; no row when it does not exist).
pub const SELECT_CONVERSATION_ITEMS: &str = "SELECT c.id, ci.body FROM conversations c \
    LEFT JOIN conversation_items ci ON ci.conversation_id = c.id AND ci.tenant = c.tenant \
    WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL ORDER BY ci.position";

/// Whether conversation `$2` exists, and the position of its item `$3` (the paging cursor).
pub const CONVERSATION_CURSOR: &str = "SELECT c.id, (SELECT MIN(ci.position) FROM conversation_items ci \
        WHERE ci.tenant = $1 AND ci.conversation_id = $2 AND ci.item_id = $3) \
    FROM conversations c WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL";

/// Up to `$4` items of conversation `$2` after position `$3`, oldest or newest first.
pub const CONVERSATION_PAGE: [&str; 2] = [
    "SELECT body FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND position > $3 \
        ORDER BY position LIMIT $4",
    "SELECT body FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND position < $3 \
        ORDER BY position DESC LIMIT $4",
];

/// Whether conversation `$2` exists, and its item `$3` (by its unique key).
pub const SELECT_CONVERSATION_ITEM: &str = "SELECT c.id, (SELECT ci.body FROM conversation_items ci \
        WHERE ci.tenant = $1 AND ci.conversation_id = $2 AND ci.item_id = $3) \
    FROM conversations c WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL";

pub const DELETE_CONVERSATION: &str = "UPDATE conversations SET metadata = '{}', deleted_at = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL";

pub const DELETE_CONVERSATION_ITEMS: &str = "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2";

pub const DELETE_CONVERSATION_ITEM: &str =
    "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND item_id = $3";

/// The unique key of an item id within a conversation, as Postgres names it and as SQLite's message lists it.
const ITEM_KEY_POSTGRES: &str = "conversation_items_conversation_id_item_id_key";
const ITEM_KEY_SQLITE: &str =
    "UNIQUE constraint failed: conversation_items.conversation_id, conversation_items.item_id";

/// A violation of exactly that key is `DuplicateItem`; any other failure keeps its own meaning.
pub fn duplicate_item(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db)
            if db.is_unique_violation()
                && (db.constraint() == Some(ITEM_KEY_POSTGRES) || db.message() == ITEM_KEY_SQLITE) =>
        {
            StoreError::DuplicateItem
        }
        _ => err.into(),
    }
}

/// A row of `SELECT_CONVERSATION`.
pub type ConversationRow = (String, i64, String);

/// The conversation of a row of `SELECT_CONVERSATION`.
pub fn conversation(row: Option<ConversationRow>) -> StoreResult<Option<Conversation>> {
    row.map(|(id, created_at, metadata)| {
        Ok(Conversation { id, object: "conversation".into(), created_at, metadata: serde_json::from_str(&metadata)? })
    })
    .transpose()
}

/// The items of rows whose last column is an item's JSON (NULL for none); `None` when there are no rows.
pub fn items<R: ItemColumn>(rows: &[R]) -> StoreResult<Option<Vec<Item>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let items = rows.iter().filter_map(ItemColumn::item).map(serde_json::from_str);
    Ok(Some(items.collect::<Result<_, _>>()?))
}

/// A row whose last column may hold an item's JSON.
pub trait ItemColumn {
    fn item(&self) -> Option<&str>;
}

impl ItemColumn for (String, Option<String>) {
    fn item(&self) -> Option<&str> {
        self.1.as_deref()
    }
}

impl ItemColumn for ResponseRow {
    fn item(&self) -> Option<&str> {
        self.2.as_deref()
    }
}

/// The statements that page `list`: the one that finds its owner and the cursor's position, the page statements in
/// either order, and the owner's id.
pub fn list_statements(list: ItemList<'_>) -> (&'static str, [&'static str; 2], &str) {
    match list {
        ItemList::ResponseInput(id) => (INPUT_CURSOR, INPUT_PAGE, id),
        ItemList::Conversation(id) => (CONVERSATION_CURSOR, CONVERSATION_PAGE, id),
    }
}

/// The first position a page reads from: after the cursor's position (`CursorNotFound` if the list has no item
/// with that id), else from the list's start in the page's order.
pub fn page_start(page: &PageRequest, cursor: Option<i64>) -> StoreResult<i64> {
    match (&page.after, cursor, page.order) {
        (Some(_), Some(position), _) => Ok(position),
        (Some(after), None, _) => Err(StoreError::CursorNotFound(after.clone())),
        (None, _, Order::Asc) => Ok(-1),
        (None, _, Order::Desc) => Ok(i64::MAX),
    }
}

/// The statement of a page in its order, from `[ascending, descending]`.
pub fn page_statement(statements: [&'static str; 2], order: Order) -> &'static str {
    statements[usize::from(order == Order::Desc)]
}

/// A page from the item rows of a page statement run with `LIMIT limit + 1`.
pub fn page(rows: &[(String,)], limit: u32) -> StoreResult<Page> {
    let has_more = rows.len() > limit as usize;
    let items = rows.iter().take(limit as usize).map(|(body,)| serde_json::from_str(body));
    Ok(Page { items: items.collect::<Result<_, _>>()?, has_more })
}

/// A row of `SELECT_RESPONSE`.
pub type ResponseRow = (Option<String>, Option<String>, Option<String>);

/// A row of `SELECT_HISTORY`.
pub type HistoryRow = (i64, Option<String>, String, Option<String>);

/// The response body to store: the Response JSON without `output` (its items are rows of their own).
pub fn response_body(response: &Response) -> StoreResult<String> {
    let mut body = serde_json::to_value(response)?;
    if let Value::Object(fields) = &mut body {
        fields.remove("output");
    }
    Ok(body.to_string())
}

/// The item rows of a turn: `(direction, position, item id, JSON)`.
pub fn item_rows(response: &Response, input: &[Item]) -> StoreResult<Vec<(i64, i64, String, String)>> {
    let input = input.iter().enumerate().map(|(i, item)| (INPUT, i, item));
    let output = response.output.iter().enumerate().map(|(i, item)| (OUTPUT, i, item));
    input
        .chain(output)
        .map(|(direction, position, item)| {
            Ok((direction, position as i64, item.id().to_string(), serde_json::to_string(item)?))
        })
        .collect()
}

/// The conversation item rows of an append starting at position `start`: `(position, item id, JSON)`.
pub fn conversation_item_rows(items: &[Item], start: i64) -> StoreResult<Vec<(i64, String, String)>> {
    let rows = items.iter().enumerate();
    rows.map(|(i, item)| Ok((start + i as i64, item.id().to_string(), serde_json::to_string(item)?))).collect()
}

/// The stored response from the rows of `SELECT_RESPONSE`; `None` when there are none.
pub fn assemble_response(rows: &[ResponseRow]) -> StoreResult<Option<(Response, Pieces)>> {
    let Some((Some(body), pieces, _)) = rows.first() else {
        return Ok(None);
    };
    let mut body: Value = serde_json::from_str(body)?;
    let pieces: Pieces = serde_json::from_str(pieces.as_deref().unwrap_or("[]"))?;
    let output = rows.iter().filter_map(ItemColumn::item).map(serde_json::from_str::<Value>);
    let output = output.collect::<Result<Vec<_>, _>>()?;
    if let Value::Object(fields) = &mut body {
        fields.insert("output".into(), Value::Array(output));
    }
    Ok(Some((serde_json::from_value(body)?, pieces)))
}

/// The chain from the rows of `SELECT_HISTORY`; `None` when there are none; `ChainTooDeep` when it was cut at
/// `max_depth`.
pub fn assemble_chain(id: &str, rows: &[HistoryRow], max_depth: u32) -> StoreResult<Option<Chain>> {
    let Some((depth, parent, _, _)) = rows.first() else {
        return Ok(None);
    };
    if depth + 1 >= i64::from(max_depth) && parent.is_some() {
        return Err(StoreError::ChainTooDeep(max_depth));
    }
    let last = rows.last().map(|(_, _, status, _)| status.as_str()).unwrap_or_default();
    let status = ResponseStatus::parse(last)
        .ok_or_else(|| StoreError::Corrupt(format!("response {id} has an unknown status '{last}'")))?;
    let items = rows.iter().filter_map(|(_, _, _, item)| item.as_deref()).map(serde_json::from_str);
    Ok(Some(Chain { status, items: items.collect::<Result<_, _>>()? }))
}
