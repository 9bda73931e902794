//! What the engine answers besides turns: the stored lists and trees the console browses, readiness, the gauges a
//! metrics scrape reads, and the models every upstream serves.

use super::{Engine, EngineError, EngineResult};
use crate::store::{ConversationEntry, ListQuery, ResponseNode, Tree};
use crate::telemetry;
use crate::upstream::ModelInfo;

impl Engine {
    /// A page of the tenant's conversations as `list` filters them, and whether more follow.
    pub async fn list_conversations(
        &self,
        tenant: &str,
        list: &ListQuery,
    ) -> EngineResult<(Vec<ConversationEntry>, bool)> {
        Ok(self.store.list_conversations(tenant, list).await?)
    }

    /// A page of the tenant's stored responses as `list` filters them, and whether more follow.
    pub async fn list_responses(&self, tenant: &str, list: &ListQuery) -> EngineResult<(Vec<ResponseNode>, bool)> {
        Ok(self.store.list_responses(tenant, list).await?)
    }

    /// Response `id` and the responses that continue it, at most `depth` levels below it and `limit` nodes.
    pub async fn response_tree(&self, tenant: &str, id: &str, depth: u32, limit: u32) -> EngineResult<Tree> {
        let tree = self.store.response_tree(tenant, id, depth, limit).await?;
        tree.ok_or_else(|| EngineError::ResponseNotFound(id.into()))
    }

    /// Whether this server can serve: its database answers.
    pub async fn ready(&self) -> EngineResult<()> {
        Ok(self.store.ping().await?)
    }

    /// Sets the gauges a metrics scrape reads as of now: the background queue (shared by every replica), the
    /// history cache and the database pool.
    pub async fn read_gauges(&self) {
        match self.store.waiting_runs().await {
            Ok(waiting) => telemetry::background_queue(waiting),
            Err(err) => tracing::warn!(error = %err, "cannot count the background responses waiting"),
        }
        let stats = self.store.stats();
        telemetry::cache_bytes(stats.cache_bytes as u64);
        telemetry::db_pool(stats.connections, stats.idle_connections);
    }

    /// Every model a request could be routed to, each once.
    pub async fn models(&self) -> Vec<ModelInfo> {
        self.upstreams.models().await
    }
}
