//! The retention half of the SQL store: whether a response older than the retention is still alive, and the purge of `Store::purge`.
//!
//! The purge erases in batches of `retention.purge_batch` rows, each its own short transaction (never one long lock),
//! until a batch finds nothing: responses first, then conversations. Several replicas may purge at once: on Postgres
//! each batch locks the rows it picks and skips rows another batch holds (`SKIP_LOCKED`); SQLite has one writer at a
//! time anyway.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::statement::Statement;
use super::{retention, Cutoffs, Purge, PurgeReport, StoreResult};

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
    /// Whether response `id` of `tenant`, found not deleted with creation time `created_at`, is alive: fresh,
    /// or continued by a fresh response (one query, asked only when it is not fresh itself).
    pub(super) async fn alive(&self, tenant: &str, id: &str, created_at: i64, cutoffs: &Cutoffs) -> StoreResult<bool> {
        if cutoffs.fresh(created_at) {
            return Ok(true);
        }
        let query = sqlx::query_scalar(retention::FRESH_DESCENDANT);
        Ok(query.bind(tenant).bind(id).bind(cutoffs.responses).fetch_one(&self.pool).await?)
    }

    /// Whether response `id` of `tenant` is stored, not deleted, and alive.
    pub(super) async fn response_alive(&self, tenant: &str, id: &str, cutoffs: &Cutoffs) -> StoreResult<bool> {
        let created_at: Option<i64> =
            sqlx::query_scalar(retention::RESPONSE_CREATED_AT).bind(tenant).bind(id).fetch_optional(&self.pool).await?;
        match created_at {
            Some(created_at) => self.alive(tenant, id, created_at, cutoffs).await,
            None => Ok(false),
        }
    }

    /// Erases what `scope` names, a batch at a time, and reports what it deleted.
    pub(super) async fn erase(&self, scope: Purge<'_>) -> StoreResult<PurgeReport> {
        let cutoffs = self.retention.cutoffs();
        let (responses, conversations): (&[&str], &[&str]) = match scope {
            Purge::Expired => (&retention::EXPIRED_RESPONSES, &retention::EXPIRED_CONVERSATIONS),
            Purge::Tenant(_) => (&retention::TENANT_RESPONSES, &retention::TENANT_CONVERSATIONS),
        };
        let mut report = PurgeReport::default();
        loop {
            let mut tx = self.writes().begin_with(DB::BEGIN_WRITE).await?;
            let ids = self.candidates(&mut tx, responses, scope, cutoffs.responses).await?;
            if ids.is_empty() {
                break;
            }
            let (deleted, items) = Self::erase_responses(&mut tx, &ids).await?;
            tx.commit().await?;
            report.responses += deleted;
            report.response_items += items;
        }
        loop {
            let mut tx = self.writes().begin_with(DB::BEGIN_WRITE).await?;
            let ids = self.candidates(&mut tx, conversations, scope, cutoffs.conversations).await?;
            if ids.is_empty() {
                break;
            }
            report.conversation_items += Self::delete_in(&mut tx, retention::DELETE_CONVERSATION_ITEMS, &ids).await?;
            report.conversations += Self::delete_in(&mut tx, retention::DELETE_CONVERSATIONS, &ids).await?;
            tx.commit().await?;
        }
        if let Purge::Tenant(tenant) = scope {
            if report.responses > 0 {
                self.forget_tenant(tenant).await?;
            }
        }
        Ok(report)
    }

    /// The ids of up to a batch of rows `statements` pick, each in turn while the batch has room (their
    /// parameters: the cutoff, or the tenant, then how many), locked until the transaction ends where the
    /// database can.
    pub(super) async fn candidates(
        &self,
        tx: &mut Transaction<'_, DB>,
        statements: &[&str],
        scope: Purge<'_>,
        cutoff: i64,
    ) -> StoreResult<Vec<String>> {
        let batch = self.retention.config.purge_batch as usize;
        let mut ids = Vec::new();
        for statement in statements {
            if ids.len() >= batch {
                break;
            }
            let mut query = Statement::new(statement);
            query.push(DB::SKIP_LOCKED);
            let query = sqlx::query_scalar::<DB, String>(query.sql());
            let query = match scope {
                Purge::Expired => query.bind(cutoff),
                Purge::Tenant(tenant) => query.bind(tenant),
            };
            let room = (batch - ids.len()) as i64;
            ids.extend(query.bind(room).fetch_all(&mut **tx).await?);
        }
        Ok(ids)
    }

    /// Deletes these responses and every row that belongs to them (this is the one place that knows which
    /// tables hold rows of a response: a new one gets its statement here, before the responses'); returns
    /// how many responses and items it deleted.
    pub(super) async fn erase_responses(tx: &mut Transaction<'_, DB>, ids: &[String]) -> StoreResult<(u64, u64)> {
        let items = Self::delete_in(tx, retention::DELETE_RESPONSE_ITEMS, ids).await?;
        Self::delete_in(tx, retention::DELETE_RESPONSE_RUNS, ids).await?;
        let responses = Self::delete_in(tx, retention::DELETE_RESPONSES, ids).await?;
        Ok((responses, items))
    }

    /// Runs `statement` followed by the list of `ids`; returns how many rows it deleted.
    pub(super) async fn delete_in(tx: &mut Transaction<'_, DB>, statement: &str, ids: &[String]) -> StoreResult<u64> {
        let mut query = Statement::new(statement);
        query.push_list(ids);
        Ok(DB::rows_affected(&query.query().execute(&mut **tx).await?))
    }

    /// After a tenant's responses were erased: no cache may serve them any longer, here or (told by the
    /// deletion notice) on another replica.
    pub(super) async fn forget_tenant(&self, tenant: &str) -> StoreResult<()> {
        self.cache.clear();
        if let Some(notice) = DB::FORGET_NOTICE {
            let every = retention::EVERY_RESPONSE;
            sqlx::query(notice).bind(tenant).bind(every).execute(self.writes()).await?;
        }
        Ok(())
    }
}
