//! Group commit: one writer task per store takes every finished turn, writes all those waiting in one transaction
//! and answers each when it is committed. Turns arriving while a transaction runs wait for the next one, so under
//! load many turns share one commit (one lock, one WAL append, one fsync) instead of each waiting its own; SQLite,
//! which allows one writer at a time, never makes a writer sleep in its busy handler.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::sql::TurnRows;
use super::{StoreError, StoreResult};

/// Most turns in one transaction.
const MAX_BATCH: usize = 256;

/// Writes a batch of turns and returns each turn's result, in order.
pub type WriteBatch = Box<dyn for<'a> Fn(&'a [TurnRows]) -> BoxFuture<'a, Vec<StoreResult<()>>> + Send + Sync>;

struct Job {
    turn: TurnRows,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle of a store's writer task; the task ends when the handle is dropped.
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task, which writes each batch with `write`.
    pub fn spawn(write: WriteBatch) -> Self {
        let (jobs, mut waiting) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (turns, done): (Vec<_>, Vec<_>) = batch.drain(..).map(|job| (job.turn, job.done)).unzip();
                for (done, result) in done.into_iter().zip(write(&turns).await) {
                    // The turn's task may have been dropped (its runtime stopping); its turn is stored regardless.
                    let _ = done.send(result);
                }
            }
        });
        Self { jobs }
    }

    /// Stores one turn; returns once it is committed.
    pub async fn write(&self, turn: TurnRows) -> StoreResult<()> {
        let (done, committed) = oneshot::channel();
        self.jobs.send(Job { turn, done }).map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        committed.await.map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }
}
