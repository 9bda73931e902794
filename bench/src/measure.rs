//! One store's measurement: build a chain per depth through threadline; take threadline's memory idle and under many
//! open streams; then per depth time direct calls to the mock against threadline turns (c=1 and high concurrency)
//! and check the history threadline sent; then what truncation costs (see `truncation`); then the streaming time to
//! first byte; then an agent loop of tool calls over HTTP and over a WebSocket (see `agent_loop`).

use std::time::{Duration, Instant};

use reqwest::Client;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::cell::{self, contains, Post, Timing};
use crate::results::{DepthResults, Fidelity, StoreResults, StreamsRss, Ttfb};
use crate::{agent_loop, truncation};

/// What to measure, and where.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A name for the store ("sqlite", "postgres").
    pub store: String,
    /// Threadline's base URL (`http://HOST:PORT`) and process id.
    pub threadline: String,
    pub pid: u32,
    /// The mock upstream's base URL.
    pub mock: String,
    pub depths: Vec<u32>,
    pub concurrency: usize,
    pub timing: Timing,
    /// Streams held open for the memory measurement, and the mock's delay between their chunks.
    pub streams: usize,
    pub stream_chunk_delay_ms: u64,
    /// The agent loop's tool-output turns, and how many loops run at once besides one.
    pub agent_turns: u32,
    pub agent_concurrency: usize,
}

/// A Chat Completions message, its fields in the order threadline writes them.
#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// A direct call's body: the whole history.
#[derive(Serialize)]
struct DirectBody<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
}

/// A request body as the mock received it.
#[derive(Deserialize)]
struct Received {
    messages: Vec<Box<RawValue>>,
}

pub async fn measure(s: &Settings) -> anyhow::Result<StoreResults> {
    let client = cell::client()?;
    let rss_start_mb = rss_mb(s.pid)?;
    let mut chains = Vec::new();
    for &depth in &s.depths {
        let started = Instant::now();
        let tip = build_chain(&client, s, depth).await?;
        let build_secs = started.elapsed().as_secs_f64();
        eprintln!("{}: chain of depth {depth} built in {build_secs:.1} s", s.store);
        chains.push((depth, tip, build_secs));
    }
    let rss_idle_mb = rss_mb(s.pid)?;
    // The streams branch from the chain closest to depth 10; they run before the load, which grows the heap.
    let Some((near_10, tip, _)) = chains.iter().min_by_key(|(depth, _, _)| depth.abs_diff(10)) else {
        anyhow::bail!("no depth to measure");
    };
    let streams = streams_rss(s, tip).await?;
    let mut depths = Vec::new();
    for (depth, tip, build_secs) in &chains {
        depths.push(measure_depth(&client, s, *depth, tip, *build_secs).await?);
    }
    // Truncation at the deepest chain up to 1,000 turns.
    let deepest = chains.iter().filter(|(depth, _, _)| *depth <= 1000).max_by_key(|(depth, _, _)| *depth);
    let truncation = match deepest {
        Some((depth, tip, _)) => Some(truncation::measure(&client, s, *depth, tip).await?),
        None => None,
    };
    let ttfb = first_bytes(s, *near_10, tip).await?;
    let agent_loop = agent_loop::measure(s).await?;
    let rss_after_load_mb = rss_mb(s.pid)?;
    Ok(StoreResults {
        store: s.store.clone(),
        concurrency: s.concurrency,
        rss_start_mb,
        rss_idle_mb,
        rss_after_load_mb,
        depths,
        ttfb: Some(ttfb),
        streams,
        truncation,
        agent_loop: Some(agent_loop),
    })
}

/// Stores `depth` turns one after the other ("turn 1", "turn 2"…); the last one's id.
async fn build_chain(client: &Client, s: &Settings, depth: u32) -> anyhow::Result<String> {
    let mut tip: Option<String> = None;
    for turn in 1..=depth {
        let body = json!({"model": "bench", "input": format!("turn {turn}"), "previous_response_id": tip});
        let answer = Post::new(format!("{}/v1/responses", s.threadline), &body)?.send(client).await?;
        let answer: Value = serde_json::from_slice(&answer)?;
        let Some(id) = answer["id"].as_str() else { anyhow::bail!("turn {turn} of depth {depth}: no id in {answer}") };
        tip = Some(id.to_string());
    }
    tip.ok_or_else(|| anyhow::anyhow!("a chain needs a depth of at least 1"))
}

/// The direct call's body for a chain of `depth` turns followed by `last`.
fn direct_post(s: &Settings, depth: u32, last: &str, stream: bool) -> anyhow::Result<Post> {
    let turns: Vec<String> = (1..=depth).map(|turn| format!("turn {turn}")).collect();
    let mut messages = Vec::with_capacity(turns.len() * 2 + 1);
    for turn in &turns {
        messages.push(Message { role: "user", content: turn });
        messages.push(Message { role: "assistant", content: "ok" });
    }
    messages.push(Message { role: "user", content: last });
    let stream_options = stream.then(|| json!({"include_usage": true}));
    let body = DirectBody { model: "bench", messages, stream, stream_options };
    Post::new(format!("{}/v1/chat/completions", s.mock), &body)
}

/// The body of a turn through threadline continuing `tip`.
pub(crate) fn threadline_body(model: &str, tip: &str, input: &str, stream: bool) -> Value {
    json!({"model": model, "input": input, "previous_response_id": tip, "stream": stream})
}

