//! Browsing what a tenant stored: lists of conversations and of responses, and the tree of responses that continue
//! one. The types the `Store` answers with, the SQL shared by both stores (the statements are assembled in
//! `sql_lists.rs`, filters and cursor per query), and the plain functions that turn rows into them.
//!
//! Lists page by keyset on the ids, which sort by creation time. A preview is the text of a message item, at most
//! `PREVIEW_CHARS` characters: a response's last input message and a conversation's first message are stored with
//! their rows; a response's output preview is read from its output items.

use serde::Serialize;
use serde_json::Value;

use super::{Order, StoreResult};
use crate::model::{Conversation, Metadata};

/// The most characters of a preview.
pub const PREVIEW_CHARS: usize = 200;

/// What a list asks for: the page (`after` an id, in `order`, at most `limit`) and its filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub after: Option<String>,
    pub limit: u32,
    pub order: Order,
    /// Metadata keys and the values they must have, all of them.
    pub metadata: Vec<(String, String)>,
    /// Text the preview contains, whatever the case.
    pub search: Option<String>,
    /// Responses only: only those that continue this one.
    pub parent: Option<String>,
    /// Responses only: only chain roots (no previous response, or one that is deleted or gone).
    pub roots: bool,
}

/// A conversation as a list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationEntry {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Threadline extension: the text of its first message, at most 200 characters.
    pub preview: Option<String>,
}

/// A stored response as a list or a tree shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResponseNode {
    pub id: String,
    pub object: &'static str,
    pub previous_response_id: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub status: Option<String>,
    pub model: Option<String>,
    pub background: bool,
    pub conversation_id: Option<String>,
    #[schema(inline)]
    pub metadata: Metadata,
    pub usage: Option<NodeUsage>,
    /// The text of its last input message, at most 200 characters.
    pub preview: Option<String>,
    /// The text of its output messages, at most 200 characters.
    pub output_preview: Option<String>,
    /// How many responses continue it, deleted or not.
    pub children: u64,
    /// Whether it was deleted (kept in a tree because responses continue it; its other fields are then null).
    pub deleted: bool,
}

/// A response's token usage, in short.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// The responses under one: the ids from its chain's root down to its parent, it and its descendants breadth-first
/// (each level by creation time), and whether its depth or size cut the subtree.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    pub path: Vec<String>,
    pub nodes: Vec<ResponseNode>,
    pub has_more: bool,
}

/// The columns of a response node, read as `r` (its children counted), the tree's depth column first when there is
/// one.
pub const NODE_COLUMNS: &str = "r.id, r.previous_response_id, r.created_at, r.status, r.body, r.preview, \
    (SELECT COUNT(*) FROM responses c WHERE c.tenant = r.tenant AND c.previous_response_id = r.id), r.deleted_at";

/// A row of `NODE_COLUMNS`.
pub type NodeRow = (String, Option<String>, i64, String, Option<String>, Option<String>, i64, Option<i64>);

/// Response `r` is alive: fresh (created at the bound cutoff or later), or continued by a fresh response.
pub const ALIVE: [&str; 2] = [
    " AND (r.created_at >= ",
    " OR EXISTS (WITH RECURSIVE subtree(id, created_at, deleted_at) AS ( \
            SELECT d.id, d.created_at, d.deleted_at FROM responses d \
            WHERE d.tenant = r.tenant AND d.previous_response_id = r.id \
            UNION \
            SELECT d.id, d.created_at, d.deleted_at FROM responses d JOIN subtree s ON d.previous_response_id = s.id \
            WHERE d.tenant = r.tenant) \
        SELECT 1 FROM subtree WHERE deleted_at IS NULL AND created_at >= ",
];

/// Response `r` is a chain root: no previous response, or one deleted or gone (an alive response's stored parent
/// is alive).
pub const ROOT: &str = " AND (r.previous_response_id IS NULL OR NOT EXISTS (SELECT 1 FROM responses p \
    WHERE p.tenant = r.tenant AND p.id = r.previous_response_id AND p.deleted_at IS NULL))";

/// The ancestors of response `$2`, nearest first, at most `$3`.
pub const SELECT_PATH: &str = "WITH RECURSIVE up(id, parent, depth) AS ( \
        SELECT id, previous_response_id, CAST(0 AS BIGINT) FROM responses WHERE tenant = $1 AND id = $2 \
        UNION ALL \
        SELECT r.id, r.previous_response_id, u.depth + 1 FROM responses r JOIN up u ON r.id = u.parent \
        WHERE r.tenant = $1 AND u.depth < $3 \
    ) \
    SELECT id FROM up WHERE depth > 0 ORDER BY depth DESC";

/// The subtree under a response down to a depth, in pieces around the tenant, the id, the tenant again and the
/// depth: with each node's depth (`t`) and `NODE_COLUMNS`; a deleted node only when responses continue it.
pub const SUBTREE: [&str; 5] = [
    "WITH RECURSIVE tree(id, depth) AS ( \
        SELECT id, CAST(0 AS BIGINT) FROM responses WHERE tenant = ",
    " AND id = ",
    " UNION ALL \
        SELECT r.id, t.depth + 1 FROM responses r JOIN tree t ON r.previous_response_id = t.id WHERE r.tenant = ",
    " AND t.depth < ",
    ") SELECT t.depth, ",
];

