//! Background responses (`background: true`): accepted at once as queued and stored with the turn to run; a bounded
//! pool of workers on every server claims them from the store, runs each as a streamed turn — renewing its lease and
//! saving its progress as it goes — and stores its end. Polls, streams and cancels reach a response through the
//! store, whichever server runs it; a server that dies leaves its runs' leases to lapse, and another marks them
//! failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::builder::{starting, TurnBuilder};
use super::events::{self, TurnEvent};
use super::{Engine, EngineError, EngineResult, TurnRequest};
use crate::config::{BackgroundConfig, Secret};
use crate::model::{new_id, Pieces, Progress, Response, ResponseError, ResponseStatus};
use crate::store::{ClaimedRun, NewTurn, RunStop};

/// The error of a background response whose server stopped while running it.
pub const INTERRUPTED: &str = "interrupted: the server running it stopped";

/// Lapsed runs are looked for this many poll intervals apart.
const LAPSE_CHECKS_EVERY: u32 = 4;

/// This server's share of the background work.
pub struct Background {
    config: BackgroundConfig,
    /// This server's name among the workers of every server.
    worker: String,
    /// Wakes an idle worker to look for queued responses: one queued here, one claimed (there may be more), or the
    /// poll interval past.
    queued: Notify,
    /// Stops the workers from claiming more (the runs in progress finish, drained with the other turns).
    stop: CancellationToken,
    /// The runs of this server.
    running: Mutex<HashMap<String, RunHandle>>,
}

impl Background {
    pub fn new(config: BackgroundConfig) -> Self {
        Self {
            config,
            worker: new_id("worker"),
            queued: Notify::new(),
            stop: CancellationToken::new(),
            running: Mutex::default(),
        }
    }

    /// Stops claiming queued responses (at shutdown).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The end of a lease taken or renewed at `now` (ms since the epoch).
    fn lease_from(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX))
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunHandle>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A queued turn as stored: the request, when its response was created, and the client's own upstream key sealed to
/// its tenant (`passthrough`), which the request itself never carries into the database.
#[derive(Serialize, Deserialize)]
struct Job {
    request: TurnRequest,
    created_at: i64,
    upstream_key: Option<String>,
}

impl Engine {
    /// Accepts a background turn: checks what can fail at once (the model, the history it continues), stores it as
    /// queued and returns the queued response; a worker runs it.
    pub async fn enqueue(&self, mut request: TurnRequest) -> EngineResult<Response> {
        self.admit_turn_input(&mut request).await?;
        self.upstreams.route(&request.model)?;
        let tenant = request.tenant.clone();
        self.history(&tenant, request.previous_response_id.as_deref(), request.conversation.as_deref()).await?;
        let response = starting(new_id("resp"), &request, self.store.clock()).queued();
        let upstream_key = request.upstream_key.take().map(|Secret(key)| self.sealer.seal(&tenant, &key));
        let job = Job { request, created_at: response.created_at, upstream_key };
        let json = serde_json::to_string(&job).map_err(|err| EngineError::Context(err.to_string()))?;
        let queued = NewTurn {
            response: &response,
            input: &job.request.input,
            tokens: &[],
            pieces: &Pieces::new(),
            store_response: true,
            conversation: None,
        };
        self.store.enqueue(&tenant, queued, &json).await?;
        self.background.queued.notify_one();
        Ok(response)
    }

    /// Cancels a background response: still queued or running, it ends `cancelled` with the output it has so far
    /// (its upstream call stopped, on whichever server runs it); ended already, it is returned unchanged.
    pub async fn cancel(&self, tenant: &str, id: &str) -> EngineResult<Response> {
        let response = self.response(tenant, id).await?;
        if !response.background {
            return Err(EngineError::NotBackground(id.into()));
        }
        if response.is_finished() {
            return Ok(response);
        }
        let stop = RunStop { status: ResponseStatus::Cancelled, error: None, lapsed_before: i64::MAX };
        self.store.stop_run(tenant, id, &stop).await?;
        if let Some(run) = self.background.running().get(id) {
            run.stop.cancel();
        }
        self.response(tenant, id).await
    }

