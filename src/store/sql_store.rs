//! `SqlStore`: the one implementation of `Store`, generic over the sqlx database type (SQLite or Postgres), whose
//! few differences its `Dialect` gives. Each method runs its statements from `sql.rs` and hands the rows to that
//! module's plain functions; the write helpers are in `sql_writes.rs`, background runs in `background.rs`, items
//! found by id in `sql_items.rs`, the lists in `sql_lists.rs`. Expired data is not found, exactly like deleted data
//! (`retention.rs` says what expires; `sql_retention.rs` checks it and purges).
//!
//! Every generic `impl` block states the same sqlx bounds — that the database's connections run statements, its
//! arguments bind, its rows decode by index, and the column types in use encode and decode — because Rust does not
//! carry such bounds from a trait to its users; `sqlx::Sqlite` and `sqlx::Postgres` meet them all.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::HistoryCache;
use super::dialect::Dialect;
use super::retention::Retention;
use super::writer::Writer;
use super::{
    background, sql, Chain, ClaimedRun, ConversationEntry, ItemList, ListQuery, NewTurn, Page, PageRequest, Purge,
    PurgeReport, ResponseNode, RunStop, Store, StoreError, StoreResult, StoreStats, Tree,
};
use crate::clock::Clock;
use crate::model::{Conversation, Item, Metadata, Pieces, Response};

/// Conversation storage in a SQL database of type `DB`.
pub struct SqlStore<DB: Dialect> {
    /// The pool reads go through (and writes, unless `writer_pool` is set).
    pub(super) pool: Pool<DB>,
    /// A pool of its own for writes (SQLite's single writer), else writes use `pool`.
    pub(super) writer_pool: Option<Pool<DB>>,
    /// Group commit of finished turns, over the pool writes go through.
    pub(super) writer: Writer,
    pub(super) cache: Arc<HistoryCache>,
    pub(super) retention: Retention,
    /// What the database's dialect keeps besides.
    pub(super) state: DB::State,
    /// The store's tasks besides the writer (Postgres: hearing of deletions, the TLS relay), and what stops them
    /// (when the store is closed or dropped).
    pub(super) tasks: TaskTracker,
    pub(super) stop: CancellationToken,
}

