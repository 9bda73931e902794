//! The SQL shared by both stores, and the one implementation of `Store` that both instantiate.
//!
//! The statements are written so SQLite and Postgres read them alike (`$n` parameters, each first used in order),
//! and rows are read into plain tuples; `sql_store!` expands the implementation for one sqlx database type.

use serde_json::Value;

use super::{chain_too_deep, Chain};
use crate::error::{ApiError, ApiResult};
use crate::model::{Conversation, Item, Pieces, Response, ResponseStatus};

pub const INPUT: i64 = 0;
pub const OUTPUT: i64 = 1;
/// Items per multi-row INSERT, well below both databases' bound-parameter limits.
pub const ITEMS_PER_INSERT: usize = 1000;

pub const INSERT_RESPONSE: &str = "INSERT INTO responses \
    (id, tenant, previous_response_id, status, created_at, body, pieces) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub const INSERT_ITEMS: &str = "INSERT INTO items (tenant, response_id, direction, position, item_id, body) ";

/// A response's body and pieces with its items of one direction (a row with NULL item when it has none).
pub const SELECT_RESPONSE: &str = "SELECT r.body, r.pieces, i.body FROM responses r \
    LEFT JOIN items i ON i.response_id = r.id AND i.tenant = r.tenant AND i.direction = $1 \
    WHERE r.tenant = $2 AND r.id = $3 AND r.deleted_at IS NULL ORDER BY i.position";

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

pub const DELETE_CONVERSATION: &str = "UPDATE conversations SET metadata = '{}', deleted_at = $1 \
    WHERE tenant = $2 AND id = $3 AND deleted_at IS NULL";

pub const DELETE_CONVERSATION_ITEMS: &str = "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2";

pub const DELETE_CONVERSATION_ITEM: &str =
    "DELETE FROM conversation_items WHERE tenant = $1 AND conversation_id = $2 AND item_id = $3";

/// A row of `SELECT_CONVERSATION`.
pub type ConversationRow = (String, i64, String);

/// The conversation of a row of `SELECT_CONVERSATION`.
pub fn conversation(row: Option<ConversationRow>) -> ApiResult<Option<Conversation>> {
    row.map(|(id, created_at, metadata)| {
        Ok(Conversation { id, object: "conversation".into(), created_at, metadata: serde_json::from_str(&metadata)? })
    })
    .transpose()
}

/// The items of the rows of `SELECT_CONVERSATION_ITEMS`; `None` when there are no rows.
pub fn assemble_conversation_items(rows: Vec<(String, Option<String>)>) -> ApiResult<Option<Vec<Item>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let items = rows.iter().filter_map(|(_, item)| item.as_deref()).map(serde_json::from_str);
    Ok(Some(items.collect::<Result<_, _>>()?))
}

/// A unique-key violation while adding items is a duplicate item id: 400 `item_already_in_conversation`.
pub fn duplicate_item(err: sqlx::Error) -> ApiError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::invalid(
            "Item already in conversation",
            Some("items".to_string()),
            Some("item_already_in_conversation"),
        ),
        _ => err.into(),
    }
}

/// A row of `SELECT_RESPONSE`.
pub type ResponseRow = (Option<String>, Option<String>, Option<String>);

/// A row of `SELECT_HISTORY`.
pub type HistoryRow = (i64, Option<String>, String, Option<String>);

/// The response body to store: the Response JSON without `output` (its items are rows of their own).
pub fn response_body(response: &Response) -> ApiResult<String> {
    let mut body = serde_json::to_value(response)?;
    if let Value::Object(fields) = &mut body {
        fields.remove("output");
    }
    Ok(body.to_string())
}

/// The item rows of a turn: `(direction, position, item id, JSON)`.
pub fn item_rows(response: &Response, input: &[Item]) -> ApiResult<Vec<(i64, i64, String, String)>> {
    let input = input.iter().enumerate().map(|(i, item)| (INPUT, i, item));
    let output = response.output.iter().enumerate().map(|(i, item)| (OUTPUT, i, item));
    input
        .chain(output)
        .map(|(direction, position, item)| {
            Ok((direction, position as i64, item.id().to_string(), serde_json::to_string(item)?))
        })
        .collect()
}

/// The stored response from the rows of `SELECT_RESPONSE`; `None` when there are none.
pub fn assemble_response(rows: Vec<ResponseRow>) -> ApiResult<Option<(Response, Pieces)>> {
    let Some((Some(body), pieces, _)) = rows.first() else {
        return Ok(None);
    };
    let mut body: Value = serde_json::from_str(body)?;
    let pieces: Pieces = serde_json::from_str(pieces.as_deref().unwrap_or("[]"))?;
    let output = rows
        .iter()
        .filter_map(|(_, _, item)| item.as_deref())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?;
    if let Value::Object(fields) = &mut body {
        fields.insert("output".into(), Value::Array(output));
    }
    Ok(Some((serde_json::from_value(body)?, pieces)))
}

