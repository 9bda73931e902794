//! The SQL shared by both stores and the plain functions that turn rows into model types; `sql_store.rs` runs them
//! in the one implementation of `Store`, generic over the sqlx database type.
//!
//! Statements read alike on SQLite and Postgres: `$n` parameters, each first used in order (SQLite numbers named
//! parameters by first appearance), and rows read into plain tuples.

use serde_json::Value;

use super::cache::{HistoryCache, TurnEntry};
use super::retention::Cutoffs;
use super::{Chain, ItemList, NewTurn, Order, Page, PageRequest, StoreError, StoreResult};
use crate::model::{Conversation, Item, Pieces, Response, ResponseStatus};

pub const INPUT: i64 = 0;
pub const OUTPUT: i64 = 1;
/// Items per multi-row INSERT, well below both databases' bound-parameter limits.
pub const ITEMS_PER_INSERT: usize = 1000;

pub const INSERT_RESPONSES: &str =
    "INSERT INTO responses (id, tenant, previous_response_id, status, created_at, body, pieces, preview) ";
/// Responses per multi-row INSERT.
pub const RESPONSES_PER_INSERT: usize = 500;

pub const INSERT_ITEMS: &str = "INSERT INTO items (tenant, response_id, direction, position, item_id, body, tokens) ";

/// A response's body, pieces and creation time with its output items (a row with NULL item when it has none).
pub const SELECT_RESPONSE: &str = "SELECT r.body, r.pieces, r.created_at, i.body FROM responses r \
    LEFT JOIN items i ON i.response_id = r.id AND i.tenant = r.tenant AND i.direction = 1 \
    WHERE r.tenant = $1 AND r.id = $2 AND r.deleted_at IS NULL ORDER BY i.position";

/// The chain ending at `$2`, deepest ancestor first, each turn's input then output items with their token counts.
pub const SELECT_HISTORY: &str = "WITH RECURSIVE chain(id, parent, status, created_at, deleted_at, depth) AS ( \
        SELECT id, previous_response_id, status, created_at, deleted_at, CAST(0 AS BIGINT) FROM responses \
        WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL \
        UNION ALL \
        SELECT r.id, r.previous_response_id, r.status, r.created_at, r.deleted_at, c.depth + 1 FROM responses r \
        JOIN chain c ON r.id = c.parent \
        WHERE r.tenant = $1 AND c.depth + 1 < $3 \
    ) \
    SELECT c.depth, c.id, c.parent, c.status, c.created_at, c.deleted_at, i.body, i.tokens FROM chain c \
    LEFT JOIN items i ON i.response_id = c.id AND i.tenant = $1 \
    ORDER BY c.depth DESC, i.direction, i.position";

/// Response `$2`'s creation time (no row when it does not exist), and the position of its input item `$3` (the
/// paging cursor).
pub const INPUT_CURSOR: &str = "SELECT r.created_at, (SELECT MIN(i.position) FROM items i \
        WHERE i.tenant = $1 AND i.response_id = $2 AND i.direction = 0 AND i.item_id = $3) \
    FROM responses r WHERE r.tenant = $1 AND r.id = $2 AND r.deleted_at IS NULL";

/// Up to `$4` input items of response `$2` after position `$3`, oldest or newest first.
pub const INPUT_PAGE: [&str; 2] = [
    "SELECT body FROM items WHERE tenant = $1 AND response_id = $2 AND direction = 0 AND position > $3 \
        ORDER BY position LIMIT $4",
    "SELECT body FROM items WHERE tenant = $1 AND response_id = $2 AND direction = 0 AND position < $3 \
        ORDER BY position DESC LIMIT $4",
];

pub const DELETE_RESPONSE: &str = "UPDATE responses SET body = NULL, pieces = NULL, preview = NULL, deleted_at = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL";

/// Stores setting `$1` as `$2` unless it has a value.
pub const INSERT_SETTING: &str = "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

pub const SELECT_SETTING: &str = "SELECT value FROM settings WHERE name = $1";

pub const DELETE_ITEMS: &str = "DELETE FROM items WHERE tenant = $1 AND response_id = $2";

/// A conversation created at `$3`, last used at `$5`.
pub const INSERT_CONVERSATION: &str =
    "INSERT INTO conversations (id, tenant, created_at, metadata, updated_at, next_position) \
    VALUES ($1, $2, $3, $4, $5, 0)";

/// Conversation `$2`, unless deleted or last used before `$3`.
pub const SELECT_CONVERSATION: &str = "SELECT id, created_at, metadata FROM conversations \
    WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL AND updated_at >= $3";

/// Replaces the metadata of conversation `$4` (unless deleted or last used before `$5`), used now (`$2`).
pub const UPDATE_CONVERSATION: &str = "UPDATE conversations SET metadata = $1, updated_at = $2 \
    WHERE tenant = $3 AND id = $4 AND deleted_at IS NULL AND updated_at >= $5";