impl<DB: Dialect> Drop for SqlStore<DB> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
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
    async fn save_turn(&self, tenant: &str, turn: NewTurn<'_>) -> StoreResult<()> {
        let rows = sql::TurnRows::new(tenant, &turn, self.retention.cutoffs())?;
        let json_bytes = rows.json_bytes();
        self.writer.write(rows).await?;
        self.cache.add(tenant, &turn, json_bytes);
        Ok(())
    }

    async fn enqueue(&self, tenant: &str, queued: NewTurn<'_>, job: &str) -> StoreResult<()> {
        self.enqueue_run(tenant, queued, job).await
    }

    async fn claim(&self, worker: &str, lease_until: i64) -> StoreResult<Option<ClaimedRun>> {
        self.claim_run(worker, lease_until).await
    }

    async fn renew(&self, id: &str, worker: &str, lease_until: i64, progress: Option<&str>) -> StoreResult<bool> {
        self.renew_run(id, worker, lease_until, progress).await
    }

    async fn finish_run(&self, tenant: &str, turn: NewTurn<'_>, worker: &str) -> StoreResult<bool> {
        self.finish_claimed_run(tenant, turn, worker).await
    }

    async fn stop_run(&self, tenant: &str, id: &str, stop: &RunStop) -> StoreResult<bool> {
        self.stop_unfinished_run(tenant, id, stop).await
    }

    async fn waiting_runs(&self) -> StoreResult<u64> {
        let (waiting,): (i64,) = sqlx::query_as(background::WAITING).fetch_one(&self.pool).await?;
        Ok(u64::try_from(waiting).unwrap_or(0))
    }

    async fn lapsed_runs(&self, now: i64, limit: u32) -> StoreResult<Vec<(String, String)>> {
        self.lapsed_runs_before(now, limit).await
    }

    async fn response(&self, tenant: &str, id: &str) -> StoreResult<Option<(Response, Pieces)>> {
        let rows: Vec<sql::ResponseRow> =
            sqlx::query_as(sql::SELECT_RESPONSE).bind(tenant).bind(id).fetch_all(&self.pool).await?;
        if let Some(&(_, _, created_at, _)) = rows.first() {
            if !self.alive(tenant, id, created_at, &self.retention.cutoffs()).await? {
                return Ok(None);
            }
        }
        match sql::assemble_response(&rows)? {
            Some((response, _)) if !response.is_finished() => self.progress_of(tenant, response).await.map(Some),
            found => Ok(found),
        }
    }

    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> StoreResult<Option<Chain>> {
        let cutoffs = self.retention.cutoffs();
        let epoch = self.cache.epoch();
        // A cached chain whose last turn is fresh is alive; any other is checked in the database.
        if let Some(tip) = self.cache.get(tenant, id).filter(|tip| cutoffs.fresh(tip.created_at())) {
            if DB::cache_is_current(self, tenant).await? {
                if tip.depth() > max_depth {
                    return Err(StoreError::ChainTooDeep(max_depth));
                }
                return Ok(Some(Chain { tip, cached: true }));
            }
        }
        let rows: Vec<sql::HistoryRow> = sqlx::query_as(sql::SELECT_HISTORY)
            .bind(tenant)
            .bind(id)
            .bind(i64::from(max_depth))
            .fetch_all(&self.pool)
            .await?;
        // The last rows are those of the chain's last turn.
        if let Some(created_at) = rows.last().map(|row| row.4) {
            if !self.alive(tenant, id, created_at, &cutoffs).await? {
                return Ok(None);
            }
        }
        sql::assemble_chain(tenant, &rows, max_depth, &self.cache, epoch)
    }

    async fn items_page(&self, tenant: &str, list: ItemList<'_>, page: &PageRequest) -> StoreResult<Option<Page>> {
        let (cursor, statements, id) = sql::list_statements(list);
        let found: Option<(i64, Option<i64>)> =
            sqlx::query_as(cursor).bind(tenant).bind(id).bind(page.after.as_deref()).fetch_optional(&self.pool).await?;
        let Some((time, position)) = found else { return Ok(None) };
        let cutoffs = self.retention.cutoffs();
        let kept = match list {
            ItemList::ResponseInput(_) => self.alive(tenant, id, time, &cutoffs).await?,
            ItemList::Conversation(_) => time >= cutoffs.conversations,
        };
        if !kept {
            return Ok(None);
        }
        let rows: Vec<(String,)> = sqlx::query_as(sql::page_statement(statements, page.order))
            .bind(tenant)
            .bind(id)
            .bind(sql::page_start(page, position)?)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        sql::page(&rows, page.limit).map(Some)
    }

    async fn stored_items(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Item>> {
        self.stored_items_of(tenant, ids).await
    }

    async fn delete_response(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let cutoffs = self.retention.cutoffs();
        if !self.response_alive(tenant, id, &cutoffs).await? {
            return Ok(false);
        }
        let mark = sqlx::query(sql::DELETE_RESPONSE).bind(cutoffs.now).bind(tenant).bind(id);
        // A background response deleted while it runs is stopped: its worker finds its run gone.
        let erase = [sql::DELETE_ITEMS, background::DELETE_RUN];
        let deleted = self.tombstone(mark, &erase, tenant, id, DB::FORGET_NOTICE).await?;
        self.cache.remove(tenant, id);
        Ok(deleted)
    }

    async fn create_conversation(
        &self,
        tenant: &str,
        conversation: &Conversation,
        items: &[Item],
        tokens: &[u32],
    ) -> StoreResult<()> {
        let rows = sql::item_rows(items, tokens)?;
        let cutoffs = self.retention.cutoffs();
        let mut tx = self.writes().begin().await?;
        sqlx::query(sql::INSERT_CONVERSATION)
            .bind(&conversation.id)
            .bind(tenant)
            .bind(conversation.created_at)
            .bind(serde_json::to_string(&conversation.metadata)?)
            .bind(cutoffs.now)
            .execute(&mut *tx)
            .await?;
        Self::append_items(&mut tx, tenant, &conversation.id, &rows, &cutoffs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>> {
        sql::conversation(self.conversation_rows(sql::SELECT_CONVERSATION, tenant, id).await?.pop())
    }

    async fn update_conversation(
        &self,
        tenant: &str,
        id: &str,
        metadata: &Metadata,
    ) -> StoreResult<Option<Conversation>> {
        let cutoffs = self.retention.cutoffs();
        let mut tx = self.writes().begin().await?;
        sqlx::query(sql::UPDATE_CONVERSATION)
            .bind(serde_json::to_string(metadata)?)
            .bind(cutoffs.now)
            .bind(tenant)
            .bind(id)
            .bind(cutoffs.conversations)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query_as(sql::SELECT_CONVERSATION)
            .bind(tenant)
            .bind(id)
            .bind(cutoffs.conversations)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        sql::conversation(row)
    }

    async fn delete_conversation(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let cutoffs = self.retention.cutoffs();
        let mark =
            sqlx::query(sql::DELETE_CONVERSATION).bind(cutoffs.now).bind(tenant).bind(id).bind(cutoffs.conversations);
        self.tombstone(mark, &[sql::DELETE_CONVERSATION_ITEMS], tenant, id, None).await
    }

    async fn add_conversation_items(
        &self,
        tenant: &str,
        id: &str,
        items: &[Item],
        tokens: &[u32],
    ) -> StoreResult<bool> {
        let rows = sql::item_rows(items, tokens)?;
        let cutoffs = self.retention.cutoffs();
        let mut tx = self.writes().begin().await?;
        let added = Self::append_items(&mut tx, tenant, id, &rows, &cutoffs).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn conversation_items(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<(Item, Option<u32>)>>> {
        let rows: Vec<sql::ConversationItemRow> =
            self.conversation_rows(sql::SELECT_CONVERSATION_ITEMS, tenant, id).await?;
        sql::conversation_items(&rows)
    }

    async fn conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<Option<Option<Item>>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(sql::SELECT_CONVERSATION_ITEM)
            .bind(tenant)
            .bind(id)
            .bind(item_id)
            .bind(self.retention.cutoffs().conversations)
            .fetch_optional(&self.pool)
            .await?;
        let Some((_, item)) = row else { return Ok(None) };
        Ok(Some(item.as_deref().map(serde_json::from_str).transpose()?))
    }

    async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<bool> {
        let cutoff = self.retention.cutoffs().conversations;
        let query = sqlx::query(sql::DELETE_CONVERSATION_ITEM).bind(tenant).bind(id).bind(item_id).bind(cutoff);
        Ok(DB::rows_affected(&query.execute(self.writes()).await?) > 0)
    }

    async fn list_conversations(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ConversationEntry>, bool)> {
        self.conversations_page(tenant, list).await
    }

    async fn list_responses(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ResponseNode>, bool)> {
        self.responses_page(tenant, list).await
    }

    async fn response_tree(&self, tenant: &str, id: &str, depth: u32, limit: u32) -> StoreResult<Option<Tree>> {
        self.tree_of(tenant, id, depth, limit).await
    }

    async fn setting(&self, name: &str, default: &str) -> StoreResult<String> {
        sqlx::query(sql::INSERT_SETTING).bind(name).bind(default).execute(self.writes()).await?;
        let (value,): (String,) = sqlx::query_as(sql::SELECT_SETTING).bind(name).fetch_one(self.writes()).await?;
        Ok(value)
    }

    async fn purge(&self, scope: Purge<'_>) -> StoreResult<PurgeReport> {
        self.erase(scope).await
    }

    fn clock(&self) -> &Clock {
        &self.retention.clock
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        // The queued turns are written first: they need the connections.
        self.writer.close().await;
        self.stop.cancel();
        // Closing the pools ends the connections, and with them the relay's.
        self.pool.close().await;
        if let Some(writes) = &self.writer_pool {
            writes.close().await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn stats(&self) -> StoreStats {
        let pools: Vec<_> = std::iter::once(&self.pool).chain(&self.writer_pool).collect();
        StoreStats {
            cache_bytes: self.cache.bytes(),
            connections: pools.iter().map(|pool| pool.size()).sum(),
            idle_connections: pools.iter().map(|pool| pool.num_idle() as u32).sum(),
        }
    }
}
