//! `sql_store!`: the one implementation of `Store`, expanded for each sqlx database type (SQLite, Postgres) because
//! sqlx's executor bounds cannot be written once for both. Each method runs its statements from `sql.rs` and hands
//! the rows to that module's plain functions.

/// Implements `Store` for a struct with a field `pool: Pool<$db>`.
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Inserts a response row and its items within a transaction.
            async fn insert_response(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &str,
                turn: $crate::store::NewTurn<'_>,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::sql;
                let response = turn.response;
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
                let rows = sql::item_rows(response, turn.input)?;
                for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql::INSERT_ITEMS);
                    insert.push_values(chunk, |mut row, (direction, position, item_id, body)| {
                        row.push_bind(tenant).push_bind(&response.id).push_bind(*direction);
                        row.push_bind(*position).push_bind(item_id).push_bind(body);
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
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let now = chrono::Utc::now().timestamp();
                let marked = sqlx::query(mark).bind(now).bind(tenant).bind(id).execute(&mut *tx).await?;
                sqlx::query(erase_items).bind(tenant).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(marked.rows_affected() > 0)
            }

            /// Appends items to a conversation within a transaction; false if the conversation is gone.
            async fn append_items(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &str,
                id: &str,
                items: &[$crate::model::Item],
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                let reserved: Option<(i64,)> = sqlx::query_as(sql::RESERVE_POSITIONS)
                    .bind(items.len() as i64)
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some((end,)) = reserved else { return Ok(false) };
                let rows = sql::conversation_item_rows(items, end - items.len() as i64)?;
                for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql::INSERT_CONVERSATION_ITEMS);
                    insert.push_values(chunk, |mut row, (position, item_id, body)| {
                        row.push_bind(tenant).push_bind(id).push_bind(*position).push_bind(item_id).push_bind(body);
                    });
                    insert.build().execute(&mut **tx).await.map_err(sql::duplicate_item)?;
                }
                Ok(true)
            }

            /// The rows `statement` reads about object `id` of `tenant` (its parameters: tenant, then id).
            async fn rows<R>(&self, statement: &str, tenant: &str, id: &str) -> $crate::store::StoreResult<Vec<R>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                Ok(sqlx::query_as(statement).bind(tenant).bind(id).fetch_all(&self.pool).await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn save_turn(
                &self,
                tenant: &str,
                turn: $crate::store::NewTurn<'_>,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                if let Some(conversation) = turn.conversation {
                    let items: Vec<_> = turn.input.iter().chain(&turn.response.output).cloned().collect();
                    if !Self::append_items(&mut tx, tenant, conversation, &items).await? {
                        return Err($crate::store::StoreError::ConversationNotFound(conversation.to_string()));
                    }
                }
                if turn.store_response {
                    Self::insert_response(&mut tx, tenant, turn).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn response(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<($crate::model::Response, $crate::model::Pieces)>> {
                use $crate::store::sql;
                sql::assemble_response(&self.rows(sql::SELECT_RESPONSE, tenant, id).await?)
            }

            async fn history(
                &self,
                tenant: &str,
                id: &str,
                max_depth: u32,
            ) -> $crate::store::StoreResult<Option<$crate::store::Chain>> {
                use $crate::store::sql;
                let rows: Vec<sql::HistoryRow> = sqlx::query_as(sql::SELECT_HISTORY)
                    .bind(tenant)
                    .bind(id)
                    .bind(i64::from(max_depth))
                    .fetch_all(&self.pool)
                    .await?;
                sql::assemble_chain(id, &rows, max_depth)
            }

            async fn items_page(
                &self,
                tenant: &str,
                list: $crate::store::ItemList<'_>,
                page: &$crate::store::PageRequest,
            ) -> $crate::store::StoreResult<Option<$crate::store::Page>> {
                use $crate::store::sql;
                let (cursor, statements, id) = sql::list_statements(list);
                let found: Option<(String, Option<i64>)> =
                    sqlx::query_as(cursor).bind(tenant).bind(id).bind(&page.after).fetch_optional(&self.pool).await?;
                let Some((_, position)) = found else { return Ok(None) };
                let rows: Vec<(String,)> = sqlx::query_as(sql::page_statement(statements, page.order))
                    .bind(tenant)
                    .bind(id)
                    .bind(sql::page_start(page, position)?)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(&self.pool)
                    .await?;
                sql::page(&rows, page.limit).map(Some)
            }

            async fn delete_response(&self, tenant: &str, id: &str) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                self.tombstone(sql::DELETE_RESPONSE, sql::DELETE_ITEMS, tenant, id).await
            }

            async fn create_conversation(
                &self,
                tenant: &str,
                conversation: &$crate::model::Conversation,
                items: &[$crate::model::Item],
            ) -> $crate::store::StoreResult<()> {
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
            ) -> $crate::store::StoreResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
                sql::conversation(self.rows(sql::SELECT_CONVERSATION, tenant, id).await?.pop())
            }

            async fn update_conversation(
                &self,
                tenant: &str,
                id: &str,
                metadata: &$crate::model::Metadata,
            ) -> $crate::store::StoreResult<Option<$crate::model::Conversation>> {
                use $crate::store::sql;
                let mut tx = self.pool.begin().await?;
                let metadata = serde_json::to_string(metadata)?;
                sqlx::query(sql::UPDATE_CONVERSATION).bind(metadata).bind(tenant).bind(id).execute(&mut *tx).await?;
                let row =
                    sqlx::query_as(sql::SELECT_CONVERSATION).bind(tenant).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                sql::conversation(row)
            }

            async fn delete_conversation(&self, tenant: &str, id: &str) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                self.tombstone(sql::DELETE_CONVERSATION, sql::DELETE_CONVERSATION_ITEMS, tenant, id).await
            }

            async fn add_conversation_items(
                &self,
                tenant: &str,
                id: &str,
                items: &[$crate::model::Item],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let added = Self::append_items(&mut tx, tenant, id, items).await?;
                tx.commit().await?;
                Ok(added)
            }

            async fn conversation_items(
                &self,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<Vec<$crate::model::Item>>> {
                use $crate::store::sql;
                let rows: Vec<(String, Option<String>)> = self.rows(sql::SELECT_CONVERSATION_ITEMS, tenant, id).await?;
                sql::items(&rows)
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
                let query = sqlx::query(sql::DELETE_CONVERSATION_ITEM).bind(tenant).bind(id).bind(item_id);
                Ok(query.execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_store;