    /// The events of a stored response from its start: all at once for one that has ended, and as they come for a
    /// background response still queued or running (read from the store every poll interval, wherever it runs).
    pub async fn follow(self: &Arc<Self>, tenant: &str, id: &str) -> EngineResult<BoxStream<'static, TurnEvent>> {
        let first = self.stored_response(tenant, id).await?;
        let follower = Follower { engine: self.clone(), tenant: tenant.into(), id: id.into(), sent: 0, done: false };
        let events = stream::unfold((follower, Some(first)), |(mut follower, snapshot)| async move {
            let events = follower.next(snapshot).await?;
            Some((stream::iter(events), (follower, None)))
        });
        Ok(events.flatten().boxed())
    }

    /// Starts this server's workers, and its clock: it wakes one idle worker every poll interval (for responses
    /// queued on other servers), and looks for runs whose server stopped.
    pub fn start_background(self: &Arc<Self>) {
        for _ in 0..self.background.config.workers {
            self.tasks.spawn_task(self.clone().work());
        }
        self.tasks.spawn_task(self.clone().tick());
    }

    /// One worker: claims queued responses one at a time and runs each, until the server stops.
    async fn work(self: Arc<Self>) {
        let background = &self.background;
        while !background.stop.is_cancelled() {
            match self.store.claim(&background.worker, background.lease_from(self.now_ms())).await {
                Ok(Some(run)) => {
                    background.queued.notify_one();
                    let engine = self.clone();
                    let id = run.id.clone();
                    // Tracked with the other turns, so that a shutdown waits for it.
                    let _ = self.tasks.spawn(&id, async move { engine.run(run).await }).await;
                }
                Ok(None) => self.idle().await,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim a background response");
                    self.idle().await;
                }
            }
        }
    }

    /// Waits until this worker is woken, or the stop.
    async fn idle(&self) {
        let background = &self.background;
        tokio::select! {
            () = background.queued.notified() => {}
            () = background.stop.cancelled() => {}
        }
    }

    /// Every poll interval wakes one idle worker, and every few marks failed the runs whose lease lapsed.
    async fn tick(self: Arc<Self>) {
        let background = &self.background;
        let mut ticks = tokio::time::interval(background.config.poll_interval);
        for tick in 0u32.. {
            tokio::select! {
                _ = ticks.tick() => {}
                () = background.stop.cancelled() => return,
            }
            background.queued.notify_one();
            if tick % LAPSE_CHECKS_EVERY == 0 {
                self.end_lapsed_runs().await;
            }
        }
    }

    /// Marks failed the runs whose lease lapsed: their server stopped without ending them.
    async fn end_lapsed_runs(&self) {
        let now = self.now_ms();
        let lapsed = match self.store.lapsed_runs(now, 100).await {
            Ok(lapsed) => lapsed,
            Err(err) => return tracing::warn!(error = %err, "cannot look for interrupted background responses"),
        };
        for (tenant, id) in lapsed {
            let error = ResponseError { code: "server_error".into(), message: INTERRUPTED.into() };
            let stop = RunStop { status: ResponseStatus::Failed, error: Some(error), lapsed_before: now };
            match self.store.stop_run(&tenant, &id, &stop).await {
                Ok(true) => tracing::warn!(response = %id, "a background response's server stopped; it failed"),
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, response = %id, "cannot end an interrupted response"),
            }
        }
    }

    /// Runs a claimed background response to its end while `keep_alive` renews its claim; stops at once (dropping
    /// its upstream call) when it is cancelled here, or after the next renewal when the run is no longer this
    /// server's.
    async fn run(self: Arc<Self>, run: ClaimedRun) {
        let handle = RunHandle::default();
        let (stopped, renewing) = (handle.stop.clone(), handle.renewing.clone());
        self.background.running().insert(run.id.clone(), handle);
        let _running = Running { engine: &self, id: &run.id };
        let _renewing = renewing.clone().drop_guard();
        let progress = Arc::new(Mutex::new(Unsaved::default()));
        self.tasks.spawn_task(self.clone().keep_alive(run.id.clone(), progress.clone(), stopped.clone(), renewing));
        let (sender, mut events) = mpsc::unbounded_channel();
        let turn = self.run_turn(&run, sender);
        tokio::pin!(turn);
        let failure = loop {
            tokio::select! {
                biased;
                () = stopped.cancelled() => return,
                result = &mut turn => break result.err(),
                Some(event) = events.recv() => progress.lock().unwrap_or_else(PoisonError::into_inner).apply(&event),
            }
        };
        if let Some(err) = failure {
            tracing::warn!(error = %err, response = %run.id, "a background response failed before it started");
            self.end_failed(&run.tenant, &run.id, failure_of(&err)).await;
        }
    }

    /// Renews the claim on run `id` every poll interval, with its progress when it has changed, until `done` (the
    /// run ends, or starts storing its end); stops the run (`stopped`) when it is no longer this server's: cancelled,
    /// deleted, or taken over as interrupted.
    async fn keep_alive(
        self: Arc<Self>,
        id: String,
        progress: Arc<Mutex<Unsaved>>,
        stopped: CancellationToken,
        done: CancellationToken,
    ) {
        let background = &self.background;
        let mut renewals = tokio::time::interval(background.config.poll_interval);
        renewals.tick().await;
        loop {
            tokio::select! {
                _ = renewals.tick() => {}
                () = done.cancelled() => return,
            }
            let json = progress.lock().unwrap_or_else(PoisonError::into_inner).take();
            match self.store.renew(&id, &background.worker, background.lease_from(self.now_ms()), json.as_deref()).await
            {
                Ok(true) => {}
                // Once the run stores its end, its claim is gone on purpose.
                Ok(false) if done.is_cancelled() => return,
                Ok(false) => return stopped.cancel(),
                Err(err) => {
                    tracing::warn!(error = %err, response = %id, "cannot renew a background run");
                    progress.lock().unwrap_or_else(PoisonError::into_inner).changed = true;
                }
            }
        }
    }

    /// The claimed turn, streamed from its upstream into `events` and stored by `save` at its end; an error when it
    /// fails before the upstream starts answering.
    async fn run_turn(&self, run: &ClaimedRun, events: mpsc::UnboundedSender<TurnEvent>) -> EngineResult<()> {
        let job: Job = serde_json::from_str(&run.job).map_err(|err| EngineError::Context(err.to_string()))?;
        let mut request = job.request;
        request.upstream_key = job.upstream_key.and_then(|key| self.sealer.open(&run.tenant, &key)).map(Secret);
        let (prepared, deltas) = self.start(&request, |upstream, chat| upstream.complete_stream(chat)).await?;
        let clock = self.store.clock();
        let response = Response { created_at: job.created_at, ..starting(run.id.clone(), &request, clock) };
        let builder = TurnBuilder::new(response, &request, &prepared, clock);
        self.drive(request, prepared, builder, deltas, events).await;
        Ok(())
    }

    /// Ends a background response as failed with `error`, with what output it has.
    pub(super) async fn end_failed(&self, tenant: &str, id: &str, error: ResponseError) {
        let stop = RunStop { status: ResponseStatus::Failed, error: Some(error), lapsed_before: i64::MAX };
        if let Err(err) = self.store.stop_run(tenant, id, &stop).await {
            tracing::error!(error = %err, response = %id, "cannot store a failed background response");
        }
    }

    /// Now by the store's clock, in ms since the epoch (leases are compared across servers in wall-clock time).
    fn now_ms(&self) -> i64 {
        self.store.clock().now().timestamp_millis()
    }

    /// Stops renewing the claim on background response `id` as its worker stores its end, and returns the worker
    /// to store it for.
    pub(super) fn storing_run(&self, id: &str) -> &str {
        if let Some(run) = self.background.running().get(id) {
            run.renewing.cancel();
        }
        &self.background.worker
    }
}

