//! Metrics: the process-wide Prometheus recorder that `GET /metrics` renders, every series threadline exports (each
//! described, and registered at 0 where its labels are known up front, so a scrape shows it before it moves), and
//! the one-line helpers the rest of the code records through.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::Usage;
use crate::store::PurgeReport;

const HTTP_REQUESTS: &str = "threadline_http_requests_total";
const HTTP_DURATION: &str = "threadline_http_request_duration_seconds";
const UPSTREAM_REQUESTS: &str = "threadline_upstream_requests_total";
const UPSTREAM_DURATION: &str = "threadline_upstream_request_duration_seconds";
const TOKENS: &str = "threadline_tokens_total";
const ACTIVE_STREAMS: &str = "threadline_active_streams";
const ACTIVE_WEBSOCKETS: &str = "threadline_active_websockets";
const BACKGROUND_QUEUE: &str = "threadline_background_queue_depth";
const HISTORY_DEPTH: &str = "threadline_history_depth";
const HISTORY_DURATION: &str = "threadline_history_resolve_duration_seconds";
const HISTORY_CACHE_REQUESTS: &str = "threadline_history_cache_requests_total";
const HISTORY_CACHE_BYTES: &str = "threadline_history_cache_bytes";
const DB_POOL: &str = "threadline_db_pool_connections";
const CONTEXTS: &str = "threadline_turn_contexts_total";
const REJECTED: &str = "threadline_rejected_requests_total";
const PURGED: &str = "threadline_purged_total";

/// Histogram buckets (upper bounds) of each histogram.
const BUCKETS: [(&str, &[f64]); 4] = [
    (
        HTTP_DURATION,
        &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
    ),
    (UPSTREAM_DURATION, &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0]),
    (HISTORY_DEPTH, &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]),
    (HISTORY_DURATION, &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on first use (every app of the process then renders the same metrics).
pub fn init() {
    handle();
}

/// Every series in the Prometheus text format.
pub fn render() -> String {
    handle().render()
}

fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(install)
}

fn install() -> PrometheusHandle {
    let recorder = builder()
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "metrics: using default histogram buckets");
            PrometheusBuilder::new()
        })
        .build_recorder();
    let handle = recorder.handle();
    if let Err(err) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %err, "metrics: another recorder is installed; /metrics will show nothing");
    }
    let upkeep = handle.clone();
    let started = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_INTERVAL);
        upkeep.run_upkeep();
    });
    if let Err(err) = started {
        tracing::warn!(error = %err, "metrics: no upkeep thread; histograms are folded at each scrape only");
    }
    describe();
    handle
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    BUCKETS.iter().try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
    })
}

/// Gives every series its help text, and registers at 0 those whose labels are known now.
fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status.");
    describe_histogram!(HTTP_DURATION, "Time from a request's arrival to its response headers, by route and method.");
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Upstream requests by outcome: ok (2xx headers), status_4xx, status_5xx, timeout, unreachable; a 2xx answer \
         whose body then fails counts again as bad_answer, timeout or unreachable."
    );
    describe_histogram!(UPSTREAM_DURATION, "Time from sending an upstream request to its response headers.");
    describe_counter!(TOKENS, "Tokens of finished turns, as reported by the upstream (or counted), by direction.");
    describe_counter!(
        CONTEXTS,
        "Turn contexts by how they fit the model's window: whole, truncated (turns dropped), compacted (summarized in \
         the turn), too_long (refused with context_length_exceeded)."
    );
    describe_counter!(
        REJECTED,
        "Requests refused with 429 by a per-tenant limit, by reason: rate (requests per minute) or concurrency \
         (requests in progress)."
    );
    describe_counter!(
        PURGED,
        "Expired rows erased by the periodic purge, by kind: responses or conversations (their items not counted)."
    );
    describe_gauge!(ACTIVE_STREAMS, "Server-Sent Event responses being streamed to clients.");
    describe_gauge!(ACTIVE_WEBSOCKETS, "WebSocket connections open.");
    describe_gauge!(BACKGROUND_QUEUE, "Background responses waiting to run.");
    describe_histogram!(HISTORY_DEPTH, "Turns in a resolved chain.");
    describe_histogram!(HISTORY_DURATION, "Time to resolve a turn's history.");
    describe_counter!(HISTORY_CACHE_REQUESTS, "History cache lookups by result: hit or miss.");
    describe_gauge!(HISTORY_CACHE_BYTES, "Memory held by the history cache.");
    describe_gauge!(DB_POOL, "Database pool connections by state: idle or in_use.");
    for direction in ["input", "output"] {
        counter!(TOKENS, "direction" => direction).increment(0);
    }
    for result in ["hit", "miss"] {
        counter!(HISTORY_CACHE_REQUESTS, "result" => result).increment(0);
    }
    for fit in ["whole", "truncated", "compacted", "too_long"] {
        counter!(CONTEXTS, "fit" => fit).increment(0);
    }
    for reason in ["rate", "concurrency"] {
        counter!(REJECTED, "reason" => reason).increment(0);
    }
    for kind in ["responses", "conversations"] {
        counter!(PURGED, "kind" => kind).increment(0);
    }
    for state in ["idle", "in_use"] {
        gauge!(DB_POOL, "state" => state).set(0.0);
    }
    for name in [ACTIVE_STREAMS, ACTIVE_WEBSOCKETS, BACKGROUND_QUEUE, HISTORY_CACHE_BYTES] {
        gauge!(name).set(0.0);
    }
    for name in [HISTORY_DEPTH, HISTORY_DURATION] {
        // Taking the handle registers the series.
        let _ = histogram!(name);
    }
}