/// A turn through threadline continuing `tip`.
fn threadline_post(s: &Settings, model: &str, tip: &str, input: &str, stream: bool) -> anyhow::Result<Post> {
    Post::new(format!("{}/v1/responses", s.threadline), &threadline_body(model, tip, input, stream))
}

async fn measure_depth(
    client: &Client,
    s: &Settings,
    depth: u32,
    tip: &str,
    build_secs: f64,
) -> anyhow::Result<DepthResults> {
    let direct = direct_post(s, depth, "next", false)?;
    let threadline = threadline_post(s, "bench", tip, "next", false)?;
    let c = s.concurrency;
    let direct_c1 = cell::run(&direct, 1, s.timing).await?;
    let threadline_c1 = cell::run(&threadline, 1, s.timing).await?;
    let direct_cn = cell::run(&direct, c, s.timing).await?;
    let threadline_cn = cell::run(&threadline, c, s.timing).await?;
    let fidelity = fidelity(client, s, depth, tip).await?;
    let results = DepthResults { depth, build_secs, direct_c1, threadline_c1, direct_cn, threadline_cn, fidelity };
    eprintln!(
        "{}: D={depth}: c=1 p50 direct {:.3} ms, threadline {:.3} ms; c={c} direct {:.0}/s, threadline {:.0}/s; \
         errors {}; fidelity {}",
        s.store,
        results.direct_c1.p50_ms,
        results.threadline_c1.p50_ms,
        results.direct_cn.per_sec,
        results.threadline_cn.per_sec,
        results.errors(),
        if results.fidelity.pass() { "pass" } else { "FAIL" },
    );
    Ok(results)
}

/// Sends one direct call and one threadline turn ending in the same message, and compares what the mock received.
async fn fidelity(client: &Client, s: &Settings, depth: u32, tip: &str) -> anyhow::Result<Fidelity> {
    let key = format!("capture-{depth}-{}", s.store);
    direct_post(s, depth, &key, false)?.send(client).await?;
    let direct = received(client, s, &key).await?;
    threadline_post(s, "bench", tip, &key, false)?.send(client).await?;
    let through = received(client, s, &key).await?;
    let same_count = direct.len() == through.len();
    let equal = same_count
        && direct.iter().zip(&through).all(|(a, b)| {
            matches!((serde_json::from_str::<Value>(a.get()), serde_json::from_str::<Value>(b.get())), (Ok(a), Ok(b)) if a == b)
        });
    let byte_identical = same_count && direct.iter().zip(&through).all(|(a, b)| a.get() == b.get());
    Ok(Fidelity { messages: through.len(), expected: 2 * depth as usize + 1, equal, byte_identical })
}

/// The messages the mock received last under `key`.
pub(crate) async fn received(client: &Client, s: &Settings, key: &str) -> anyhow::Result<Vec<Box<RawValue>>> {
    let response = client.get(format!("{}/received", s.mock)).query(&[("key", key)]).send().await?;
    let body = response.error_for_status()?.bytes().await?;
    Ok(serde_json::from_slice::<Received>(&body)?.messages)
}

/// Streaming time to first byte and first text, direct and through threadline, at c=1.
async fn first_bytes(s: &Settings, depth: u32, tip: &str) -> anyhow::Result<Ttfb> {
    let direct = cell::first_bytes(&direct_post(s, depth, "next", true)?, b"\"content\":\"", s.timing).await?;
    let threadline_post = threadline_post(s, "bench", tip, "next", true)?;
    let threadline = cell::first_bytes(&threadline_post, b"response.output_text.delta", s.timing).await?;
    eprintln!(
        "{}: streaming D={depth}: first byte p50 direct {:.3} ms, threadline {:.3} ms; first text {:.3} / {:.3} ms",
        s.store, direct.first_byte_ms, threadline.first_byte_ms, direct.first_text_ms, threadline.first_text_ms
    );
    Ok(Ttfb {
        depth,
        direct_first_byte_ms: direct.first_byte_ms,
        threadline_first_byte_ms: threadline.first_byte_ms,
        direct_first_text_ms: direct.first_text_ms,
        threadline_first_text_ms: threadline.first_text_ms,
        requests: direct.requests + threadline.requests,
        errors: direct.errors + threadline.errors,
    })
}

/// Threadline's peak RSS while `s.streams` streamed turns are held open by the mock's chunk delay.
async fn streams_rss(s: &Settings, tip: &str) -> anyhow::Result<StreamsRss> {
    let model = format!("bench-delay-{}", s.stream_chunk_delay_ms);
    let post = threadline_post(s, &model, tip, "next", true)?;
    let mut streams = JoinSet::new();
    for _ in 0..s.streams {
        let (post, client) = (post.clone(), cell::client()?);
        streams.spawn(async move { post.send(&client).await.is_ok_and(|body| contains(&body, b"response.completed")) });
    }
    let before_mb = rss_mb(s.pid)?;
    let (mut peak_mb, mut errors) = (before_mb, 0);
    let mut sample = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            joined = streams.join_next() => match joined {
                Some(Ok(true)) => {}
                Some(_) => errors += 1,
                None => break,
            },
            _ = sample.tick() => peak_mb = f64::max(peak_mb, rss_mb(s.pid)?),
        }
    }
    eprintln!("{}: {} streams: peak RSS {peak_mb:.1} MB, errors {errors}", s.store, s.streams);
    Ok(StreamsRss { streams: s.streams, before_mb, peak_mb, errors })
}

/// The resident memory of process `pid`, in MB (`VmRSS` of /proc/PID/status).
fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"));
    let kb = line.and_then(|line| line.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok());
    kb.map(|kb| kb / 1024.0).ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}