/// The error stored on a background response that failed before its upstream answered.
fn failure_of(err: &EngineError) -> ResponseError {
    let code = match err {
        EngineError::ContextLengthExceeded(_) => "context_length_exceeded",
        _ => "server_error",
    };
    ResponseError { code: code.into(), message: err.to_string() }
}

/// A run of this server: the token that stops it, and the one that ends the renewal of its claim.
#[derive(Default)]
struct RunHandle {
    stop: CancellationToken,
    renewing: CancellationToken,
}

/// A run's progress, and whether it changed since it was last saved.
#[derive(Default)]
struct Unsaved {
    progress: Progress,
    changed: bool,
}

impl Unsaved {
    fn apply(&mut self, event: &TurnEvent) {
        self.progress.apply(event);
        self.changed = true;
    }

    /// The progress as JSON, when it changed since the last time.
    fn take(&mut self) -> Option<String> {
        std::mem::take(&mut self.changed).then(|| serde_json::to_string(&self.progress).unwrap_or_default())
    }
}

/// Takes a run off this server's list when it ends, however it ends.
struct Running<'a> {
    engine: &'a Engine,
    id: &'a str,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.engine.background.running().remove(self.id);
    }
}

/// A stream of a stored response's events: each read of it replays as far as it has got, and the events past those
/// sent already go out.
struct Follower {
    engine: Arc<Engine>,
    tenant: String,
    id: String,
    sent: usize,
    done: bool,
}

impl Follower {
    /// The next new events, from `snapshot` or (after a poll interval) a fresh read; `None` once the response has
    /// ended (or is gone).
    async fn next(&mut self, mut snapshot: Option<(Response, Pieces)>) -> Option<Vec<TurnEvent>> {
        while !self.done {
            let (response, pieces) = match snapshot.take() {
                Some(snapshot) => snapshot,
                None => {
                    tokio::time::sleep(self.poll_interval()).await;
                    match self.engine.store.response(&self.tenant, &self.id).await {
                        Ok(Some(read)) => read,
                        Ok(None) => return None,
                        Err(err) => {
                            tracing::warn!(error = %err, response = %self.id, "a response stream lost its store");
                            return None;
                        }
                    }
                }
            };
            self.done = response.is_finished();
            let mut new: Vec<TurnEvent> = events::replay(&response, &pieces).into_iter().skip(self.sent).collect();
            // A cancel keeps the output saved last, which may be less than was streamed here: the end still comes.
            if self.done && !matches!(new.last(), Some(TurnEvent::Finished(_))) {
                new.push(TurnEvent::Finished(response));
            }
            self.sent += new.len();
            if !new.is_empty() {
                return Some(new);
            }
        }
        None
    }

    fn poll_interval(&self) -> Duration {
        self.engine.background.config.poll_interval
    }
}
