//! The write half of the SQL store: turns written in groups (one transaction, or one statement when they fit), the
//! multi-row INSERTs of responses and items, tombstones, appends to conversations, and reading the rows of one
//! object.

use sqlx::query::Query;
use sqlx::{Acquire, ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::statement::{Param, Statement};
use super::{lists, sql, Cutoffs, StoreError, StoreResult};

impl<DB> SqlStore<DB>
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
    /// The pool that writes go through.
    pub(super) fn writes(&self) -> &Pool<DB> {
        self.writer_pool.as_ref().unwrap_or(&self.pool)
    }

    /// Writes a batch of turns (the writer's `WriteBatch`): all in one transaction, or — when that fails —
    /// each in its own, so that one turn's failure fails that turn only.
    pub(super) async fn write_turns(pool: &Pool<DB>, turns: &[sql::TurnRows]) -> Vec<StoreResult<()>> {
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
    pub(super) async fn write_batch(pool: &Pool<DB>, turns: &[sql::TurnRows]) -> StoreResult<Vec<StoreResult<()>>> {
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
                Self::append_items(&mut savepoint, &turn.tenant, conversation, &turn.items, &turn.cutoffs).await;
            results.push(match appended {
                Ok(true) => savepoint.commit().await.map_err(Into::into),
                Ok(false) => {
                    savepoint.rollback().await?;
                    Err(StoreError::ConversationNotFound(conversation.clone()))
                }
                Err(err) => {
                    savepoint.rollback().await?;
                    Err(err)
                }
            });
        }
        let stored = turns.iter().zip(&results).filter(|(turn, result)| result.is_ok() && turn.response.is_some());
        let stored: Vec<&sql::TurnRows> = stored.map(|(turn, _)| turn).collect();
        for chunk in stored.chunks(sql::RESPONSES_PER_INSERT) {
            let mut insert = Statement::default();
            push_responses(&mut insert, chunk);
            insert.query().execute(&mut *tx).await?;
        }
        let items: Vec<_> = stored.iter().flat_map(|turn| turn.response_items()).collect();
        Self::insert_items(&mut tx, &items).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// Inserts responses and their items in one atomic statement: one round trip.
    pub(super) async fn insert_at_once(
        pool: &Pool<DB>,
        turns: &[&sql::TurnRows],
        items: &[sql::ResponseItem<'_>],
    ) -> StoreResult<()> {
        let (begin, between, end) = DB::AT_ONCE;
        let mut statement = Statement::new(begin);
        push_responses(&mut statement, turns);
        statement.push(between);
        push_items(&mut statement, items);
        statement.push(end);
        let mut connection = pool.acquire().await?;
        if let Err(err) = statement.query().execute(&mut *connection).await {
            // A transaction the statements began may still be open on this connection.
            let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
            return Err(err.into());
        }
        Ok(())
    }

    /// Inserts response item rows within a transaction, in multi-row INSERTs.
    pub(super) async fn insert_items(tx: &mut Transaction<'_, DB>, items: &[sql::ResponseItem<'_>]) -> StoreResult<()> {
        for chunk in items.chunks(sql::ITEMS_PER_INSERT) {
            let mut insert = Statement::default();
            push_items(&mut insert, chunk);
            insert.query().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Erases an object in one transaction: `mark` turns its row into a tombstone, each of `erase` deletes
    /// rows of its own (its items, a run; binding tenant and id), and `notice` (binding tenant and id) tells
    /// the other replicas. False if it was not there.
    pub(super) async fn tombstone<'q>(
        &self,
        mark: Query<'q, DB, DB::Arguments<'q>>,
        erase: &[&str],
        tenant: &str,
        id: &str,
        notice: Option<&str>,
    ) -> StoreResult<bool> {
        let mut tx = self.writes().begin().await?;
        let marked = mark.execute(&mut *tx).await?;
        for statement in erase {
            sqlx::query(statement).bind(tenant).bind(id).execute(&mut *tx).await?;
        }
        if let Some(notice) = notice.filter(|_| DB::rows_affected(&marked) > 0) {
            sqlx::query(notice).bind(tenant).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(DB::rows_affected(&marked) > 0)
    }

    /// Appends items (as rows) to a conversation within a transaction, marking it used (and previewed by
    /// its first message); false if the conversation is gone (or expired).
    pub(super) async fn append_items(
        tx: &mut Transaction<'_, DB>,
        tenant: &str,
        id: &str,
        items: &[sql::ItemRow],
        cutoffs: &Cutoffs,
    ) -> StoreResult<bool> {
        let preview = lists::preview_of(items.iter().map(|(_, json, _)| json.as_str()), true);
        let reserved: Option<(i64,)> = sqlx::query_as(sql::RESERVE_POSITIONS)
            .bind(items.len() as i64)
            .bind(cutoffs.now)
            .bind(tenant)
            .bind(id)
            .bind(cutoffs.conversations)
            .bind(preview.as_deref())
            .fetch_optional(&mut **tx)
            .await?;
        let Some((end,)) = reserved else { return Ok(false) };
        let rows: Vec<_> = (end - items.len() as i64..).zip(items).collect();
        for chunk in rows.chunks(sql::ITEMS_PER_INSERT) {
            let mut insert = Statement::new(sql::INSERT_CONVERSATION_ITEMS);
            insert.push_values(chunk, |(position, (item_id, body, tokens))| {
                vec![tenant.into(), id.into(), (*position).into(), item_id.into(), body.into(), (*tokens).into()]
            });
            insert.query().execute(&mut **tx).await.map_err(sql::duplicate_item)?;
        }
        Ok(true)
    }

    /// The conversation row `statement` reads (its parameters: tenant, id, then the oldest last use kept).
    pub(super) async fn conversation_rows<R>(&self, statement: &str, tenant: &str, id: &str) -> StoreResult<Vec<R>>
    where
        R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    {
        let cutoff = self.retention.cutoffs().conversations;
        Ok(sqlx::query_as(statement).bind(tenant).bind(id).bind(cutoff).fetch_all(&self.pool).await?)
    }
}

/// Adds the multi-row INSERT of these turns' responses to `statement`.
pub(super) fn push_responses<'a>(statement: &mut Statement<'a>, turns: &[&'a sql::TurnRows]) {
    statement.push(sql::INSERT_RESPONSES);
    let rows = turns.iter().filter_map(|turn| Some((&turn.tenant, turn.response.as_ref()?)));
    statement.push_values(rows, |(tenant, (id, previous, status, created_at, body, pieces, preview))| {
        let (status, created_at) = (Param::from(*status), Param::from(*created_at));
        vec![id.into(), tenant.into(), previous.into(), status, created_at, body.into(), pieces.into(), preview.into()]
    });
}

/// Adds the multi-row INSERT of these response items, each with its tenant, to `statement`.
pub(super) fn push_items<'a>(statement: &mut Statement<'a>, items: &[sql::ResponseItem<'a>]) {
    statement.push(sql::INSERT_ITEMS);
    statement.push_values(items, |(tenant, response_id, direction, position, (item_id, body, tokens))| {
        let (direction, position) = (Param::from(*direction), Param::from(*position));
        vec![
            (*tenant).into(),
            (*response_id).into(),
            direction,
            position,
            item_id.into(),
            body.into(),
            (*tokens).into(),
        ]
    });
}
