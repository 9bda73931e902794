//! Background runs in the store: a queued response's row, its input items and the turn it is to run, stored at once;
//! claimed by one worker at a time (`FOR UPDATE SKIP LOCKED` on Postgres, so replicas never take the same one),
//! renewed with its progress as it runs, and ended by its worker, by a cancel, or — when its lease lapses — as
//! interrupted. Whoever deletes the run's row ends the response; everyone else finds it gone and writes nothing.

use serde_json::Value;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::dialect::Dialect;
use super::sql::{self, ItemRow};
use super::sql_store::SqlStore;
use super::sql_writes::push_responses;
use super::statement::Statement;
use super::{NewTurn, StoreError, StoreResult};
use crate::model::{Pieces, Progress, Response, ResponseError, ResponseStatus};

/// A background response a worker has claimed: its tenant, its id and the turn to run (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedRun {
    pub tenant: String,
    pub id: String,
    pub job: String,
}

/// How a background response is stopped before its worker ends it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStop {
    /// `Cancelled`, or `Failed` for a run whose server stopped.
    pub status: ResponseStatus,
    pub error: Option<ResponseError>,
    /// Only when its lease lapsed before this time (ms since the epoch); a waiting run has no lease and counts as
    /// lapsed. `i64::MAX`: whatever its state.
    pub lapsed_before: i64,
}

pub const INSERT_RUN: &str = "INSERT INTO background_runs (response_id, tenant, job) VALUES ($1, $2, $3)";

/// Claims the oldest waiting run for worker `$1` until `$2`; Postgres skips rows another replica is claiming.
pub const CLAIM_POSTGRES: &str = "UPDATE background_runs SET worker = $1, lease_until = $2 \
    WHERE response_id = (SELECT response_id FROM background_runs WHERE worker IS NULL \
        ORDER BY response_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
    RETURNING tenant, response_id, job";
pub const CLAIM_SQLITE: &str = "UPDATE background_runs SET worker = $1, lease_until = $2 \
    WHERE response_id = (SELECT response_id FROM background_runs WHERE worker IS NULL \
        ORDER BY response_id LIMIT 1) \
    RETURNING tenant, response_id, job";

/// Renews worker `$4`'s claim on run `$3` until `$1`, saving its progress `$2` when given.
pub const RENEW: &str = "UPDATE background_runs SET lease_until = $1, progress = COALESCE($2, progress) \
    WHERE response_id = $3 AND worker = $4";

/// Removes the run of response `$2` of tenant `$1` (deleted: its worker stops).
pub const DELETE_RUN: &str = "DELETE FROM background_runs WHERE tenant = $1 AND response_id = $2";

/// Ends worker `$2`'s run of response `$1` (no row: it is not that worker's any more).
pub const END_CLAIMED: &str = "DELETE FROM background_runs WHERE response_id = $1 AND worker = $2";

/// Ends run `$2` of tenant `$1` if its lease lapsed before `$3`, returning its progress.
pub const END_STOPPED: &str = "DELETE FROM background_runs \
    WHERE tenant = $1 AND response_id = $2 AND COALESCE(lease_until, 0) < $3 RETURNING progress";

/// How many runs wait for a worker.
pub const WAITING: &str = "SELECT COUNT(*) FROM background_runs WHERE worker IS NULL";

/// The runs whose lease lapsed before `$1`, oldest first, at most `$2`.
pub const LAPSED: &str = "SELECT tenant, response_id FROM background_runs \
    WHERE worker IS NOT NULL AND lease_until < $1 ORDER BY response_id LIMIT $2";

/// The progress of run `$2` of tenant `$1`.
pub const SELECT_PROGRESS: &str = "SELECT progress FROM background_runs WHERE tenant = $1 AND response_id = $2";

pub const SELECT_BODY: &str = "SELECT body FROM responses WHERE tenant = $1 AND id = $2";

/// Sets response `$4` of tenant `$3` to status `$1` with body `$2`.
pub const UPDATE_STATUS: &str = "UPDATE responses SET status = $1, body = $2 WHERE tenant = $3 AND id = $4";

/// Sets response `$5` of tenant `$4` to its end: status `$1`, body `$2`, pieces `$3`.
pub const UPDATE_ENDED: &str = "UPDATE responses SET status = $1, body = $2, pieces = $3 \
    WHERE tenant = $4 AND id = $5 AND deleted_at IS NULL";

/// A stored body with its status changed (a claimed response starts to run).
pub fn with_status(body: &str, status: ResponseStatus) -> StoreResult<String> {
    let mut body: Value = serde_json::from_str(body)?;
    body["status"] = Value::from(status.as_str());
    Ok(body.to_string())
}

/// A stopped response: its stored body (without output) ended as `stop` says, with the output it had so far.
pub fn stopped(body: &str, progress: Option<&str>, stop: &RunStop) -> StoreResult<(Response, Pieces)> {
    let mut body: Value = serde_json::from_str(body)?;
    body["output"] = Value::Array(Vec::new());
    let mut response: Response = serde_json::from_value(body)?;
    let progress: Progress = progress.map(serde_json::from_str).transpose()?.unwrap_or_default();
    let progress = progress.stopped();
    response.status = stop.status;
    response.error = stop.error.clone();
    response.completed_at = None;
    response.output = progress.output;
    Ok((response, progress.pieces))
}

/// The output item rows of a response's output, numbered from 0.
pub fn output_rows(response: &Response) -> StoreResult<Vec<ItemRow>> {
    sql::item_rows(&response.output, &[])
}

