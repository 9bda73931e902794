//! `sql_retention!`: the retention half of the SQL store, expanded inside `sql_store!` for each database type: whether
//! a response older than the retention is still alive, and the purge of `Store::purge`.
//!
//! The purge erases in batches of `retention.purge_batch` rows, each its own short transaction (never one long lock),
//! until a batch finds nothing: responses first, then conversations. Several replicas may purge at once: on Postgres
//! each batch locks the rows it picks and skips rows another batch holds (`SKIP_LOCKED`); SQLite has one writer at a
//! time anyway.

/// Adds expiry checks and the purge to a `sql_store!` type, which also has constants `BEGIN_WRITE` (the statement
/// that begins a write transaction) and `SKIP_LOCKED` (what follows a statement picking rows to purge: lock them,
/// skipping locked ones).
macro_rules! sql_retention {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Whether response `id` of `tenant`, found not deleted with creation time `created_at`, is alive: fresh,
            /// or continued by a fresh response (one query, asked only when it is not fresh itself).
            async fn alive(
                &self,
                tenant: &str,
                id: &str,
                created_at: i64,
                cutoffs: &$crate::store::Cutoffs,
            ) -> $crate::store::StoreResult<bool> {
                if cutoffs.fresh(created_at) {
                    return Ok(true);
                }
                let query = sqlx::query_scalar($crate::store::retention::FRESH_DESCENDANT);
                Ok(query.bind(tenant).bind(id).bind(cutoffs.responses).fetch_one(&self.pool).await?)
            }

            /// Whether response `id` of `tenant` is stored, not deleted, and alive.
            async fn response_alive(
                &self,
                tenant: &str,
                id: &str,
                cutoffs: &$crate::store::Cutoffs,
            ) -> $crate::store::StoreResult<bool> {
                let created_at: Option<i64> = sqlx::query_scalar($crate::store::retention::RESPONSE_CREATED_AT)
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match created_at {
                    Some(created_at) => self.alive(tenant, id, created_at, cutoffs).await,
                    None => Ok(false),
                }
            }

            /// Erases what `scope` names, a batch at a time, and reports what it deleted.
            async fn erase(
                &self,
                scope: $crate::store::Purge<'_>,
            ) -> $crate::store::StoreResult<$crate::store::PurgeReport> {
                use $crate::store::retention as sql;
                let cutoffs = self.retention.cutoffs();
                let (responses, conversations): (&[&str], &[&str]) = match scope {
                    $crate::store::Purge::Expired => (&sql::EXPIRED_RESPONSES, &sql::EXPIRED_CONVERSATIONS),
                    $crate::store::Purge::Tenant(_) => (&sql::TENANT_RESPONSES, &sql::TENANT_CONVERSATIONS),
                };
                let mut report = $crate::store::PurgeReport::default();
                loop {
                    let mut tx = self.writes().begin_with(Self::BEGIN_WRITE).await?;
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
                    let mut tx = self.writes().begin_with(Self::BEGIN_WRITE).await?;
                    let ids = self.candidates(&mut tx, conversations, scope, cutoffs.conversations).await?;
                    if ids.is_empty() {
                        break;
                    }
                    report.conversation_items += Self::delete_in(&mut tx, sql::DELETE_CONVERSATION_ITEMS, &ids).await?;
                    report.conversations += Self::delete_in(&mut tx, sql::DELETE_CONVERSATIONS, &ids).await?;
                    tx.commit().await?;
                }
                if let $crate::store::Purge::Tenant(tenant) = scope {
                    if report.responses > 0 {
                        self.forget_tenant(tenant).await?;
                    }
                }
                Ok(report)
            }

            /// The ids of up to a batch of rows `statements` pick, each in turn while the batch has room (their
            /// parameters: the cutoff, or the tenant, then how many), locked until the transaction ends where the
            /// database can.
            async fn candidates(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                statements: &[&str],
                scope: $crate::store::Purge<'_>,
                cutoff: i64,
            ) -> $crate::store::StoreResult<Vec<String>> {
                let batch = self.retention.config.purge_batch as usize;
                let mut ids = Vec::new();
                for statement in statements {
                    if ids.len() >= batch {
                        break;
                    }
                    let mut query = sqlx::QueryBuilder::<$db>::new(*statement);
                    query.push(Self::SKIP_LOCKED);
                    let query = query.build_query_scalar::<String>();
                    let query = match scope {
                        $crate::store::Purge::Expired => query.bind(cutoff),
                        $crate::store::Purge::Tenant(tenant) => query.bind(tenant),
                    };
                    let room = (batch - ids.len()) as i64;
                    ids.extend(query.bind(room).fetch_all(&mut **tx).await?);
                }
                Ok(ids)
            }

            /// Deletes these responses and every row that belongs to them (this is the one place that knows which
            /// tables hold rows of a response: a new one gets its statement here, before the responses'); returns
            /// how many responses and items it deleted.
            async fn erase_responses(
                tx: &mut sqlx::Transaction<'_, $db>,
                ids: &[String],
            ) -> $crate::store::StoreResult<(u64, u64)> {
                use $crate::store::retention as sql;
                let items = Self::delete_in(tx, sql::DELETE_RESPONSE_ITEMS, ids).await?;
                Self::delete_in(tx, sql::DELETE_RESPONSE_RUNS, ids).await?;
                let responses = Self::delete_in(tx, sql::DELETE_RESPONSES, ids).await?;
                Ok((responses, items))
            }

            /// Runs `statement` followed by the list of `ids`; returns how many rows it deleted.
            async fn delete_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                statement: &str,
                ids: &[String],
            ) -> $crate::store::StoreResult<u64> {
                let mut query = sqlx::QueryBuilder::<$db>::new(statement);
                query.push("(");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id);
                }
                list.push_unseparated(")");
                Ok(query.build().execute(&mut **tx).await?.rows_affected())
            }

            /// After a tenant's responses were erased: no cache may serve them any longer, here or (told by the
            /// deletion notice) on another replica.
            async fn forget_tenant(&self, tenant: &str) -> $crate::store::StoreResult<()> {
                self.cache.clear();
                if let Some(notice) = Self::FORGET_NOTICE {
                    let every = $crate::store::retention::EVERY_RESPONSE;
                    sqlx::query(notice).bind(tenant).bind(every).execute(self.writes()).await?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use sql_retention;