/// The items of the rows of `SELECT_RESPONSE` (input items); `None` when there are no rows.
pub fn assemble_items(rows: Vec<ResponseRow>) -> ApiResult<Option<Vec<Item>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let items = rows.iter().filter_map(|(_, _, item)| item.as_deref()).map(serde_json::from_str);
    Ok(Some(items.collect::<Result<_, _>>()?))
}

/// The chain from the rows of `SELECT_HISTORY`; `None` when there are none; a 400 when it was cut at `max_depth`.
pub fn assemble_chain(id: &str, rows: Vec<HistoryRow>, max_depth: u32) -> ApiResult<Option<Chain>> {
    let Some((depth, parent, _, _)) = rows.first() else {
        return Ok(None);
    };
    if depth + 1 >= i64::from(max_depth) && parent.is_some() {
        return Err(chain_too_deep(max_depth));
    }
    let last = rows.last().map(|(_, _, status, _)| status.as_str()).unwrap_or_default();
    let status = ResponseStatus::parse(last)
        .ok_or_else(|| ApiError::Internal(format!("response {id} has an unknown status '{last}'")))?;
    let items = rows.iter().filter_map(|(_, _, _, item)| item.as_deref()).map(serde_json::from_str);
    Ok(Some(Chain { status, items: items.collect::<Result<_, _>>()? }))
}