/// What follows `NODE_COLUMNS` in `SUBTREE`.
pub const SUBTREE_FROM: &str = " FROM tree t JOIN responses r ON r.id = t.id \
    WHERE (r.deleted_at IS NULL OR EXISTS (SELECT 1 FROM responses c \
        WHERE c.tenant = r.tenant AND c.previous_response_id = r.id))";

/// The output items of some responses, in pieces around the tenant (the list of ids follows).
pub const SELECT_OUTPUTS: [&str; 2] =
    ["SELECT response_id, body FROM items WHERE direction = 1 AND tenant = ", " AND response_id IN "];

/// The keyset condition of a page and its order, for the id column `column`.
pub fn keyset(order: Order, column: &str) -> (String, String) {
    match order {
        Order::Asc => (format!(" AND {column} > "), format!(" ORDER BY {column} LIMIT ")),
        Order::Desc => (format!(" AND {column} < "), format!(" ORDER BY {column} DESC LIMIT ")),
    }
}

/// A `LIKE` pattern that finds `text` anywhere (escaped with `\`), in lower case.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The text of a message item's JSON (its content, or its text parts one a line), at most `PREVIEW_CHARS`
/// characters; `None` for any other item, or a message without text.
pub fn message_preview(item: &Value) -> Option<String> {
    if item.get("type").and_then(Value::as_str) != Some("message") {
        return None;
    }
    let text = match item.get("content")? {
        Value::String(text) => text.clone(),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|part| part.get("text")?.as_str()).collect();
            if texts.is_empty() {
                return None;
            }
            texts.join("\n")
        }
        _ => return None,
    };
    // A NUL cannot be stored in a text column (Postgres refuses it).
    Some(text.chars().filter(|c| *c != '\0').take(PREVIEW_CHARS).collect())
}

/// The preview of the first message among item JSONs (`first`), or of the last.
pub fn preview_of<'a>(items: impl DoubleEndedIterator<Item = &'a str>, first: bool) -> Option<String> {
    let parse = |json: &str| serde_json::from_str::<Value>(json).ok().and_then(|item| message_preview(&item));
    match first {
        true => items.filter_map(parse).next(),
        false => items.rev().filter_map(parse).next(),
    }
}

/// A page from rows read with `LIMIT limit + 1`: its rows and whether more follow.
pub fn page_of<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, has_more)
}

/// A conversation entry from its row: id, created at, metadata, preview.
pub fn conversation_entry(row: (String, i64, String, Option<String>)) -> StoreResult<ConversationEntry> {
    let (id, created_at, metadata, preview) = row;
    let conversation =
        Conversation { id, object: "conversation".into(), created_at, metadata: serde_json::from_str(&metadata)? };
    Ok(ConversationEntry { conversation, preview })
}

/// A response node from its row, with the text of its output messages (`outputs`, the item JSONs in order).
pub fn node(row: NodeRow, outputs: &[&str]) -> StoreResult<ResponseNode> {
    let (id, previous_response_id, created_at, status, body, preview, children, deleted_at) = row;
    let body: Value = body.as_deref().map(serde_json::from_str).transpose()?.unwrap_or(Value::Null);
    let deleted = deleted_at.is_some();
    let count = |usage: &Value, key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let usage = body.get("usage").filter(|usage| usage.is_object());
    let texts: Vec<String> =
        outputs.iter().filter_map(|json| message_preview(&serde_json::from_str(json).ok()?)).collect();
    let output_preview = (!texts.is_empty()).then(|| texts.join("\n").chars().take(PREVIEW_CHARS).collect());
    Ok(ResponseNode {
        id,
        object: "response.node",
        previous_response_id,
        created_at,
        completed_at: body.get("completed_at").and_then(Value::as_i64),
        status: (!deleted).then_some(status),
        model: body.get("model").and_then(Value::as_str).map(str::to_string),
        background: body.get("background").and_then(Value::as_bool).unwrap_or(false),
        conversation_id: body.pointer("/conversation/id").and_then(Value::as_str).map(str::to_string),
        metadata: body.get("metadata").cloned().map(serde_json::from_value).transpose()?.unwrap_or_default(),
        usage: usage.map(|usage| NodeUsage {
            input_tokens: count(usage, "input_tokens"),
            output_tokens: count(usage, "output_tokens"),
            total_tokens: count(usage, "total_tokens"),
        }),
        preview: if deleted { None } else { preview },
        output_preview: if deleted { None } else { output_preview },
        children: u64::try_from(children).unwrap_or(0),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn previews_are_the_text_of_messages() {
        let parts = json!({"type": "message", "content": [{"type": "input_text", "text": "a"}, {"type": "x"},
            {"type": "input_text", "text": "b"}]});
        assert_eq!(message_preview(&parts).as_deref(), Some("a\nb"));
        assert_eq!(message_preview(&json!({"type": "message", "content": "é".repeat(300)})), Some("é".repeat(200)));
        assert_eq!(message_preview(&json!({"type": "function_call", "content": "x"})), None);
        assert_eq!(message_preview(&json!({"type": "message", "content": [{"type": "input_image"}]})), None);
        let items = [
            r#"{"type":"message","content":"one"}"#,
            r#"{"type":"reasoning"}"#,
            r#"{"type":"message","content":"two"}"#,
        ];
        assert_eq!(preview_of(items.into_iter(), true).as_deref(), Some("one"));
        assert_eq!(preview_of(items.into_iter(), false).as_deref(), Some("two"));
    }

    #[test]
    fn search_patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern("50%_A\\"), "%50\\%\\_a\\\\%");
    }
}