/// Reserves `$1` positions at the end of conversation `$4` (unless deleted or last used before `$5`), used now
/// (`$2`) and previewed by `$6` unless it has a preview, locking its row until the transaction ends; returns the
/// position after them.
pub const RESERVE_POSITIONS: &str = "UPDATE conversations SET next_position = next_position + $1, updated_at = $2, \
    preview = COALESCE(preview, $6) \
    WHERE tenant = $3 AND id = $4 AND deleted_at IS NULL AND updated_at >= $5 RETURNING next_position";

pub const INSERT_CONVERSATION_ITEMS: &str =
    "INSERT INTO conversation_items (tenant, conversation_id, position, item_id, body, tokens) ";

/// A conversation's items in order with their token counts (one row with a NULL item when it has none; no row when
/// it does not exist, or was last used before `$3`).
pub const SELECT_CONVERSATION_ITEMS: &str = "SELECT c.id, ci.body, ci.tokens FROM conversations c \
    LEFT JOIN conversation_items ci ON ci.conversation_id = c.id AND ci.tenant = c.tenant \
    WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL AND c.updated_at >= $3 ORDER BY ci.position";

/// Conversation `$2`'s last use (no row when it does not exist), and the position of its item `$3` (the paging
/// cursor).
pub const CONVERSATION_CURSOR: &str = "SELECT c.updated_at, (SELECT MIN(ci.position) FROM conversation_items ci \
        WHERE ci.tenant = $1 AND ci.conversation_id = $2 AND ci.item_id = $3) \
    FROM conversations c WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL";

/// Up to `$4` items of conversation `$2` after position `$3`, oldest or newest first.
pub const CONVERSATION_PAGE: [&str; 2] = [
    "SELECT body FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND position > $3 \
        ORDER BY position LIMIT $4",
    "SELECT body FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND position < $3 \
        ORDER BY position DESC LIMIT $4",
];

/// Whether conversation `$2` exists (and was last used at `$4` or later), and its item `$3` (by its unique key).
pub const SELECT_CONVERSATION_ITEM: &str = "SELECT c.id, (SELECT ci.body FROM conversation_items ci \
        WHERE ci.tenant = $1 AND ci.conversation_id = $2 AND ci.item_id = $3) \
    FROM conversations c WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL AND c.updated_at >= $4";

/// Deletes conversation `$3` at `$1`, unless deleted or last used before `$4`.
pub const DELETE_CONVERSATION: &str = "UPDATE conversations SET metadata = '{}', preview = NULL, deleted_at = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL AND updated_at >= $4";

pub const DELETE_CONVERSATION_ITEMS: &str = "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2";

/// Removes item `$3` from conversation `$2`, unless the conversation is deleted or was last used before `$4`.
pub const DELETE_CONVERSATION_ITEM: &str =
    "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND item_id = $3 \
    AND EXISTS (SELECT 1 FROM conversations c \
        WHERE c.tenant = $1 AND c.id = $2 AND c.deleted_at IS NULL AND c.updated_at >= $4)";

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

/// A row of `SELECT_CONVERSATION_ITEMS`: conversation id, item JSON (NULL for none), its token count.
pub type ConversationItemRow = (String, Option<String>, Option<i64>);

/// Items, each with its stored token count (`None`: stored without one).
pub type CountedItems = Vec<(Item, Option<u32>)>;

/// The items of a conversation, each with its stored token count, from the rows of `SELECT_CONVERSATION_ITEMS`;
/// `None` when there are no rows.
pub fn conversation_items(rows: &[ConversationItemRow]) -> StoreResult<Option<CountedItems>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let items = rows.iter().filter_map(|(_, body, count)| Some((body.as_deref()?, *count)));
    let items = items.map(|(body, count)| Ok((serde_json::from_str(body)?, stored_count(count))));
    items.collect::<StoreResult<_>>().map(Some)
}

/// A token count as stored: `None` when there is none (or it is out of range, so the reader counts the item itself).
fn stored_count(count: Option<i64>) -> Option<u32> {
    count.and_then(|count| u32::try_from(count).ok())
}

/// A row whose last column may hold an item's JSON.
pub trait ItemColumn {
    fn item(&self) -> Option<&str>;
}

impl ItemColumn for ResponseRow {
    fn item(&self) -> Option<&str> {
        self.3.as_deref()
    }
}

/// The statements that page `list`: the one that finds its owner (with its creation or last-use time) and the
/// cursor's position, the page statements in either order, and the owner's id.
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

/// A row of `SELECT_RESPONSE`: body, pieces, created at, output item JSON.
pub type ResponseRow = (Option<String>, Option<String>, i64, Option<String>);

/// A row of `SELECT_HISTORY`: depth, id, parent id, status, created at, deleted at, item JSON, its token count.
pub type HistoryRow = (i64, String, Option<String>, String, i64, Option<i64>, Option<String>, Option<i64>);

/// The response body to store: the Response JSON without `output` (its items are rows of their own).
pub fn response_body(response: &Response) -> StoreResult<String> {
    let mut body = serde_json::to_value(response)?;
    if let Value::Object(fields) = &mut body {
        fields.remove("output");
    }
    Ok(body.to_string())
}

/// A stored item's row: `(id, JSON, token count)`.
pub type ItemRow = (String, String, Option<i64>);

