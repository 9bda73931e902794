//! `sql_store!`: the one implementation of `Store`, expanded for each sqlx database type (SQLite, Postgres) because
//! sqlx's executor bounds cannot be written once for both. Each method runs its statements from `sql.rs` and hands
//! the rows to that module's plain functions; the write helpers are in `sql_writes.rs`, background runs in
//! `background.rs`, items found by id in `sql_items.rs`. Expired data is not found, exactly like deleted data
//! (`retention.rs` says what expires; `sql_retention.rs` checks it and purges).

/// Implements `Store` for a struct with fields `pool: Pool<$db>`, `writer_pool: Option<Pool<$db>>` (a pool of its
/// own for writes, else they use `pool`), `writer: Writer` (group commit of turns, over that pool), `cache:
/// Arc<HistoryCache>` and `retention: Retention`; constants `AT_ONCE` (what goes before, between and after the
/// INSERTs of responses and of their items to make one atomic statement of them), `FORGET_NOTICE` (the statement, if
/// any, that tells other replicas a response was deleted), `CLAIM` (the statement that claims a queued background
/// run) and those `sql_retention!` and `sql_lists!` need; and a method `cache_is_current(tenant)`: whether the cache has heard of
/// every deletion of that tenant committed so far.
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        $crate::store::sql_retention::sql_retention!($store, $db);
        $crate::store::background::background_store!($store, $db);

        $crate::store::sql_writes::sql_writes!($store, $db);
        $crate::store::sql_lists::sql_lists!($store, $db);
        $crate::store::sql_items::sql_items!($store, $db);

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn save_turn(
                &self,
                tenant: &str,
                turn: $crate::store::NewTurn<'_>,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::sql;
                let rows = sql::TurnRows::new(tenant, &turn, self.retention.cutoffs())?;
                let json_bytes = rows.json_bytes();
                self.writer.write(rows).await?;
                self.cache.add(tenant, &turn, json_bytes);
                Ok(())
            }

            async fn enqueue(
                &self,
                tenant: &str,
                queued: $crate::store::NewTurn<'_>,
                job: &str,
            ) -> $crate::store::StoreResult<()> {
                self.enqueue_run(tenant, queued, job).await
            }

            async fn claim(
                &self,
                worker: &str,
                lease_until: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::ClaimedRun>> {
                self.claim_run(worker, lease_until).await
            }

            async fn renew(
                &self,
                id: &str,
                worker: &str,
                lease_until: i64,
                progress: Option<&str>,
            ) -> $crate::store::StoreResult<bool> {
                self.renew_run(id, worker, lease_until, progress).await
            }

            async fn finish_run(
                &self,
                tenant: &str,
                turn: $crate::store::NewTurn<'_>,
                worker: &str,
            ) -> $crate::store::StoreResult<bool> {
                self.finish_claimed_run(tenant, turn, worker).await
            }

            async fn stop_run(
                &self,
                tenant: &str,
                id: &str,
                stop: &$crate::store::RunStop,
            ) -> $crate::store::StoreResult<bool> {
                self.stop_unfinished_run(tenant, id, stop).await
            }

            async fn waiting_runs(&self) -> $crate::store::StoreResult<u64> {
                let (waiting,): (i64,) =
                    sqlx::query_as($crate::store::background::WAITING).fetch_one(&self.pool).await?;
                Ok(u64::try_from(waiting).unwrap_or(0))
            }

            async fn lapsed_runs(&self, now: i64, limit: u32) -> $crate::store::StoreResult<Vec<(String, String)>> {
                self.lapsed_runs_before(now, limit).await
            }

            async fn response(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<($crate::model::Response, $crate::model::Pieces)>> {
                use $crate::store::sql;
                let rows: Vec<sql::ResponseRow> =
                    sqlx::query_as(sql::SELECT_RESPONSE).bind(tenant).bind(id).fetch_all(&self.pool).await?;
                if let Some(&(_, _, created_at, _)) = rows.first() {
                    if !self.alive(tenant, id, created_at, &self.retention.cutoffs()).await? {
                        return Ok(None);
                    }
                }
                match sql::assemble_response(&rows)? {
                    Some((response, _)) if !response.is_finished() => {
                        self.progress_of(tenant, response).await.map(Some)
                    }
                    found => Ok(found),
                }
            }

            async fn history(
                &self,
                tenant: &str,
                id: &str,
                max_depth: u32,
            ) -> $crate::store::StoreResult<Option<$crate::store::Chain>> {
                use $crate::store::sql;
                let cutoffs = self.retention.cutoffs();
                let epoch = self.cache.epoch();
                // A cached chain whose last turn is fresh is alive; any other is checked in the database.
                if let Some(tip) = self.cache.get(tenant, id).filter(|tip| cutoffs.fresh(tip.created_at())) {
                    if self.cache_is_current(tenant).await? {
                        if tip.depth() > max_depth {
                            return Err($crate::store::StoreError::ChainTooDeep(max_depth));
                        }
                        return Ok(Some($crate::store::Chain { tip, cached: true }));
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

            async fn items_page(
                &self,
                tenant: &str,
                list: $crate::store::ItemList<'_>,
                page: &$crate::store::PageRequest,
            ) -> $crate::store::StoreResult<Option<$crate::store::Page>> {
                use $crate::store::sql;
                let (cursor, statements, id) = sql::list_statements(list);
                let found: Option<(i64, Option<i64>)> =
                    sqlx::query_as(cursor).bind(tenant).bind(id).bind(&page.after).fetch_optional(&self.pool).await?;
                let Some((time, position)) = found else { return Ok(None) };
                let cutoffs = self.retention.cutoffs();
                let kept = match list {
                    $crate::store::ItemList::ResponseInput(_) => self.alive(tenant, id, time, &cutoffs).await?,
                    $crate::store::ItemList::Conversation(_) => time >= cutoffs.conversations,
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

            async fn stored_items(
                &self,
                tenant: &str,
                ids: &[&str],
            ) -> $crate::store::StoreResult<Vec<$crate::model::Item>> {
                self.stored_items_of(tenant, ids).await
            }

            async fn delete_response(&self, tenant: &str, id: &str) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                let cutoffs = self.retention.cutoffs();
                if !self.response_alive(tenant, id, &cutoffs).await? {
                    return Ok(false);
                }
                let mark = sqlx::query(sql::DELETE_RESPONSE).bind(cutoffs.now).bind(tenant).bind(id);
                // A background response deleted while it runs is stopped: its worker finds its run gone.
                let erase = [sql::DELETE_ITEMS, $crate::store::background::DELETE_RUN];
                let deleted = self.tombstone(mark, &erase, tenant, id, Self::FORGET_NOTICE).await?;
                self.cache.remove(tenant, id);
                Ok(deleted)
            }

            async fn create_conversation(
                &self,
                tenant: &str,
                conversation: &$crate::model::Conversation,
                items: &[$crate::model::Item],
                tokens: &[u32],
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::sql;
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

            async fn conversation(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
                sql::conversation(self.conversation_rows(sql::SELECT_CONVERSATION, tenant, id).await?.pop())
            }

            async fn update_conversation(
                &self,
                tenant: &str,
                id: &str,
                metadata: &$crate::model::Metadata,
            ) -> $crate::store::StoreResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
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

            async fn delete_conversation(&self, tenant: &str, id: &str) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                let cutoffs = self.retention.cutoffs();
                let mark = sqlx::query(sql::DELETE_CONVERSATION)
                    .bind(cutoffs.now)
                    .bind(tenant)
                    .bind(id)
                    .bind(cutoffs.conversations);
                self.tombstone(mark, &[sql::DELETE_CONVERSATION_ITEMS], tenant, id, None).await
            }

            async fn add_conversation_items(
                &self,
                tenant: &str,
                id: &str,
                items: &[$crate::model::Item],
                tokens: &[u32],
            ) -> $crate::store::StoreResult<bool> {
                let rows = $crate::store::sql::item_rows(items, tokens)?;
                let cutoffs = self.retention.cutoffs();
                let mut tx = self.writes().begin().await?;
                let added = Self::append_items(&mut tx, tenant, id, &rows, &cutoffs).await?;
                tx.commit().await?;
                Ok(added)
            }

            async fn conversation_items(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<Vec<($crate::model::Item, Option<u32>)>>> {
                use $crate::store::sql;
                let rows: Vec<sql::ConversationItemRow> =
                    self.conversation_rows(sql::SELECT_CONVERSATION_ITEMS, tenant, id).await?;
                sql::conversation_items(&rows)
            }

            async fn conversation_item(
                &self,
                tenant: &str,
                id: &str,
                item_id: &str,
            ) -> $crate::store::StoreResult<Option<Option<$crate::model::Item>>> {
                use $crate::store::sql;
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

            async fn delete_conversation_item(
                &self,
                tenant: &str,
                id: &str,
                item_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                let cutoff = self.retention.cutoffs().conversations;
                let query = sqlx::query(sql::DELETE_CONVERSATION_ITEM).bind(tenant).bind(id).bind(item_id).bind(cutoff);
                Ok(query.execute(self.writes()).await?.rows_affected() > 0)
            }

            async fn list_conversations(
                &self,
                tenant: &str,
                list: &$crate::store::ListQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::store::ConversationEntry>, bool)> {
                self.conversations_page(tenant, list).await
            }

            async fn list_responses(
                &self,
                tenant: &str,
                list: &$crate::store::ListQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::store::ResponseNode>, bool)> {
                self.responses_page(tenant, list).await
            }

            async fn response_tree(
                &self,
                tenant: &str,
                id: &str,
                depth: u32,
                limit: u32,
            ) -> $crate::store::StoreResult<Option<$crate::store::Tree>> {
                self.tree_of(tenant, id, depth, limit).await
            }

            async fn setting(&self, name: &str, default: &str) -> $crate::store::StoreResult<String> {
                use $crate::store::sql;
                sqlx::query(sql::INSERT_SETTING).bind(name).bind(default).execute(self.writes()).await?;
                let (value,): (String,) =
                    sqlx::query_as(sql::SELECT_SETTING).bind(name).fetch_one(self.writes()).await?;
                Ok(value)
            }

            async fn purge(
                &self,
                scope: $crate::store::Purge<'_>,
            ) -> $crate::store::StoreResult<$crate::store::PurgeReport> {
                self.erase(scope).await
            }

            fn clock(&self) -> &$crate::clock::Clock {
                &self.retention.clock
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn stats(&self) -> $crate::store::StoreStats {
                let pools: Vec<_> = std::iter::once(&self.pool).chain(&self.writer_pool).collect();
                $crate::store::StoreStats {
                    cache_bytes: self.cache.bytes(),
                    connections: pools.iter().map(|pool| pool.size()).sum(),
                    idle_connections: pools.iter().map(|pool| pool.num_idle() as u32).sum(),
                }
            }
        }
    };
}

pub(crate) use sql_store;
