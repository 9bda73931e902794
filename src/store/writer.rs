//! Group commit: one writer task per store takes every finished turn, writes all those waiting in one transaction
//! and answers each when it is committed. Turns arriving while a transaction runs wait for the next one, so under
//! load many turns share one commit (one lock, one WAL append, one fsync) instead of each waiting its own; SQLite,
//! which allows one writer at a time, never makes a writer sleep in its busy handler.
//!
//! The task is tracked: `close` stops it taking turns, lets it commit every turn already queued, and waits for it.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::sql::TurnRows;
use super::{StoreError, StoreResult};

/// Most turns in one transaction.
const MAX_BATCH: usize = 256;

/// Writes a batch of turns and returns each turn's result, in order.
pub type WriteBatch<T = TurnRows> = Box<dyn for<'a> Fn(&'a [T]) -> BoxFuture<'a, Vec<StoreResult<()>>> + Send + Sync>;

struct Job<T> {
    turn: T,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle of a store's writer task; the task ends when the handle is dropped or closed, once every turn queued
/// is written.
pub struct Writer<T = TurnRows> {
    jobs: mpsc::UnboundedSender<Job<T>>,
    stop: CancellationToken,
    task: TaskTracker,
}

impl<T: Send + 'static> Writer<T> {
    /// Starts the writer task, which writes each batch with `write`.
    pub fn spawn(write: WriteBatch<T>) -> Self {
        let (jobs, waiting) = mpsc::unbounded_channel::<Job<T>>();
        let (stop, task) = (CancellationToken::new(), TaskTracker::new());
        task.spawn(write_until_stopped(write, waiting, stop.clone()));
        task.close();
        Self { jobs, stop, task }
    }

    /// Stores one turn; returns once it is committed (`Unavailable` once the writer is closed).
    pub async fn write(&self, turn: T) -> StoreResult<()> {
        let (done, committed) = oneshot::channel();
        self.jobs.send(Job { turn, done }).map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        committed.await.map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }

    /// Stops taking turns, and waits until every turn queued so far is committed and the task has ended.
    pub async fn close(&self) {
        self.stop.cancel();
        self.task.wait().await;
    }
}

/// Writes the queued turns a batch at a time until every handle is gone or `stop` (then the turns already queued
/// are still written).
async fn write_until_stopped<T>(
    write: WriteBatch<T>,
    mut waiting: mpsc::UnboundedReceiver<Job<T>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    let mut taking = true;
    loop {
        let received = tokio::select! {
            biased;
            () = stop.cancelled(), if taking => {
                waiting.close();
                taking = false;
                continue;
            }
            received = waiting.recv_many(&mut batch, MAX_BATCH) => received,
        };
        if received == 0 {
            return;
        }
        let (turns, done): (Vec<_>, Vec<_>) = batch.drain(..).map(|job| (job.turn, job.done)).unzip();
        for (done, result) in done.into_iter().zip(write(&turns).await) {
            // The turn's task may have been dropped (its runtime stopping); its turn is stored regardless.
            let _ = done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn closing_commits_every_queued_turn_then_ends_the_task() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let kept = written.clone();
        let writer = Writer::spawn(Box::new(move |turns: &[u32]| {
            let kept = kept.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                kept.lock().unwrap().extend_from_slice(turns);
                turns.iter().map(|_| Ok(())).collect()
            })
        }));
        // Every write is queued before the writer is closed, and more than one batch waits.
        let (results, ()) =
            tokio::join!(futures::future::join_all((0..600).map(|turn| writer.write(turn))), writer.close());
        assert!(results.iter().all(Result::is_ok), "every queued turn is committed: {results:?}");
        assert_eq!(*written.lock().unwrap(), (0..600).collect::<Vec<_>>());
        assert!(writer.task.is_empty(), "no task is left running");
        assert!(matches!(writer.write(1).await, Err(StoreError::Unavailable(_))), "a closed writer takes no turn");
    }
}