/// The rows of items with their token counts (parallel to `items`; an item past the end of `tokens` gets none),
/// serialised once for every table they go to.
pub fn item_rows<'a>(items: impl IntoIterator<Item = &'a Item>, tokens: &[u32]) -> StoreResult<Vec<ItemRow>> {
    let mut counts = tokens.iter().map(|&count| i64::from(count));
    items.into_iter().map(|item| Ok((item.id().to_string(), serde_json::to_string(item)?, counts.next()))).collect()
}

/// An item row of a stored response: `(tenant, response id, direction, position, (item id, JSON, token count))`.
pub type ResponseItem<'a> = (&'a str, &'a str, i64, i64, &'a ItemRow);

/// A response row to insert: `(id, previous id, status, created at, body, pieces, preview)`.
pub type ResponseInsert = (String, Option<String>, &'static str, i64, String, String, Option<String>);

/// A finished turn as rows, ready for the writer: built (and serialised) by the request's own task.
#[derive(Debug)]
pub struct TurnRows {
    pub tenant: String,
    /// The response's row, when the response itself is stored.
    pub response: Option<ResponseInsert>,
    /// How many of `items` are input; the rest are output.
    pub inputs: usize,
    pub items: Vec<ItemRow>,
    /// The conversation the items are appended to.
    pub conversation: Option<String>,
    /// The times its conversation's expiry is decided by, and its last use set to.
    pub cutoffs: Cutoffs,
}

impl TurnRows {
    pub fn new(tenant: &str, turn: &NewTurn<'_>, cutoffs: Cutoffs) -> StoreResult<Self> {
        let response = turn.response;
        let items = item_rows(turn.input.iter().chain(&response.output), turn.tokens)?;
        let inputs = items[..turn.input.len()].iter().map(|(_, json, _)| json.as_str());
        let row = match turn.store_response {
            true => Some((
                response.id.clone(),
                response.previous_response_id.clone(),
                response.status.as_str(),
                response.created_at,
                response_body(response)?,
                serde_json::to_string(turn.pieces)?,
                super::lists::preview_of(inputs, false),
            )),
            false => None,
        };
        Ok(Self {
            tenant: tenant.to_string(),
            response: row,
            inputs: turn.input.len(),
            items,
            conversation: turn.conversation.map(str::to_string),
            cutoffs,
        })
    }

    /// The item rows of the stored response.
    pub fn response_items(&self) -> impl Iterator<Item = ResponseItem<'_>> {
        let id = self.response.as_ref().map(|(id, ..)| id.as_str());
        let rows = id.into_iter().flat_map(|id| self.items.iter().enumerate().map(move |(i, row)| (id, i, row)));
        rows.map(|(id, i, row)| match i.checked_sub(self.inputs) {
            None => (self.tenant.as_str(), id, INPUT, i as i64, row),
            Some(output) => (self.tenant.as_str(), id, OUTPUT, output as i64, row),
        })
    }

    /// What the items weigh in the history cache.
    pub fn json_bytes(&self) -> usize {
        self.items.iter().map(|(_, json, _)| json.len()).sum()
    }
}

/// The stored response from the rows of `SELECT_RESPONSE`; `None` when there are none.
pub fn assemble_response(rows: &[ResponseRow]) -> StoreResult<Option<(Response, Pieces)>> {
    let Some((Some(body), pieces, ..)) = rows.first() else {
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

/// The chain from the rows of `SELECT_HISTORY` (read after the cache's `epoch`), its turns cached as they are
/// built; `None` when there are no rows; `ChainTooDeep` when it was cut at `max_depth`.
pub fn assemble_chain(
    tenant: &str,
    rows: &[HistoryRow],
    max_depth: u32,
    cache: &HistoryCache,
    epoch: u64,
) -> StoreResult<Option<Chain>> {
    let Some((depth, _, parent, ..)) = rows.first() else {
        return Ok(None);
    };
    if depth + 1 >= i64::from(max_depth) && parent.is_some() {
        return Err(StoreError::ChainTooDeep(max_depth));
    }
    let mut tip = None;
    for turn in rows.chunk_by(|a, b| a.0 == b.0) {
        let (_, id, _, status, created_at, deleted_at, ..) = &turn[0];
        let status = ResponseStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("response {id} has an unknown status '{status}'")))?;
        let rows = turn.iter().filter_map(|row| Some((row.6.as_deref()?, row.7)));
        let (bodies, counts): (Vec<&str>, Vec<Option<i64>>) = rows.unzip();
        let items = bodies.iter().map(|body| serde_json::from_str(body)).collect::<Result<_, _>>()?;
        let entry = TurnEntry {
            tenant: tenant.to_string(),
            id: id.clone(),
            status,
            created_at: *created_at,
            items,
            tokens: counts.into_iter().map(stored_count).collect(),
            json_bytes: bodies.iter().map(|body| body.len()).sum(),
            deleted: deleted_at.is_some(),
        };
        tip = Some(cache.insert(tip, entry, epoch));
    }
    Ok(tip.map(|tip| Chain { tip, cached: false }))
}
