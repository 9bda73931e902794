//! What fitting a turn's context into the model's window costs: at one depth, the c=1 latency of the same turn with
//! truncation off, on with nothing to drop, and on with the oldest turns dropped, their requests interleaved; and a
//! check that the upstream then received the newest whole turns.

use reqwest::Client;
use serde_json::{json, Value};

use crate::cell::{self, Post};
use crate::measure::{received, threadline_body, Settings};
use crate::results::{Kept, TruncationResults};

/// The mock's model whose window holds every chain measured.
const WIDE: &str = "bench";
/// The mock's model whose window holds about half the chain (8,000 tokens for a chain of 1,000 turns).
const NARROW: &str = "bench-window";

/// A turn through threadline continuing `tip` on `model`, with `truncation: auto` if `auto`.
fn post(s: &Settings, model: &str, tip: &str, input: &str, auto: bool) -> anyhow::Result<Post> {
    let mut body = threadline_body(model, tip, input, false);
    if auto {
        body["truncation"] = json!("auto");
    }
    Post::new(format!("{}/v1/responses", s.threadline), &body)
}

/// Times the three turns continuing the chain of `depth` ending at `tip`, then checks what a dropping one sent.
pub async fn measure(client: &Client, s: &Settings, depth: u32, tip: &str) -> anyhow::Result<TruncationResults> {
    let posts =
        [post(s, WIDE, tip, "next", false)?, post(s, WIDE, tip, "next", true)?, post(s, NARROW, tip, "next", true)?];
    let [off, auto_kept, auto_dropped] = cell::run_interleaved(&posts, s.timing).await?;
    let kept = kept(client, s, depth, tip).await?;
    let window = listed_window(client, s).await?;
    let results = TruncationResults { depth, off, auto_kept, auto_dropped, window, kept };
    eprintln!(
        "{}: truncation at D={depth}: c=1 p50 off {:.3} ms, auto {:.3} ms ({:.2}×), auto on {NARROW} ({window} \
         tokens) {:.3} ms ({:.2}×, {} msgs from turn {}); errors {}; check {}",
        s.store,
        results.off.p50_ms,
        results.auto_kept.p50_ms,
        results.kept_ratio(),
        results.auto_dropped.p50_ms,
        results.dropped_ratio(),
        results.kept.messages,
        results.kept.first_turn,
        results.errors(),
        if results.pass() { "pass" } else { "FAIL" },
    );
    Ok(results)
}

/// Sends one dropping turn ending in a `capture-…` message and compares what the mock received with the direct
/// history's tail.
async fn kept(client: &Client, s: &Settings, depth: u32, tip: &str) -> anyhow::Result<Kept> {
    let key = format!("capture-truncation-{depth}-{}", s.store);
    post(s, NARROW, tip, &key, true)?.send(client).await?;
    let received = received(client, s, &key).await?;
    let received: Vec<Value> = received.iter().map(|m| serde_json::from_str(m.get())).collect::<Result<_, _>>()?;
    let mut direct = Vec::with_capacity(2 * depth as usize + 1);
    for turn in 1..=depth {
        direct.push(json!({"role": "user", "content": format!("turn {turn}")}));
        direct.push(json!({"role": "assistant", "content": "ok"}));
    }
    direct.push(json!({"role": "user", "content": key}));
    let messages = received.len();
    // Whole turns and the new message: an odd count, and the tail starts at a user message.
    let tail = messages % 2 == 1 && messages <= direct.len() && direct[direct.len() - messages..] == received[..];
    let first_turn = if tail { depth + 1 - (messages as u32 - 1) / 2 } else { 0 };
    Ok(Kept { messages, tail, first_turn })
}

/// The context window the mock lists for `bench-window`.
async fn listed_window(client: &Client, s: &Settings) -> anyhow::Result<u64> {
    let response = client.get(format!("{}/v1/models", s.mock)).send().await?;
    let models: Value = serde_json::from_slice(&response.error_for_status()?.bytes().await?)?;
    let listed = models["data"].as_array().into_iter().flatten().find(|model| model["id"] == NARROW);
    listed.and_then(|model| model["context_length"].as_u64()).ok_or_else(|| anyhow::anyhow!("{NARROW} is not listed"))
}
