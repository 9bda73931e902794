//! The SQL shared by both stores, and the one implementation of `Store` that both instantiate.
//!
//! The statements are written so SQLite and Postgres read them alike (`$n` parameters, each first used in order),
//! and rows are read into plain tuples; `sql_store!` expands the implementation for one sqlx database type.

use serde_json::Value;

use super::{chain_too_deep, Chain};
use crate::error::{ApiError, ApiResult};
use crate::model::{Item, Pieces, Response, ResponseStatus};

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
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn save_turn(
                &self,
                tenant: &str,
                response: &$crate::model::Response,
                input: &[$crate::model::Item],
                pieces: &$crate::model::Pieces,
            ) -> $crate::error::ApiResult<()> {
                use $crate::store::sql;
                let rows = sql::item_rows(response, input)?;
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::INSERT_RESPONSE)
                    .bind(&response.id)
                    .bind(tenant)
                    .bind(&response.previous_response_id)
                    .bind(response.status.as_str())
                    .bind(response.created_at)
                    .bind(sql::response_body(response)?)
                    .bind(serde_json::to_string(pieces)?)
                    .execute(&mut *tx)
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
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
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
                let mut tx = self.pool.begin().await?;
                let deleted = sqlx::query(sql::DELETE_RESPONSE)
                    .bind(chrono::Utc::now().timestamp())
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                sqlx::query(sql::DELETE_ITEMS).bind(tenant).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(deleted)
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
