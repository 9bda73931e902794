//! The markdown report: the machine, the commit, a table per store, what truncation costs, the agent loop over HTTP
//! and over a WebSocket, and the targets checked against the figures.

use std::fmt::Write;

use crate::results::{AgentLoopResults, DepthResults, LoopStats, StoreResults, TruncationResults};

/// The depths of a full run, each a row of the tables (those not measured show "–").
pub const FULL_DEPTHS: [u32; 5] = [1, 10, 100, 1000, 10_000];

/// What the report says about the run besides the figures.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub commit: String,
    pub date: String,
    pub quick: bool,
    /// Lines printed under the header (a store skipped, say).
    pub notes: Vec<String>,
}

/// The whole report.
pub fn render(meta: &Meta, stores: &[StoreResults]) -> String {
    let mut out = String::new();
    let mode = if meta.quick { "quick (`bench/run --quick`)" } else { "full (`bench/run`)" };
    let _ = writeln!(out, "# threadline benchmark\n");
    let _ = writeln!(out, "- run: {mode}, {}", meta.date);
    let _ = writeln!(out, "- commit: {}", meta.commit);
    let _ = writeln!(out, "- machine: {}", machine());
    for note in &meta.notes {
        let _ = writeln!(out, "- {note}");
    }
    for store in stores {
        store_section(&mut out, store);
    }
    truncation_section(&mut out, stores);
    agent_loop_section(&mut out, stores);
    targets_section(&mut out, meta, stores);
    out
}

/// CPU model, cores, memory and kernel, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|l| l.split_whitespace().next());
    let mem_gib = mem_kb.and_then(|kb| kb.parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{}, {cores} cores, {mem_gib:.1} GiB, Linux {}", cpu.unwrap_or("unknown CPU"), kernel.trim())
}

fn store_section(out: &mut String, s: &StoreResults) {
    let c = s.concurrency;
    let _ = writeln!(out, "\n## {}\n", title(&s.store));
    let _ = writeln!(
        out,
        "| D | chain build (s) | direct c=1 p50 / p99 (ms) | threadline c=1 p50 / p99 (ms) | added p50 (ms) \
         | direct c={c} (req/s) | threadline c={c} (turns/s) | ratio | threadline c={c} p50 / p99 (ms) | p99/p50 \
         | errors | fidelity |"
    );
    let _ = writeln!(out, "|{}", "---|".repeat(12));
    for depth in FULL_DEPTHS {
        let Some(d) = s.depth(depth) else {
            let _ = writeln!(out, "| {depth} {}", "| – ".repeat(11) + "|");
            continue;
        };
        let tl = &d.threadline_cn;
        let _ = writeln!(
            out,
            "| {depth} | {:.1} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} | {:.0} | {:.0} | {:.0} % | {:.2} / {:.2} | {:.1} \
             | {} | {} |",
            d.build_secs,
            d.direct_c1.p50_ms,
            d.direct_c1.p99_ms,
            d.threadline_c1.p50_ms,
            d.threadline_c1.p99_ms,
            d.added_p50_ms(),
            d.direct_cn.per_sec,
            tl.per_sec,
            d.ratio() * 100.0,
            tl.p50_ms,
            tl.p99_ms,
            spread(d),
            d.errors(),
            fidelity(d),
        );
    }
    let _ = writeln!(out);
    if let Some(t) = &s.ttfb {
        let _ = writeln!(
            out,
            "- streaming at D={}, c=1, p50: first byte direct {:.3} ms, threadline {:.3} ms, **added {:.3} ms**; \
             first text direct {:.3} ms, threadline {:.3} ms, added {:.3} ms",
            t.depth,
            t.direct_first_byte_ms,
            t.threadline_first_byte_ms,
            t.threadline_first_byte_ms - t.direct_first_byte_ms,
            t.direct_first_text_ms,
            t.threadline_first_text_ms,
            t.threadline_first_text_ms - t.direct_first_text_ms,
        );
    }
    let _ = writeln!(
        out,
        "- threadline RSS: {:.1} MB at start, {:.1} MB idle after building the chains, {:.1} MB peak under {} open \
         streams ({:.1} MB just before; {} failed), {:.1} MB after all the load",
        s.rss_start_mb,
        s.rss_idle_mb,
        s.streams.peak_mb,
        s.streams.streams,
        s.streams.before_mb,
        s.streams.errors,
        s.rss_after_load_mb,
    );
    let _ = writeln!(out, "- errors (non-2xx or failed requests): {}", s.errors());
}

