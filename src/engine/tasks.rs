//! The turns in flight and the server's other tasks: every turn runs in a task tracked here (inside the tracing span
//! of the request that started it), so that it finishes and is stored even when its client hangs up, and a shutdown
//! can wait for it; so do the background workers, the purge and the serving of connections, which end once the
//! shutdown has signalled them to stop.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The tracked turn tasks and the response id of each one still running (ids sort by creation time).
#[derive(Default)]
pub struct TurnTasks {
    tracker: TaskTracker,
    running: Arc<Mutex<BTreeSet<String>>>,
}

impl TurnTasks {
    /// Runs the turn of response `id` in a tracked task, in the current tracing span.
    pub fn spawn<F>(&self, id: &str, turn: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        lock(&self.running).insert(id.to_string());
        let done = Done { id: id.to_string(), running: self.running.clone() };
        self.tracker.spawn(
            async move {
                let _done = done;
                turn.await
            }
            .instrument(tracing::Span::current()),
        )
    }

    /// Runs a task that starts a turn and passes its events on (a WebSocket's) in a tracked task, in the current
    /// tracing span: a shutdown waits for it as for a turn, whose response id it does not know yet.
    pub fn spawn_starter<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task.instrument(tracing::Span::current()))
    }

    /// Runs a task that is not a turn (a background worker, the purge, the server) in a tracked task: a shutdown
    /// waits for it, after signalling it to stop.
    pub fn spawn_task<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// A token that a shutdown waits for, as for a turn, until it is dropped (an open WebSocket holds one until it has
    /// sent its last events and closed).
    pub fn hold(&self) -> tokio_util::task::task_tracker::TaskTrackerToken {
        self.tracker.token()
    }

    /// The response ids of the turns still running, oldest first.
    pub fn running(&self) -> Vec<String> {
        lock(&self.running).iter().cloned().collect()
    }

    /// Waits until every tracked task (including any started meanwhile) has finished, for at most `timeout`;
    /// returns the ids of the turns still running when it ran out.
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
    id: String,
    running: Arc<Mutex<BTreeSet<String>>>,
}

impl Drop for Done {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