/// Middleware: counts and times every request by its route template (`unmatched` when no route matched).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// Registers the series of a configured upstream, so they show before its first request.
pub fn upstream_configured(upstream: &str) {
    counter!(UPSTREAM_REQUESTS, "upstream" => upstream.to_string(), "outcome" => "ok").increment(0);
    let _ = histogram!(UPSTREAM_DURATION, "upstream" => upstream.to_string());
}

/// An upstream request ended with `outcome` (`ok` or an error class) after `seconds` (until its headers, when it
/// got any).
pub fn upstream_request(upstream: &str, outcome: &'static str, seconds: f64) {
    histogram!(UPSTREAM_DURATION, "upstream" => upstream.to_string()).record(seconds);
    upstream_outcome(upstream, outcome);
}

/// Counts an outcome of an upstream request without timing it (an answer found unusable after its headers).
pub fn upstream_outcome(upstream: &str, outcome: &'static str) {
    counter!(UPSTREAM_REQUESTS, "upstream" => upstream.to_string(), "outcome" => outcome).increment(1);
}

/// Counts the tokens of a finished turn.
pub fn turn_tokens(usage: Option<&Usage>) {
    if let Some(usage) = usage {
        counter!(TOKENS, "direction" => "input").increment(usage.input_tokens);
        counter!(TOKENS, "direction" => "output").increment(usage.output_tokens);
    }
}

/// A turn's context was fitted to its model's window: `whole`, `truncated`, `compacted` or `too_long`.
pub fn context_fit(fit: &'static str) {
    counter!(CONTEXTS, "fit" => fit).increment(1);
}

/// A request was refused by a per-tenant limit: `rate` or `concurrency`.
pub fn request_rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

/// The periodic purge erased what `report` counts.
pub fn purged(report: &PurgeReport) {
    counter!(PURGED, "kind" => "responses").increment(report.responses);
    counter!(PURGED, "kind" => "conversations").increment(report.conversations);
}

/// One streamed response in progress: counted in `threadline_active_streams` from `start` until dropped.
pub struct StreamGuard(());

impl StreamGuard {
    pub fn start() -> Self {
        gauge!(ACTIVE_STREAMS).increment(1.0);
        Self(())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        gauge!(ACTIVE_STREAMS).decrement(1.0);
    }
}

/// One open WebSocket: counted in `threadline_active_websockets` from `open` until dropped.
pub struct WebSocketGuard(());

impl WebSocketGuard {
    pub fn open() -> Self {
        gauge!(ACTIVE_WEBSOCKETS).increment(1.0);
        Self(())
    }
}

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        gauge!(ACTIVE_WEBSOCKETS).decrement(1.0);
    }
}

/// A turn's history was resolved: a chain of `depth` turns in `seconds`, from the cache (`"hit"`) or the database (`"miss"`).
pub fn history_resolved(depth: usize, seconds: f64, cache: &str) {
    histogram!(HISTORY_DEPTH).record(depth as f64);
    histogram!(HISTORY_DURATION).record(seconds);
    counter!(HISTORY_CACHE_REQUESTS, "result" => cache.to_string()).increment(1);
}

/// The memory the history cache holds now.
pub fn cache_bytes(bytes: u64) {
    gauge!(HISTORY_CACHE_BYTES).set(bytes as f64);
}

/// How many background responses wait for a worker now.
pub fn background_queue(waiting: u64) {
    gauge!(BACKGROUND_QUEUE).set(waiting as f64);
}

/// The database pool now: `size` connections open, `idle` of them idle.
pub fn db_pool(size: u32, idle: u32) {
    gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
    gauge!(DB_POOL, "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
}
