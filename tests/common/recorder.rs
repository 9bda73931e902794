//! A store wrapper for tests: it reports each saved turn (so a test can wait for a write without sleeping) and
//! counts the reads that resolve a turn's context and the writes asked for — test-only instruments kept out of the product's `Store`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use threadline::clock::Clock;
use threadline::model::{Conversation, Item, Metadata, Pieces, Response};
use threadline::store::{
    Chain, ClaimedRun, ConversationEntry, ItemList, ListQuery, NewTurn, Page, PageRequest, Purge, PurgeReport,
    ResponseNode, RunStop, Store, StoreResult, StoreStats, Tree,
};
use tokio::sync::mpsc;

/// A store that reports writes and counts reads.
pub struct Recorder {
    inner: Arc<dyn Store>,
    reads: AtomicU64,
    writes: AtomicU64,
    saved: mpsc::UnboundedSender<String>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let (saved, receiver) = mpsc::unbounded_channel();
        Self { inner, reads: AtomicU64::new(0), writes: AtomicU64::new(0), saved, receiver: Mutex::new(Some(receiver)) }
    }

    /// How many reads (chain histories, responses, conversations' items) this store has served.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// How many writes (turns, deletions, conversations and their items) this store has been asked for.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Waits (at most 10 s, then fails) until the next turn is stored, and returns its id.
    pub async fn next_saved(&self) -> String {
        let mut receiver = self.receiver.lock().unwrap().take().expect("one waiter at a time");
        let id = tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await.expect("no turn was stored");
        *self.receiver.lock().unwrap() = Some(receiver);
        id.unwrap()
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for Recorder {
    async fn save_turn(&self, tenant: &str, turn: NewTurn<'_>) -> StoreResult<()> {
        self.write();
        self.inner.save_turn(tenant, turn).await?;
        let _ = self.saved.send(turn.response.id.clone());
        Ok(())
    }
    async fn enqueue(&self, tenant: &str, queued: NewTurn<'_>, job: &str) -> StoreResult<()> {
        self.write();
        self.inner.enqueue(tenant, queued, job).await
    }
    async fn claim(&self, worker: &str, lease_until: i64) -> StoreResult<Option<ClaimedRun>> {
        self.inner.claim(worker, lease_until).await
    }
    async fn renew(&self, id: &str, worker: &str, lease_until: i64, progress: Option<&str>) -> StoreResult<bool> {
        self.inner.renew(id, worker, lease_until, progress).await
    }
    /// A background turn's end counts as its turn saved.
    async fn finish_run(&self, tenant: &str, turn: NewTurn<'_>, worker: &str) -> StoreResult<bool> {
        self.write();
        let finished = self.inner.finish_run(tenant, turn, worker).await?;
        if finished {
            let _ = self.saved.send(turn.response.id.clone());
        }
        Ok(finished)
    }
    async fn stop_run(&self, tenant: &str, id: &str, stop: &RunStop) -> StoreResult<bool> {
        self.write();
        self.inner.stop_run(tenant, id, stop).await
    }
    async fn waiting_runs(&self) -> StoreResult<u64> {
        self.inner.waiting_runs().await
    }
    async fn lapsed_runs(&self, now: i64, limit: u32) -> StoreResult<Vec<(String, String)>> {
        self.inner.lapsed_runs(now, limit).await
    }
    async fn response(&self, tenant: &str, id: &str) -> StoreResult<Option<(Response, Pieces)>> {
        self.read();
        self.inner.response(tenant, id).await
    }
    async fn history(&self, tenant: &str, id: &str, max_depth: u32) -> StoreResult<Option<Chain>> {
        self.read();
        self.inner.history(tenant, id, max_depth).await
    }
    async fn items_page(&self, tenant: &str, list: ItemList<'_>, page: &PageRequest) -> StoreResult<Option<Page>> {
        self.read();
        self.inner.items_page(tenant, list, page).await
    }
    async fn stored_items(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Item>> {
        self.read();
        self.inner.stored_items(tenant, ids).await
    }
    async fn delete_response(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        self.write();
        self.inner.delete_response(tenant, id).await
    }
    async fn create_conversation(
        &self,
        tenant: &str,
        conversation: &Conversation,
        items: &[Item],
        tokens: &[u32],
    ) -> StoreResult<()> {
        self.write();
        self.inner.create_conversation(tenant, conversation, items, tokens).await
    }
    async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>> {
        self.read();
        self.inner.conversation(tenant, id).await
    }
    async fn update_conversation(
        &self,
        tenant: &str,
        id: &str,
        metadata: &Metadata,
    ) -> StoreResult<Option<Conversation>> {
        self.write();
        self.inner.update_conversation(tenant, id, metadata).await
    }
    async fn delete_conversation(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        self.write();
        self.inner.delete_conversation(tenant, id).await
    }
    async fn add_conversation_items(
        &self,
        tenant: &str,
        id: &str,
        items: &[Item],
        tokens: &[u32],
    ) -> StoreResult<bool> {
        self.write();
        self.inner.add_conversation_items(tenant, id, items, tokens).await
    }
    async fn conversation_items(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<(Item, Option<u32>)>>> {
        self.read();
        self.inner.conversation_items(tenant, id).await
    }
    async fn conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<Option<Option<Item>>> {
        self.read();
        self.inner.conversation_item(tenant, id, item_id).await
    }
    async fn delete_conversation_item(&self, tenant: &str, id: &str, item_id: &str) -> StoreResult<bool> {
        self.write();
        self.inner.delete_conversation_item(tenant, id, item_id).await
    }
    async fn list_conversations(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ConversationEntry>, bool)> {
        self.inner.list_conversations(tenant, list).await
    }
    async fn list_responses(&self, tenant: &str, list: &ListQuery) -> StoreResult<(Vec<ResponseNode>, bool)> {
        self.inner.list_responses(tenant, list).await
    }
    async fn response_tree(&self, tenant: &str, id: &str, depth: u32, limit: u32) -> StoreResult<Option<Tree>> {
        self.inner.response_tree(tenant, id, depth, limit).await
    }
    async fn setting(&self, name: &str, default: &str) -> StoreResult<String> {
        self.inner.setting(name, default).await
    }
    async fn purge(&self, scope: Purge<'_>) -> StoreResult<PurgeReport> {
        self.write();
        self.inner.purge(scope).await
    }
    fn clock(&self) -> &Clock {
        self.inner.clock()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}
