//! `sql_writes!`: the write half of the SQL store, expanded inside `sql_store!` for each database type: turns
//! written in groups (one transaction, or one statement when they fit), the multi-row INSERTs of responses and items,
//! tombstones, appends to conversations, and reading the rows of one object.

/// Adds the write helpers to a `sql_store!` type (see that macro for the fields and constants it has).
macro_rules! sql_writes {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The pool that writes go through.
            fn writes(&self) -> &sqlx::Pool<$db> {
                self.writer_pool.as_ref().unwrap_or(&self.pool)
            }

            /// Writes a batch of turns (the writer's `WriteBatch`): all in one transaction, or — when that fails —
            /// each in its own, so that one turn's failure fails that turn only.
            async fn write_turns(
                pool: &sqlx::Pool<$db>,
                turns: &[$crate::store::sql::TurnRows],
            ) -> Vec<$crate::store::StoreResult<()>> {
                match Self::write_batch(pool, turns).await {
                    Ok(results) => results,
                    Err(err) if turns.len() == 1 => vec![Err(err)],
                    Err(_) => {
                        let mut results = Vec::with_capacity(turns.len());
                        for turn in turns {
                            let result = Self::write_batch(pool, std::slice::from_ref(turn)).await;
                            results.push(result.and_then(|mut result| result.pop().unwrap_or(Ok(()))));
                        }
                        results
                    }
                }
            }

            /// Writes turns in one transaction: each appended to its conversation (under a savepoint; a turn whose
            /// conversation is gone gets `ConversationNotFound` and stores nothing), then the stored responses
            /// and their items in multi-row INSERTs. Turns with no conversation that fit one statement are written
            /// in one round trip (`AT_ONCE`).
            async fn write_batch(
                pool: &sqlx::Pool<$db>,
                turns: &[$crate::store::sql::TurnRows],
            ) -> $crate::store::StoreResult<Vec<$crate::store::StoreResult<()>>> {
                use sqlx::Acquire;
                use $crate::store::sql;
                if turns.iter().all(|turn| turn.conversation.is_none() && turn.response.is_some())
                    && turns.len() <= sql::RESPONSES_PER_INSERT
                {
                    let items: Vec<_> = turns.iter().flat_map(sql::TurnRows::response_items).collect();
                    if (1..=sql::ITEMS_PER_INSERT).contains(&items.len()) {
                        let turns: Vec<&sql::TurnRows> = turns.iter().collect();
                        Self::insert_at_once(pool, &turns, &items).await?;
                        return Ok(turns.iter().map(|_| Ok(())).collect());
                    }
                }
                let mut tx = pool.begin().await?;
                let mut results = Vec::with_capacity(turns.len());
                for turn in turns {
                    let Some(conversation) = &turn.conversation else {
                        results.push(Ok(()));
                        continue;
                    };
                    let mut savepoint = tx.begin().await?;
                    let appended =
                        Self::append_items(&mut savepoint, &turn.tenant, conversation, &turn.items, &turn.cutoffs)
                            .await;
                    results.push(match appended {
                        Ok(true) => savepoint.commit().await.map_err(Into::into),
                        Ok(false) => {
                            savepoint.rollback().await?;
                            Err($crate::store::StoreError::ConversationNotFound(conversation.clone()))
                        }
                        Err(err) => {
                            savepoint.rollback().await?;
                            Err(err)
                        }
                    });
                }
                let stored =
                    turns.iter().zip(&results).filter(|(turn, result)| result.is_ok() && turn.response.is_some());
                let stored: Vec<&sql::TurnRows> = stored.map(|(turn, _)| turn).collect();
                for chunk in stored.chunks(sql::RESPONSES_PER_INSERT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("");
                    Self::push_responses(&mut query, chunk);
                    query.build().execute(&mut *tx).await?;
                }
                let items: Vec<_> = stored.iter().flat_map(|turn| turn.response_items()).collect();
                for chunk in items.chunks(sql::ITEMS_PER_INSERT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("");
                    Self::push_items(&mut query, chunk);
                    query.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(results)
            }

            /// Inserts responses and their items in one atomic statement: one round trip.
            async fn insert_at_once(
                pool: &sqlx::Pool<$db>,
                turns: &[&$crate::store::sql::TurnRows],
                items: &[$crate::store::sql::ResponseItem<'_>],
            ) -> $crate::store::StoreResult<()> {
                let (begin, between, end) = Self::AT_ONCE;
                let mut query = sqlx::QueryBuilder::<$db>::new(begin);
                Self::push_responses(&mut query, turns);
                query.push(between);
                Self::push_items(&mut query, items);
                query.push(end);
                let mut connection = pool.acquire().await?;
                if let Err(err) = query.build().execute(&mut *connection).await {
                    // A transaction the statements began may still be open on this connection.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
                    return Err(err.into());
                }
                Ok(())
            }

            /// Adds the multi-row INSERT of these turns' responses to `query`.
            fn push_responses<'a>(query: &mut sqlx::QueryBuilder<'a, $db>, turns: &[&'a $crate::store::sql::TurnRows]) {
                query.push($crate::store::sql::INSERT_RESPONSES);
                query.push_values(turns, |mut row, turn| {
                    if let Some((id, previous, status, created_at, body, pieces, preview)) = &turn.response {
                        row.push_bind(id).push_bind(&turn.tenant).push_bind(previous).push_bind(*status);
                        row.push_bind(*created_at).push_bind(body).push_bind(pieces).push_bind(preview);
                    }
                });
            }

            /// Adds the multi-row INSERT of these response items, each with its tenant, to `query`.
            fn push_items<'a>(query: &mut sqlx::QueryBuilder<'a, $db>, items: &[$crate::store::sql::ResponseItem<'a>]) {
                query.push($crate::store::sql::INSERT_ITEMS);
                query.push_values(
                    items,
                    |mut row, (tenant, response_id, direction, position, (item_id, body, tokens))| {
                        row.push_bind(*tenant).push_bind(*response_id).push_bind(*direction);
                        row.push_bind(*position).push_bind(item_id).push_bind(body).push_bind(*tokens);
                    },
                );
            }

            /// Erases an object in one transaction: `mark` turns its row into a tombstone, each of `erase` deletes
            /// rows of its own (its items, a run; binding tenant and id), and `notice` (binding tenant and id) tells
            /// the other replicas. False if it was not there.
            async fn tombstone<'q>(
                &self,
                mark: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                erase: &[&str],
                tenant: &str,
                id: &str,
                notice: Option<&str>,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.writes().begin().await?;
                let marked = mark.execute(&mut *tx).await?;
                for statement in erase {
                    sqlx::query(statement).bind(tenant).bind(id).execute(&mut *tx).await?;
                }
                if let Some(notice) = notice.filter(|_| marked.rows_affected() > 0) {
                    sqlx::query(notice).bind(tenant).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(marked.rows_affected() > 0)
            }

            /// Appends items (as rows) to a conversation within a transaction, marking it used (and previewed by
            /// its first message); false if the conversation is gone (or expired).
            async fn append_items(
                tx: &mut sqlx::Transaction<'_, $db>,
                tenant: &str,
                id: &str,
                items: &[$crate::store::sql::ItemRow],
                cutoffs: &$crate::store::Cutoffs,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::sql;
                let bodies = items.iter().map(|(_, json, _)| json.as_str());
                let reserved: Option<(i64,)> = sqlx::query_as(sql::RESERVE_POSITIONS)
                    .bind(items.len() as i64)
                    .bind(cutoffs.now)
                    .bind(tenant)
                    .bind(id)
                    .bind(cutoffs.conversations)
                    .bind($crate::store::lists::preview_of(bodies, true))
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some((end,)) = reserved else { return Ok(false) };
                let rows: Vec<_> = (end - items.len() as i64..).zip(items).collect();
                for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql::INSERT_CONVERSATION_ITEMS);
                    insert.push_values(chunk, |mut row, (position, (item_id, body, tokens))| {
                        row.push_bind(tenant).push_bind(id).push_bind(*position);
                        row.push_bind(item_id).push_bind(body).push_bind(*tokens);
                    });
                    insert.build().execute(&mut **tx).await.map_err(sql::duplicate_item)?;
                }
                Ok(true)
            }

            /// The conversation row `statement` reads (its parameters: tenant, id, then the oldest last use kept).
            async fn conversation_rows<R>(
                &self,
                statement: &str,
                tenant: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Vec<R>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                let cutoff = self.retention.cutoffs().conversations;
                Ok(sqlx::query_as(statement).bind(tenant).bind(id).bind(cutoff).fetch_all(&self.pool).await?)
            }
        }
    };
}

pub(crate) use sql_writes;