/// Implements `Store` for a struct with fields `pool: Pool<$db>` and `reads: Counter`.
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Inserts a response row and its items within a transaction.
            async fn insert_response(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &str,
                turn: $crate::store::NewTurn<'_>,
            ) -> $crate::error::ApiResult<()> {
                use $crate::store::sql;
                let response = turn.response;
                let rows = sql::item_rows(response, turn.input)?;
                sqlx::query(sql::INSERT_RESPONSE)
                    .bind(&response.id)
                    .bind(tenant)
                    .bind(&response.previous_response_id)
                    .bind(response.status.as_str())
                    .bind(response.created_at)
                    .bind(sql::response_body(response)?)
                    .bind(serde_json::to_string(turn.pieces)?)
                    .execute(&mut **tx)
                    .await?;
                for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql::INSERT_ITEMS);
                    insert.push_values(chunk, |mut row, (direction, position, item_id, body)| {
                        row.push_bind(tenant)
                            .push_bind(&response.id)
                            .push_bind(*direction)
                            .push_bind(*position)
                            .push_bind(item_id)
                            .push_bind(body);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Erases an object in one transaction: `mark` turns its row into a tombstone (binding the time, tenant
            /// and id), `erase_items` deletes its items (binding tenant and id). False if it was not there.
            async fn tombstone(
                &self,
                mark: &str,
                erase_items: &str,
                tenant: &str,
                id: &str,
            ) -> $crate::error::ApiResult<bool> {
                let mut tx = self.pool.begin().await?;
                let marked = sqlx::query(mark)
                    .bind(chrono::Utc::now().timestamp())
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(erase_items).bind(tenant).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(marked > 0)
            }

            /// Appends items to a conversation within a transaction; false if the conversation is gone.
            async fn append_items(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &str,
                id: &str,
                items: &[$crate::model::Item],
            ) -> $crate::error::ApiResult<bool> {
                use $crate::store::sql;
                let reserved: Option<(i64,)> = sqlx::query_as(sql::RESERVE_POSITIONS)
                    .bind(items.len() as i64)
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some((end,)) = reserved else { return Ok(false) };
                let start = end - items.len() as i64;
                let rows = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Ok((start + i as i64, item.id().to_string(), serde_json::to_string(item)?)))
                    .collect::<$crate::error::ApiResult<Vec<_>>>()?;
                for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql::INSERT_CONVERSATION_ITEMS);
                    insert.push_values(chunk, |mut row, (position, item_id, body)| {
                        row.push_bind(tenant).push_bind(id).push_bind(*position).push_bind(item_id).push_bind(body);
                    });
                    insert.build().execute(&mut **tx).await.map_err(sql::duplicate_item)?;
                }
                Ok(true)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn save_turn(&self, tenant: &str, turn: $crate::store::NewTurn<'_>) -> $crate::error::ApiResult<()> {
                let mut tx = self.pool.begin().await?;
                if let Some(conversation) = turn.conversation {
                    let items: Vec<_> = turn.input.iter().chain(&turn.response.output).cloned().collect();
                    if !Self::append_items(&mut tx, tenant, conversation, &items).await? {
                        return Err($crate::store::conversation_not_found(conversation));
                    }
                }
                if turn.store_response {
                    Self::insert_response(&mut tx, tenant, turn).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_conversation(
                &self,
                tenant: &str,
                conversation: &$crate::model::Conversation,
                items: &[$crate::model::Item],
            ) -> $crate::error::ApiResult<()> {
                use $crate::store::sql;
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::INSERT_CONVERSATION)
                    .bind(&conversation.id)
                    .bind(tenant)
                    .bind(conversation.created_at)
                    .bind(serde_json::to_string(&conversation.metadata)?)
                    .execute(&mut *tx)
                    .await?;
                Self::append_items(&mut tx, tenant, &conversation.id, items).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn conversation(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::error::ApiResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
                self.reads.bump();
                let row =
                    sqlx::query_as(sql::SELECT_CONVERSATION).bind(tenant).bind(id).fetch_optional(&self.pool).await?;
                sql::conversation(row)
            }

            async fn update_conversation(
                &self,
                tenant: &str,
                id: &str,
                metadata: &$crate::model::Metadata,
            ) -> $crate::error::ApiResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::UPDATE_CONVERSATION)
                    .bind(serde_json::to_string(metadata)?)
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let row =
                    sqlx::query_as(sql::SELECT_CONVERSATION).bind(tenant).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                sql::conversation(row)
            }

            async fn delete_conversation(&self, tenant: &str, id: &str) -> $crate::error::ApiResult<bool> {
                use $crate::store::sql;
                self.tombstone(sql::DELETE_CONVERSATION, sql::DELETE_CONVERSATION_ITEMS, tenant, id).await
            }

            async fn add_conversation_items(
                &self,
                tenant: &str,
                id: &str,
                items: &[$crate::model::Item],
            ) -> $crate::error::ApiResult<bool> {
                let mut tx = self.pool.begin().await?;
                let added = Self::append_items(&mut tx, tenant, id, items).await?;
                tx.commit().await?;
                Ok(added)
            }

            async fn conversation_items(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::error::ApiResult<Option<Vec<$crate::model::Item>>> {
                use $crate::store::sql;
                self.reads.bump();
                let rows =
                    sqlx::query_as(sql::SELECT_CONVERSATION_ITEMS).bind(tenant).bind(id).fetch_all(&self.pool).await?;
                sql::assemble_conversation_items(rows)
            }

            async fn delete_conversation_item(
                &self,
                tenant: &str,
                id: &str,
                item_id: &str,
            ) -> $crate::error::ApiResult<bool> {
                use $crate::store::sql;
                let result = sqlx::query(sql::DELETE_CONVERSATION_ITEM)
                    .bind(tenant)
                    .bind(id)
                    .bind(item_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() > 0)
            }

            async fn response(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::error::ApiResult<Option<($crate::model::Response, $crate::model::Pieces)>> {
                use $crate::store::sql;
                self.reads.bump();
                let rows: Vec<sql::ResponseRow> = sqlx::query_as(sql::SELECT_RESPONSE)
                    .bind(sql::OUTPUT)
                    .bind(tenant)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                sql::assemble_response(rows)
            }

            async fn history(
                &self,
                tenant: &str,
                id: &str,
                max_depth: u32,
            ) -> $crate::error::ApiResult<Option<$crate::store::Chain>> {
                use $crate::store::sql;
                self.reads.bump();
                let rows: Vec<sql::HistoryRow> = sqlx::query_as(sql::SELECT_HISTORY)
                    .bind(tenant)
                    .bind(id)
                    .bind(i64::from(max_depth))
                    .fetch_all(&self.pool)
                    .await?;
                sql::assemble_chain(id, rows, max_depth)
            }

            async fn input_items(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::error::ApiResult<Option<Vec<$crate::model::Item>>> {
                use $crate::store::sql;
                self.reads.bump();
                let rows: Vec<sql::ResponseRow> = sqlx::query_as(sql::SELECT_RESPONSE)
                    .bind(sql::INPUT)
                    .bind(tenant)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                sql::assemble_items(rows)
            }

            async fn delete_response(&self, tenant: &str, id: &str) -> $crate::error::ApiResult<bool> {
                use $crate::store::sql;
                self.tombstone(sql::DELETE_RESPONSE, sql::DELETE_ITEMS, tenant, id).await
            }

            async fn ping(&self) -> $crate::error::ApiResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn reads(&self) -> u64 {
                self.reads.get()
            }
        }
    };
}

pub(crate) use sql_store;