fn title(store: &str) -> &str {
    match store {
        "sqlite" => "SQLite",
        "postgres" => "Postgres",
        other => other,
    }
}

/// Threadline's c=64 p99 over its p50.
fn spread(d: &DepthResults) -> f64 {
    if d.threadline_cn.p50_ms > 0.0 {
        d.threadline_cn.p99_ms / d.threadline_cn.p50_ms
    } else {
        0.0
    }
}

fn fidelity(d: &DepthResults) -> String {
    let f = &d.fidelity;
    let how = if f.byte_identical { "byte-identical" } else { "equal as JSON" };
    if f.pass() {
        format!("pass ({} msgs, {how})", f.messages)
    } else if f.messages != f.expected {
        format!("**FAIL** ({} msgs, expected {})", f.messages, f.expected)
    } else {
        format!("**FAIL** ({} msgs, contents differ)", f.messages)
    }
}

/// Per store, the c=1 latency of a turn with truncation off and on, and what the upstream received when it dropped.
fn truncation_section(out: &mut String, stores: &[StoreResults]) {
    let measured: Vec<(&str, &TruncationResults)> =
        stores.iter().filter_map(|s| Some((title(&s.store), s.truncation.as_ref()?))).collect();
    if measured.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Truncation\n");
    let _ = writeln!(
        out,
        "The same turn continuing a chain of D at c=1: off (`bench`), `truncation: auto` on `bench` (nothing to drop) \
         and on `bench-window` (its window of W tokens less a quarter for output holds about half the chain: the \
         oldest turns dropped).\n"
    );
    let _ = writeln!(
        out,
        "| store | D | off p50 / p99 (ms) | auto, nothing dropped p50 / p99 (ms) | × off | W | auto, dropping p50 / p99 \
         (ms) | × off | sent upstream when dropping | errors | check |"
    );
    let _ = writeln!(out, "|{}", "---|".repeat(11));
    for (store, t) in measured {
        let sent = if t.kept.tail {
            format!("{} msgs: turns {}–{} and the new one", t.kept.messages, t.kept.first_turn, t.depth)
        } else {
            format!("{} msgs, not the history's tail", t.kept.messages)
        };
        let _ = writeln!(
            out,
            "| {store} | {} | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} | {} | {:.3} / {:.3} | {:.2} | {sent} | {} | {} |",
            t.depth,
            t.off.p50_ms,
            t.off.p99_ms,
            t.auto_kept.p50_ms,
            t.auto_kept.p99_ms,
            t.kept_ratio(),
            t.window,
            t.auto_dropped.p50_ms,
            t.auto_dropped.p99_ms,
            t.dropped_ratio(),
            t.errors(),
            if t.pass() { "pass" } else { "**FAIL**" },
        );
    }
}

/// Per store and loops at once, the agent loop over HTTP against the same loop over a WebSocket.
fn agent_loop_section(out: &mut String, stores: &[StoreResults]) {
    let measured: Vec<(&str, &AgentLoopResults)> =
        stores.iter().filter_map(|s| Some((title(&s.store), s.agent_loop.as_ref()?))).collect();
    let Some((_, first)) = measured.first() else { return };
    let _ = writeln!(out, "\n## Agent loop: HTTP against a WebSocket\n");
    let _ = writeln!(
        out,
        "An opening turn with a tool, then {} turns each sending the `function_call_output` of the previous turn's \
         call, continuing it by `previous_response_id` (the mock answers each with a new call); streamed on both: \
         `POST /v1/responses` with `\"stream\": true` read to its end, or `response.create` frames on one socket read \
         to `response.completed`. A loop's time runs from opening its connection to its last answer; turn latency and \
         turns/s are over its tool-output turns; speedup is HTTP's median loop time over the WebSocket's.\n",
        first.turns
    );
    let _ = writeln!(
        out,
        "| store | loops at once | HTTP loop p50 (ms) | WebSocket loop p50 (ms) | speedup | HTTP turn p50 / p99 (ms) \
         | WebSocket turn p50 / p99 (ms) | HTTP turns/s | WebSocket turns/s | turns/s WebSocket / HTTP | loops (HTTP / WebSocket) \
         | errors |"
    );
    let _ = writeln!(out, "|{}", "---|".repeat(12));
    let turn = |l: &LoopStats| format!("{:.3} / {:.3}", l.turns.p50_ms, l.turns.p99_ms);
    for (store, a) in measured {
        for cell in &a.cells {
            let (http, ws) = (&cell.http, &cell.websocket);
            let _ = writeln!(
                out,
                "| {store} | {} | {:.1} | {:.1} | **{:.2} ×** | {} | {} | {:.0} | {:.0} | {:.2} | {} / {} | {} |",
                cell.concurrency,
                http.loop_p50_ms,
                ws.loop_p50_ms,
                cell.speedup(),
                turn(http),
                turn(ws),
                http.turns.per_sec,
                ws.turns.per_sec,
                cell.throughput_ratio(),
                http.loops,
                ws.loops,
                cell.errors(),
            );
        }
    }
}

