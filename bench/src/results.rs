//! What one measurement of one store found, as written by `loadgen measure` and read by `loadgen report`.

use serde::{Deserialize, Serialize};

/// Latency and rate of one cell: one kind of request sent by some workers for a while.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CellStats {
    /// Requests started after the warm-up.
    pub requests: u64,
    /// Failed requests (transport error or non-2xx), warm-up included.
    pub errors: u64,
    /// Requests per second after the warm-up.
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Whether threadline sent the upstream the same history as a direct full-history call.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fidelity {
    /// Messages the upstream received through threadline.
    pub messages: usize,
    /// 2D+1.
    pub expected: usize,
    /// Every message equal to the direct call's, in order (compared as parsed JSON).
    pub equal: bool,
    /// Every message's raw JSON text identical too.
    pub byte_identical: bool,
}

impl Fidelity {
    pub fn pass(&self) -> bool {
        self.messages == self.expected && self.equal
    }
}

/// The figures for one chain depth.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DepthResults {
    pub depth: u32,
    /// Seconds to build the chain through threadline, one turn after the other.
    pub build_secs: f64,
    pub direct_c1: CellStats,
    pub threadline_c1: CellStats,
    pub direct_cn: CellStats,
    pub threadline_cn: CellStats,
    pub fidelity: Fidelity,
}

impl DepthResults {
    pub fn errors(&self) -> u64 {
        [&self.direct_c1, &self.threadline_c1, &self.direct_cn, &self.threadline_cn].iter().map(|c| c.errors).sum()
    }

    /// Threadline's c=1 p50 less the direct call's: what threadline adds to a turn.
    pub fn added_p50_ms(&self) -> f64 {
        self.threadline_c1.p50_ms - self.direct_c1.p50_ms
    }

    /// Threadline's stored turns per second at high concurrency, as a share of the direct calls per second.
    pub fn ratio(&self) -> f64 {
        ratio(self.threadline_cn.per_sec, self.direct_cn.per_sec)
    }
}

/// The cost of fitting a turn's context into the model's window: the same turn continuing one chain, at c=1, with
/// truncation off and on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TruncationResults {
    /// The chain's depth: the deepest measured up to 1,000.
    pub depth: u32,
    /// Model `bench`, no `truncation`: the baseline.
    pub off: CellStats,
    /// `truncation: auto` on `bench`, whose window holds the whole chain: the budget computed, nothing dropped.
    pub auto_kept: CellStats,
    /// `truncation: auto` on `bench-window`: the oldest turns dropped.
    pub auto_dropped: CellStats,
    /// The window of `bench-window` as the mock lists it, in tokens.
    pub window: u64,
    /// What the upstream received for a turn like `auto_dropped`'s.
    pub kept: Kept,
}

impl TruncationResults {
    pub fn errors(&self) -> u64 {
        self.off.errors + self.auto_kept.errors + self.auto_dropped.errors
    }

    /// The c=1 p50 with truncation on and nothing dropped, over the baseline's.
    pub fn kept_ratio(&self) -> f64 {
        ratio(self.auto_kept.p50_ms, self.off.p50_ms)
    }

    /// The c=1 p50 with truncation on and the oldest turns dropped, over the baseline's.
    pub fn dropped_ratio(&self) -> f64 {
        ratio(self.auto_dropped.p50_ms, self.off.p50_ms)
    }

    /// The upstream received the newest whole turns, not all of them, and at least the last.
    pub fn pass(&self) -> bool {
        self.kept.tail && self.kept.first_turn > 1 && self.kept.first_turn <= self.depth
    }
}

/// The messages the upstream received for a turn that dropped the oldest turns of a chain of D.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Kept {
    /// Messages received, the new one included.
    pub messages: usize,
    /// They are exactly the last ones of the direct history (equal as parsed JSON) and start with a user message:
    /// whole turns, `turn k`/`ok` through `turn D`/`ok`, then the new message.
    pub tail: bool,
    /// k, the first turn kept (0 when they are not such a tail).
    pub first_turn: u32,
}

fn ratio(x: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        x / baseline
    } else {
        0.0
    }
}

/// Streaming time to first byte and to first text, at c=1, p50 of each.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ttfb {
    pub depth: u32,
    pub direct_first_byte_ms: f64,
    pub threadline_first_byte_ms: f64,
    pub direct_first_text_ms: f64,
    pub threadline_first_text_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

/// Threadline's resident memory while many streams are held open.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StreamsRss {
    pub streams: usize,
    /// Just before they started.
    pub before_mb: f64,
    pub peak_mb: f64,
    pub errors: u64,
}

/// One transport's agent loops in a cell.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoopStats {
    /// Loops begun after the warm-up.
    pub loops: u64,
    /// Their median time, from opening the connection to the last answer.
    pub loop_p50_ms: f64,
    /// Their tool-output turns: latency, and turns per second over the time the loops took (failed loops counted
    /// as errors).
    pub turns: CellStats,
}

/// The agent loop over HTTP and over a WebSocket, some loops at once.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentLoopCell {
    pub concurrency: usize,
    pub http: LoopStats,
    pub websocket: LoopStats,
}

impl AgentLoopCell {
    pub fn errors(&self) -> u64 {
        self.http.turns.errors + self.websocket.turns.errors
    }

    /// The HTTP loop's median time over the WebSocket loop's.
    pub fn speedup(&self) -> f64 {
        ratio(self.http.loop_p50_ms, self.websocket.loop_p50_ms)
    }

    /// The WebSocket's turns per second over HTTP's.
    pub fn throughput_ratio(&self) -> f64 {
        ratio(self.websocket.turns.per_sec, self.http.turns.per_sec)
    }
}

/// An agent loop of tool calls, over HTTP and over one WebSocket (see `agent_loop`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentLoopResults {
    /// Tool-output turns per loop, after the opening turn.
    pub turns: u32,
    /// One loop at a time, then many.
    pub cells: Vec<AgentLoopCell>,
}

impl AgentLoopResults {
    pub fn errors(&self) -> u64 {
        self.cells.iter().map(AgentLoopCell::errors).sum()
    }
}

/// Everything measured on one store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreResults {
    pub store: String,
    /// The high concurrency (64 unless changed).
    pub concurrency: usize,
    /// Threadline's RSS right after it started, and once the chains were built.
    pub rss_start_mb: f64,
    pub rss_idle_mb: f64,
    /// Once every cell has run.
    pub rss_after_load_mb: f64,
    pub depths: Vec<DepthResults>,
    pub ttfb: Option<Ttfb>,
    pub streams: StreamsRss,
    /// None when no depth up to 1,000 was measured.
    #[serde(default)]
    pub truncation: Option<TruncationResults>,
    /// None in results written before it was measured.
    #[serde(default)]
    pub agent_loop: Option<AgentLoopResults>,
}

impl StoreResults {
    pub fn errors(&self) -> u64 {
        let depths: u64 = self.depths.iter().map(DepthResults::errors).sum();
        let truncation = self.truncation.as_ref().map_or(0, TruncationResults::errors);
        let agent_loop = self.agent_loop.as_ref().map_or(0, AgentLoopResults::errors);
        depths + self.ttfb.as_ref().map_or(0, |t| t.errors) + self.streams.errors + truncation + agent_loop
    }

    /// Every fidelity check passed, and the truncation check.
    pub fn checks_ok(&self) -> bool {
        self.depths.iter().all(|d| d.fidelity.pass()) && self.truncation.as_ref().is_none_or(TruncationResults::pass)
    }

    pub fn depth(&self, depth: u32) -> Option<&DepthResults> {
        self.depths.iter().find(|d| d.depth == depth)
    }
}
