//! The SQLite store: one file, WAL mode, migrations from `migrations/sqlite` applied at open.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{chain_too_deep, Chain, Counter, Store};
use crate::error::{ApiError, ApiResult};
use crate::model::{Item, Pieces, Response, ResponseStatus};

const INPUT: i64 = 0;
const OUTPUT: i64 = 1;
/// Items per multi-row INSERT, well below SQLite's bound-parameter limit.
const ITEMS_PER_INSERT: usize = 1000;

/// Conversation storage in one SQLite database.
pub struct SqliteStore {
    pool: SqlitePool,
    reads: Counter,
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://PATH`, created if missing, or `sqlite::memory:`) and migrates it.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // One connection holds the whole in-memory database; it must never be closed.
            SqlitePoolOptions::new().max_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(options)
        .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool, reads: Counter::default() })
    }
}

/// Decodes an item stored as JSON.
fn decode_item(body: &str) -> ApiResult<Item> {
    Ok(serde_json::from_str(body)?)
}

#[async_trait]
impl Store for SqliteStore {
    async fn save_turn(&self, tenant: &str, response: &Response, input: &[Item], pieces: &Pieces) -> ApiResult<()> {
        let mut body = serde_json::to_value(response)?;
        if let Value::Object(fields) = &mut body {
            fields.remove("output");
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO responses (id, tenant, previous_response_id, status, created_at, body, pieces) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&response.id)
        .bind(tenant)
        .bind(&response.previous_response_id)
        .bind(response.status.as_str())
        .bind(response.created_at)
        .bind(body.to_string())
        .bind(serde_json::to_string(pieces)?)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(i64, usize, &Item)> = (input.iter().enumerate().map(|(i, item)| (INPUT, i, item)))
            .chain(response.output.iter().enumerate().map(|(i, item)| (OUTPUT, i, item)))
            .collect();
        for chunk in rows.chunks(ITEMS_PER_INSERT) {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO items (tenant, response_id, direction, position, item_id, body) ");
            let encoded: Vec<String> =
                chunk.iter().map(|(_, _, item)| serde_json::to_string(item)).collect::<Result<_, _>>()?;
            insert.push_values(chunk.iter().zip(encoded), |mut row, ((direction, position, item), json)| {
                row.push_bind(tenant)
                    .push_bind(&response.id)
                    .push_bind(*direction)
                    .push_bind(*position as i64)
                    .push_bind(item.id().to_string())
                    .push_bind(json);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn response(&self, tenant: &str, id: &str) -> ApiResult<Option<(Response, Pieces)>> {
        self.reads.bump();
        let rows = sqlx::query(
            "SELECT r.body, r.pieces, i.body AS item FROM responses r \
             LEFT JOIN items i ON i.response_id = r.id AND i.tenant = r.tenant AND i.direction = ? \
             WHERE r.tenant = ? AND r.id = ? AND r.deleted_at IS NULL ORDER BY i.position",
        )
        .bind(OUTPUT)
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut body: Value = serde_json::from_str(first.try_get::<&str, _>("body")?)?;
        let pieces: Pieces = serde_json::from_str(first.try_get::<&str, _>("pieces")?)?;
        let output = rows
            .iter()
            .filter_map(|row| row.try_get::<Option<&str>, _>("item").transpose())
            .map(|item| Ok(serde_json::from_str::<Value>(item?)?))
            .collect::<ApiResult<Vec<Value>>>()?;
        if let Value::Object(fields) = &mut body {
            fields.insert("output".into(), Value::Array(output));
        }
        Ok(Some((serde_json::from_value(body)?, pieces)))
    }

    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> ApiResult<Option<Chain>> {
        self.reads.bump();
        let rows = sqlx::query(
            "WITH RECURSIVE chain(id, parent, status, depth) AS ( \
                 SELECT id, previous_response_id, status, 0 FROM responses \
                 WHERE tenant = ?1 AND id = ?2 AND deleted_at IS NULL \
                 UNION ALL \
                 SELECT r.id, r.previous_response_id, r.status, c.depth + 1 FROM responses r \
                 JOIN chain c ON r.id = c.parent \
                 WHERE r.tenant = ?1 AND c.depth + 1 < ?3 \
             ) \
             SELECT c.depth, c.parent, c.status, i.body FROM chain c \
             LEFT JOIN items i ON i.response_id = c.id AND i.tenant = ?1 \
             ORDER BY c.depth DESC, i.direction, i.position",
        )
        .bind(tenant)
        .bind(id)
        .bind(i64::from(max_depth))
        .fetch_all(&self.pool)
        .await?;
        let Some(deepest) = rows.first() else {
            return Ok(None);
        };
        if deepest.try_get::<i64, _>("depth")? + 1 >= i64::from(max_depth)
            && deepest.try_get::<Option<&str>, _>("parent")?.is_some()
        {
            return Err(chain_too_deep(max_depth));
        }
        let last = rows.last().map(|row| row.try_get::<&str, _>("status")).transpose()?.unwrap_or_default();
        let status = ResponseStatus::parse(last)
            .ok_or_else(|| ApiError::Internal(format!("response {id} has an unknown status '{last}'")))?;
        let items = rows
            .iter()
            .filter_map(|row| row.try_get::<Option<&str>, _>("body").transpose())
            .map(|body| decode_item(body?))
            .collect::<ApiResult<Vec<Item>>>()?;
        Ok(Some(Chain { status, items }))
    }

    async fn input_items(&self, tenant: &str, id: &str) -> ApiResult<Option<Vec<Item>>> {
        self.reads.bump();
        let rows = sqlx::query(
            "SELECT i.body FROM responses r \
             LEFT JOIN items i ON i.response_id = r.id AND i.tenant = r.tenant AND i.direction = ? \
             WHERE r.tenant = ? AND r.id = ? AND r.deleted_at IS NULL ORDER BY i.position",
        )
        .bind(INPUT)
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let items = rows
            .iter()
            .filter_map(|row| row.try_get::<Option<&str>, _>("body").transpose())
            .map(|body| decode_item(body?))
            .collect::<ApiResult<Vec<Item>>>()?;
        Ok(Some(items))
    }

    async fn delete_response(&self, tenant: &str, id: &str) -> ApiResult<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE responses SET body = NULL, pieces = NULL, deleted_at = ? WHERE tenant = ? AND id = ? AND deleted_at IS NULL",
        )
        .bind(chrono::Utc::now().timestamp())
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        sqlx::query("DELETE FROM items WHERE tenant = ? AND response_id = ?")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn ping(&self) -> ApiResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn reads(&self) -> u64 {
        self.reads.get()
    }
}