/// One target: a figure (none when not measured) against a limit.
struct Target {
    store: String,
    what: String,
    figure: Option<f64>,
    /// None when it depends on a figure not measured.
    limit: Option<f64>,
    at_least: bool,
    unit: &'static str,
}

fn targets(s: &StoreResults) -> Vec<Target> {
    let store = title(&s.store).to_string();
    let target = |what: String, figure: Option<f64>, limit: Option<f64>, at_least: bool, unit| Target {
        store: store.clone(),
        what,
        figure,
        limit,
        at_least,
        unit,
    };
    let ratio = |depth| s.depth(depth).map(|d| d.ratio() * 100.0);
    let added = |depth| s.depth(depth).map(DepthResults::added_p50_ms);
    let c = s.concurrency;
    let ratios: &[(u32, f64)] = match s.store.as_str() {
        "sqlite" => &[(1, 25.0), (100, 40.0), (1000, 60.0)],
        "postgres" => &[(1, 10.0), (100, 30.0), (1000, 50.0)],
        _ => &[],
    };
    let mut list: Vec<Target> = ratios
        .iter()
        .map(|&(depth, limit)| target(format!("c={c} ratio at D={depth}"), ratio(depth), Some(limit), true, "%"))
        .collect();
    if s.store == "sqlite" {
        for (depth, limit) in [(1, 0.3), (100, 0.5), (1000, 2.0)] {
            list.push(target(format!("added p50 at D={depth}"), added(depth), Some(limit), false, "ms"));
        }
        let worst = s.depths.iter().map(spread).fold(None, |worst: Option<f64>, x| Some(worst.map_or(x, |w| w.max(x))));
        list.push(target(format!("c={c} p99/p50, worst depth"), worst, Some(10.0), false, "×"));
    }
    // The cost per turn beyond the upstream's own at D=10000, against three times that at D=1000.
    let limit = added(1000).map(|shallow| 3.0 * shallow);
    list.push(target("added p50 at D=10000 (limit: 3 × D=1000's)".to_string(), added(10_000), limit, false, "ms"));
    let truncation = s.truncation.as_ref();
    let depth = truncation.map_or(1000, |t| t.depth);
    for (what, figure) in [
        ("nothing dropped", truncation.map(TruncationResults::kept_ratio)),
        ("oldest turns dropped", truncation.map(TruncationResults::dropped_ratio)),
    ] {
        let what = format!("c=1 p50 at D={depth}, truncation auto ({what}) / off");
        list.push(target(what, figure, Some(1.5), false, "×"));
    }
    list.push(target("RSS idle".to_string(), Some(s.rss_start_mb.max(s.rss_idle_mb)), Some(30.0), false, "MB"));
    list
}

fn targets_section(out: &mut String, meta: &Meta, stores: &[StoreResults]) {
    let _ = writeln!(out, "\n## Targets\n");
    if meta.quick {
        let _ = writeln!(out, "Quick run: targets are reported, not enforced (depths not measured show \"–\").\n");
    }
    let _ = writeln!(out, "| store | target | limit | figure | result |\n|---|---|---|---|---|");
    for t in stores.iter().flat_map(targets) {
        let op = if t.at_least { "≥" } else { "≤" };
        let shown = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{} {}", num(x), t.unit));
        let result = match (t.figure, t.limit) {
            (Some(x), Some(limit)) if (t.at_least && x >= limit) || (!t.at_least && x <= limit) => "met",
            (Some(_), Some(_)) => "**missed**",
            _ => "–",
        };
        let limit = t.limit.map_or("–".to_string(), |limit| format!("{op} {} {}", num(limit), t.unit));
        let _ = writeln!(out, "| {} | {} | {limit} | {} | {result} |", t.store, t.what, shown(t.figure));
    }
}

/// A figure with two decimals, or none when it is whole.
fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
