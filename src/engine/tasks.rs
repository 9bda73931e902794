//! The turns in flight: every turn runs in a task tracked here (inside the tracing span of the request that started
//! it), so that it finishes and is stored even when its client hangs up, and a shutdown can wait for it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The tracked turn tasks and the response id of each one still running.
#[derive(Default)]
pub struct TurnTasks {
    tracker: TaskTracker,
    running: Arc<Mutex<BTreeMap<u64, String>>>,
    next: AtomicU64,
}

impl TurnTasks {
    /// Runs the turn of response `id` in a tracked task, in the current tracing span.
    pub fn spawn<F>(&self, id: &str, turn: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.running).insert(key, id.to_string());
        let done = Done { key, running: self.running.clone() };
        self.tracker.spawn(
            async move {
                let _done = done;
                turn.await
            }
            .instrument(tracing::Span::current()),
        )
    }

    /// The response ids of the turns still running, oldest first.
    pub fn running(&self) -> Vec<String> {
        lock(&self.running).values().cloned().collect()
    }

    /// Waits until every turn (including any started meanwhile) has finished, for at most `timeout`; returns the
    /// ids of those still running when it ran out.
    pub async fn drain(&self, timeout: Duration) -> Vec<String> {
        self.tracker.close();
        match tokio::time::timeout(timeout, self.tracker.wait()).await {
            Ok(()) => Vec::new(),
            Err(_) => self.running(),
        }
    }
}

/// Removes a turn from the running list when its task ends, however it ends.
struct Done {
    key: u64,
    running: Arc<Mutex<BTreeMap<u64, String>>>,
}

impl Drop for Done {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
