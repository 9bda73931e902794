//! `sql_lists!`: the browsing half of the SQL store, expanded inside `sql_store!` for each database type: lists of
//! conversations and responses (filters, search and keyset paging all in SQL) and a response's tree (`lists.rs` has
//! the shared statements and the row conversions). Expired data is left out like everywhere else in the store.

/// Adds the list reads to a `sql_store!` type, which also has constants `METADATA_MATCH` (the four pieces around
/// a JSON object expression, a key and a value that test a metadata entry), `RESPONSE_METADATA` and
/// `CONVERSATION_METADATA` (the JSON object expressions of a response's `r` and a conversation's `c` metadata).
macro_rules! sql_lists {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Adds a list's metadata and search filters for the metadata JSON `object` and the `preview` column.
            fn push_filters<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                list: &'a $crate::store::ListQuery,
                object: &str,
                preview: &str,
            ) {
                let [open, key, value, close] = Self::METADATA_MATCH;
                for (name, wanted) in &list.metadata {
                    query.push(" AND ").push(open).push(object).push(key).push_bind(name);
                    query.push(value).push_bind(wanted).push(close);
                }
                if let Some(search) = &list.search {
                    query.push(format!(" AND lower({preview}) LIKE "));
                    query.push_bind($crate::store::lists::contains_pattern(search)).push(" ESCAPE '\\'");
                }
            }

            /// Adds a list's keyset condition on `column`, its order and its limit (one more row than the page).
            fn push_page<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                list: &'a $crate::store::ListQuery,
                column: &str,
            ) {
                let (after, order) = $crate::store::lists::keyset(list.order, column);
                if let Some(id) = &list.after {
                    query.push(after).push_bind(id);
                }
                query.push(order).push_bind(i64::from(list.limit) + 1);
            }

            /// Adds the condition that response `r` is alive (fresh, or continued by a fresh response).
            fn push_alive(query: &mut sqlx::QueryBuilder<'_, $db>, cutoff: i64) {
                let [fresh, descendant] = $crate::store::lists::ALIVE;
                query.push(fresh).push_bind(cutoff).push(descendant).push_bind(cutoff).push("))");
            }

            async fn conversations_page(
                &self,
                tenant: &str,
                list: &$crate::store::ListQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::store::ConversationEntry>, bool)> {
                use $crate::store::lists;
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT c.id, c.created_at, c.metadata, c.preview FROM conversations c WHERE c.tenant = ",
                );
                query.push_bind(tenant).push(" AND c.deleted_at IS NULL AND c.updated_at >= ");
                query.push_bind(self.retention.cutoffs().conversations);
                Self::push_filters(&mut query, list, Self::CONVERSATION_METADATA, "c.preview");
                Self::push_page(&mut query, list, "c.id");
                let rows: Vec<(String, i64, String, Option<String>)> =
                    query.build_query_as().fetch_all(&self.pool).await?;
                let (rows, has_more) = lists::page_of(rows, list.limit);
                let entries = rows.into_iter().map(lists::conversation_entry).collect::<Result<_, _>>()?;
                Ok((entries, has_more))
            }

            async fn responses_page(
                &self,
                tenant: &str,
                list: &$crate::store::ListQuery,
            ) -> $crate::store::StoreResult<(Vec<$crate::store::ResponseNode>, bool)> {
                use $crate::store::lists;
                let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM responses r WHERE r.tenant = ",
                    lists::NODE_COLUMNS
                ));
                query.push_bind(tenant).push(" AND r.deleted_at IS NULL");
                Self::push_alive(&mut query, self.retention.cutoffs().responses);
                if let Some(parent) = &list.parent {
                    query.push(" AND r.previous_response_id = ").push_bind(parent);
                }
                if list.roots {
                    query.push(lists::ROOT);
                }
                Self::push_filters(&mut query, list, Self::RESPONSE_METADATA, "r.preview");
                Self::push_page(&mut query, list, "r.id");
                let rows: Vec<lists::NodeRow> = query.build_query_as().fetch_all(&self.pool).await?;
                let (rows, has_more) = lists::page_of(rows, list.limit);
                Ok((self.nodes(tenant, rows).await?, has_more))
            }

            /// The nodes of response rows, their output previews read in one query.
            async fn nodes(
                &self,
                tenant: &str,
                rows: Vec<$crate::store::lists::NodeRow>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ResponseNode>> {
                use $crate::store::lists;
                let mut outputs: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                if !rows.is_empty() {
                    let [select, ids] = lists::SELECT_OUTPUTS;
                    let mut query = sqlx::QueryBuilder::<$db>::new(select);
                    query.push_bind(tenant).push(ids);
                    let mut ids = query.separated(", ");
                    for row in &rows {
                        ids.push_bind(row.0.clone());
                    }
                    ids.push_unseparated(") ORDER BY response_id, position");
                    let items: Vec<(String, String)> = query.build_query_as().fetch_all(&self.pool).await?;
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

            async fn tree_of(
                &self,
                tenant: &str,
                id: &str,
                depth: u32,
                limit: u32,
            ) -> $crate::store::StoreResult<Option<$crate::store::Tree>> {
                use $crate::store::lists;
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
                let mut query = sqlx::QueryBuilder::<$db>::new(with);
                query.push_bind(tenant).push(and_id).push_bind(id).push(union).push_bind(tenant).push(below);
                query.push_bind(i64::from(depth) + 1).push(select);
                query.push(lists::NODE_COLUMNS).push(lists::SUBTREE_FROM);
                Self::push_alive(&mut query, cutoffs.responses);
                query.push(" ORDER BY t.depth, r.created_at, r.id LIMIT ").push_bind(i64::from(limit) + 1);
                let query = query.build_query_as::<(
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
                Ok(Some($crate::store::Tree { path: path.into_iter().map(|(id,)| id).collect(), nodes, has_more }))
            }
        }
    };
}

pub(crate) use sql_lists;