/// The response with the progress of its run as output, when it is still queued or running.
pub fn with_progress(mut response: Response, progress: Option<&str>) -> StoreResult<(Response, Pieces)> {
    let progress: Progress = progress.map(serde_json::from_str).transpose()?.unwrap_or_default();
    response.output = progress.output;
    Ok((response, progress.pieces))
}

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
    pub(super) async fn enqueue_run(&self, tenant: &str, queued: NewTurn<'_>, job: &str) -> StoreResult<()> {
        let rows = sql::TurnRows::new(tenant, &queued, self.retention.cutoffs())?;
        let mut tx = self.writes().begin().await?;
        let mut insert = Statement::default();
        push_responses(&mut insert, &[&rows]);
        insert.query().execute(&mut *tx).await?;
        let items: Vec<_> = rows.response_items().collect();
        Self::insert_items(&mut tx, &items).await?;
        let id = &queued.response.id;
        sqlx::query(INSERT_RUN).bind(id).bind(tenant).bind(job).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn claim_run(&self, worker: &str, lease_until: i64) -> StoreResult<Option<ClaimedRun>> {
        let mut tx = self.writes().begin().await?;
        let claimed: Option<(String, String, String)> =
            sqlx::query_as(DB::CLAIM).bind(worker).bind(lease_until).fetch_optional(&mut *tx).await?;
        let Some((tenant, id, job)) = claimed else { return Ok(None) };
        let (body,): (String,) = sqlx::query_as(SELECT_BODY).bind(&tenant).bind(&id).fetch_one(&mut *tx).await?;
        let status = ResponseStatus::InProgress;
        let body = with_status(&body, status)?;
        let update = sqlx::query(UPDATE_STATUS).bind(status.as_str()).bind(body);
        update.bind(&tenant).bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(ClaimedRun { tenant, id, job }))
    }

    pub(super) async fn renew_run(
        &self,
        id: &str,
        worker: &str,
        lease_until: i64,
        progress: Option<&str>,
    ) -> StoreResult<bool> {
        let renew = sqlx::query(RENEW).bind(lease_until).bind(progress);
        let renewed = renew.bind(id).bind(worker).execute(self.writes()).await?;
        Ok(DB::rows_affected(&renewed) > 0)
    }

    pub(super) async fn finish_claimed_run(&self, tenant: &str, turn: NewTurn<'_>, worker: &str) -> StoreResult<bool> {
        let response = turn.response;
        let rows = sql::TurnRows::new(tenant, &turn, self.retention.cutoffs())?;
        let mut tx = self.writes().begin().await?;
        let ended = sqlx::query(END_CLAIMED).bind(&response.id).bind(worker);
        if DB::rows_affected(&ended.execute(&mut *tx).await?) == 0 {
            return Ok(false);
        }
        if let Some(conversation) = turn.conversation {
            if !Self::append_items(&mut tx, tenant, conversation, &rows.items, &rows.cutoffs).await? {
                return Err(StoreError::ConversationNotFound(conversation.to_string()));
            }
        }
        let output: Vec<_> = rows.response_items().filter(|item| item.2 == sql::OUTPUT).collect();
        Self::end_response(&mut tx, tenant, response, turn.pieces, &output).await?;
        tx.commit().await?;
        self.cache.add(tenant, &turn, rows.json_bytes());
        Ok(true)
    }

    pub(super) async fn stop_unfinished_run(&self, tenant: &str, id: &str, stop: &RunStop) -> StoreResult<bool> {
        let mut tx = self.writes().begin().await?;
        let ended: Option<(Option<String>,)> =
            sqlx::query_as(END_STOPPED).bind(tenant).bind(id).bind(stop.lapsed_before).fetch_optional(&mut *tx).await?;
        let Some((progress,)) = ended else { return Ok(false) };
        let (body,): (String,) = sqlx::query_as(SELECT_BODY).bind(tenant).bind(id).fetch_one(&mut *tx).await?;
        let (response, pieces) = stopped(&body, progress.as_deref(), stop)?;
        let rows = output_rows(&response)?;
        let output: Vec<sql::ResponseItem<'_>> =
            rows.iter().enumerate().map(|(position, row)| (tenant, id, sql::OUTPUT, position as i64, row)).collect();
        Self::end_response(&mut tx, tenant, &response, &pieces, &output).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes a background response's end within `tx`: its row, and its output item rows.
    pub(super) async fn end_response(
        tx: &mut Transaction<'_, DB>,
        tenant: &str,
        response: &Response,
        pieces: &Pieces,
        output: &[sql::ResponseItem<'_>],
    ) -> StoreResult<()> {
        sqlx::query(UPDATE_ENDED)
            .bind(response.status.as_str())
            .bind(sql::response_body(response)?)
            .bind(serde_json::to_string(pieces)?)
            .bind(tenant)
            .bind(&response.id)
            .execute(&mut **tx)
            .await?;
        Self::insert_items(tx, output).await
    }

    pub(super) async fn lapsed_runs_before(&self, now: i64, limit: u32) -> StoreResult<Vec<(String, String)>> {
        let lapsed = sqlx::query_as(LAPSED).bind(now).bind(i64::from(limit));
        Ok(lapsed.fetch_all(&self.pool).await?)
    }

    /// The progress of a background response still queued or running, as its output.
    pub(super) async fn progress_of(&self, tenant: &str, response: Response) -> StoreResult<(Response, Pieces)> {
        let progress: Option<(Option<String>,)> =
            sqlx::query_as(SELECT_PROGRESS).bind(tenant).bind(&response.id).fetch_optional(&self.pool).await?;
        with_progress(response, progress.and_then(|(progress,)| progress).as_deref())
    }
}
