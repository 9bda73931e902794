//! The browsing half of the SQL store: lists of conversations and responses (filters, search and keyset paging all
//! in SQL) and a response's tree (`lists.rs` has the shared statements and the row conversions). Expired data is left
//! out like everywhere else in the store.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::statement::Statement;
use super::{lists, ConversationEntry, ListQuery, ResponseNode, StoreResult, Tree};

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
    /// Adds a list's metadata and search filters for the metadata JSON `object` and the `preview` column.
    pub(super) fn push_filters<'a>(query: &mut Statement<'a>, list: &'a ListQuery, object: &str, preview: &str) {
        let [open, key, value, close] = DB::METADATA_MATCH;
        for (name, wanted) in &list.metadata {
            query.push(" AND ").push(open).push(object).push(key).push_bind(name);
            query.push(value).push_bind(wanted).push(close);
        }
        if let Some(search) = &list.search {
            query.push(" AND lower(").push(preview).push(") LIKE ");
            query.push_bind(lists::contains_pattern(search)).push(" ESCAPE '\\'");
        }
    }

    /// Adds a list's keyset condition on `column`, its order and its limit (one more row than the page).
    pub(super) fn push_page<'a>(query: &mut Statement<'a>, list: &'a ListQuery, column: &str) {
        let (after, order) = lists::keyset(list.order, column);
        if let Some(id) = &list.after {
            query.push(&after).push_bind(id);
        }
        query.push(&order).push_bind(i64::from(list.limit) + 1);
    }

    /// Adds the condition that response `r` is alive (fresh, or continued by a fresh response).
    pub(super) fn push_alive(query: &mut Statement<'_>, cutoff: i64) {
        let [fresh, descendant] = lists::ALIVE;
        query.push(fresh).push_bind(cutoff).push(descendant).push_bind(cutoff).push("))");
    }

    pub(super) async fn conversations_page(
        &self,
        tenant: &str,
        list: &ListQuery,
    ) -> StoreResult<(Vec<ConversationEntry>, bool)> {
        let mut query =
            Statement::new("SELECT c.id, c.created_at, c.metadata, c.preview FROM conversations c WHERE c.tenant = ");
        query.push_bind(tenant).push(" AND c.deleted_at IS NULL AND c.updated_at >= ");
        query.push_bind(self.retention.cutoffs().conversations);
        Self::push_filters(&mut query, list, DB::CONVERSATION_METADATA, "c.preview");
        Self::push_page(&mut query, list, "c.id");
        let rows: Vec<(String, i64, String, Option<String>)> = query.query_as().fetch_all(&self.pool).await?;
        let (rows, has_more) = lists::page_of(rows, list.limit);
        let entries = rows.into_iter().map(lists::conversation_entry).collect::<Result<_, _>>()?;
        Ok((entries, has_more))
    }

    pub(super) async fn responses_page(
        &self,
        tenant: &str,
        list: &ListQuery,
    ) -> StoreResult<(Vec<ResponseNode>, bool)> {
        let mut query = Statement::new("SELECT ");
        query.push(lists::NODE_COLUMNS).push(" FROM responses r WHERE r.tenant = ");
        query.push_bind(tenant).push(" AND r.deleted_at IS NULL");
        Self::push_alive(&mut query, self.retention.cutoffs().responses);
        if let Some(parent) = &list.parent {
            query.push(" AND r.previous_response_id = ").push_bind(parent);
        }
        if list.roots {
            query.push(lists::ROOT);
        }
        Self::push_filters(&mut query, list, DB::RESPONSE_METADATA, "r.preview");
        Self::push_page(&mut query, list, "r.id");
        let rows: Vec<lists::NodeRow> = query.query_as().fetch_all(&self.pool).await?;
        let (rows, has_more) = lists::page_of(rows, list.limit);
        Ok((self.nodes(tenant, rows).await?, has_more))
    }

    /// The nodes of response rows, their output previews read in one query.
    pub(super) async fn nodes(&self, tenant: &str, rows: Vec<lists::NodeRow>) -> StoreResult<Vec<ResponseNode>> {
        let mut outputs: HashMap<String, Vec<String>> = HashMap::new();
        if !rows.is_empty() {
            let [select, ids] = lists::SELECT_OUTPUTS;
            let mut query = Statement::new(select);
            query.push_bind(tenant).push(ids).push_list(rows.iter().map(|row| &row.0));
            query.push(" ORDER BY response_id, position");
            let items: Vec<(String, String)> = query.query_as().fetch_all(&self.pool).await?;
            for (id, body) in items {
                outputs.entry(id).or_default().push(body);
            }
        }
        rows.into_iter()
            .map(|row| {
                let bodies = outputs.get(&row.0).map(Vec::as_slice).unwrap_or_default();
                let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
                lists::node(row, &bodies)
            })
            .collect()
    }

    pub(super) async fn tree_of(&self, tenant: &str, id: &str, depth: u32, limit: u32) -> StoreResult<Option<Tree>> {
        let cutoffs = self.retention.cutoffs();
        if !self.response_alive(tenant, id, &cutoffs).await? {
            return Ok(None);
        }
        let path: Vec<(String,)> = sqlx::query_as(lists::SELECT_PATH)
            .bind(tenant)
            .bind(id)
            .bind(i64::from(u32::MAX))
            .fetch_all(&self.pool)
            .await?;
        // One level and one node more than asked tell whether the subtree was cut.
        let [with, and_id, union, below, select] = lists::SUBTREE;
        let mut query = Statement::new(with);
        query.push_bind(tenant).push(and_id).push_bind(id).push(union).push_bind(tenant).push(below);
        query.push_bind(i64::from(depth) + 1).push(select);
        query.push(lists::NODE_COLUMNS).push(lists::SUBTREE_FROM);
        Self::push_alive(&mut query, cutoffs.responses);
        query.push(" ORDER BY t.depth, r.created_at, r.id LIMIT ").push_bind(i64::from(limit) + 1);
        let query = query.query_as::<DB, (
            i64,
            String,
            Option<String>,
            i64,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
        )>();
        let rows = query.fetch_all(&self.pool).await?;
        let found = rows.len();
        let rows: Vec<lists::NodeRow> = rows
            .into_iter()
            .take_while(|row| row.0 <= i64::from(depth))
            .take(limit as usize)
            .map(|(_, a, b, c, d, e, f, g, h)| (a, b, c, d, e, f, g, h))
            .collect();
        let has_more = found > rows.len();
        let nodes = self.nodes(tenant, rows).await?;
        Ok(Some(Tree { path: path.into_iter().map(|(id,)| id).collect(), nodes, has_more }))
    }
}
