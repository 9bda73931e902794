//! Timed cells: workers, each on its own keep-alive connection, sending the same request over and over for a while;
//! cells taken together, their requests interleaved; and the time to the first bytes of a streamed answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::Client;
use tokio::task::JoinSet;

use crate::results::CellStats;

/// A client that keeps one connection alive (one per worker: workers send one request at a time).
pub fn client() -> anyhow::Result<Client> {
    Ok(Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).timeout(Duration::from_secs(600)).build()?)
}

/// One JSON POST, its body built once.
#[derive(Clone, Debug)]
pub struct Post {
    pub url: String,
    pub body: Bytes,
}

impl Post {
    pub fn new(url: String, body: &impl serde::Serialize) -> anyhow::Result<Self> {
        Ok(Self { url, body: Bytes::from(serde_json::to_vec(body)?) })
    }

    /// Sends the request; the answer as read whole if it is a success.
    pub async fn send(&self, client: &Client) -> anyhow::Result<Bytes> {
        let response = self.start(client).await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(status.is_success(), "{} answered {status}: {}", self.url, String::from_utf8_lossy(&body));
        Ok(body)
    }

    async fn start(&self, client: &Client) -> reqwest::Result<reqwest::Response> {
        client.post(&self.url).header(CONTENT_TYPE, "application/json").body(self.body.clone()).send().await
    }
}

/// How long a cell warms up (its requests are not counted), then runs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Sends `post` from `concurrency` workers for the warm-up and then the duration.
pub async fn run(post: &Post, concurrency: usize, timing: Timing) -> anyhow::Result<CellStats> {
    let measured_from = Instant::now() + timing.warmup;
    let end = measured_from + timing.duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (post, client) = (post.clone(), client()?);
        workers.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            loop {
                let begun = Instant::now();
                if begun >= end {
                    break;
                }
                if post.send(&client).await.is_err() {
                    errors += 1;
                }
                if begun >= measured_from {
                    latencies.push(begun.elapsed());
                }
            }
            (latencies, errors)
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(worker) = workers.join_next().await {
        let (worker_latencies, worker_errors) = worker?;
        latencies.extend(worker_latencies);
        errors += worker_errors;
    }
    latencies.sort_unstable();
    Ok(CellStats {
        requests: latencies.len() as u64,
        errors,
        per_sec: latencies.len() as f64 / timing.duration.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
    })
}

/// Cells at c=1 taken together: one worker sends `posts` in turn, round and round, for the warm-up and then
/// `posts.len()` times the duration, so each gets about a cell's worth of requests and any drift of the machine over
/// that time falls on all of them alike. A cell's rate is its requests over the time they took.
pub async fn run_interleaved<const N: usize>(posts: &[Post; N], timing: Timing) -> anyhow::Result<[CellStats; N]> {
    let client = client()?;
    let measured_from = Instant::now() + timing.warmup;
    let end = measured_from + timing.duration * N as u32;
    let mut cells: [(Vec<Duration>, u64); N] = std::array::from_fn(|_| (Vec::new(), 0));
    'rounds: loop {
        for (post, (latencies, errors)) in posts.iter().zip(&mut cells) {
            let begun = Instant::now();
            if begun >= end {
                break 'rounds;
            }
            if post.send(&client).await.is_err() {
                *errors += 1;
            }
            if begun >= measured_from {
                latencies.push(begun.elapsed());
            }
        }
    }
    Ok(cells.map(|(mut latencies, errors)| {
        latencies.sort_unstable();
        let busy = latencies.iter().sum::<Duration>().as_secs_f64();
        CellStats {
            requests: latencies.len() as u64,
            errors,
            per_sec: if busy > 0.0 { latencies.len() as f64 / busy } else { 0.0 },
            p50_ms: percentile_ms(&latencies, 0.50),
            p99_ms: percentile_ms(&latencies, 0.99),
        }
    }))
}

/// Times to the first bytes of streamed answers, p50, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstBytes {
    /// To the first byte of the body.
    pub first_byte_ms: f64,
    /// To the first byte of the body that carries text (the body so far contains the marker).
    pub first_text_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

/// Sends the streamed `post` one at a time for the warm-up and the duration, reading each answer to its end.
pub async fn first_bytes(post: &Post, text_marker: &[u8], timing: Timing) -> anyhow::Result<FirstBytes> {
    let client = client()?;
    let measured_from = Instant::now() + timing.warmup;
    let end = measured_from + timing.duration;
    let (mut first_bytes, mut first_texts, mut errors) = (Vec::new(), Vec::new(), 0);
    loop {
        let begun = Instant::now();
        if begun >= end {
            break;
        }
        match read_stream(post, &client, text_marker, begun).await {
            Ok((first_byte, first_text)) if begun >= measured_from => {
                first_bytes.push(first_byte);
                first_texts.push(first_text);
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    first_bytes.sort_unstable();
    first_texts.sort_unstable();
    Ok(FirstBytes {
        first_byte_ms: percentile_ms(&first_bytes, 0.50),
        first_text_ms: percentile_ms(&first_texts, 0.50),
        requests: first_bytes.len() as u64,
        errors,
    })
}

/// Reads one streamed answer to its end: the times from `begun` to its first byte and to the marker.
async fn read_stream(
    post: &Post,
    client: &Client,
    marker: &[u8],
    begun: Instant,
) -> anyhow::Result<(Duration, Duration)> {
    let mut response = post.start(client).await?;
    anyhow::ensure!(response.status().is_success(), "{} answered {}", post.url, response.status());
    let (mut body, mut first_byte, mut first_text) = (Vec::new(), None, None);
    while let Some(chunk) = response.chunk().await? {
        first_byte = first_byte.or_else(|| Some(begun.elapsed()));
        body.extend_from_slice(&chunk);
        if first_text.is_none() && contains(&body, marker) {
            first_text = Some(begun.elapsed());
        }
    }
    anyhow::ensure!(contains(&body, b"data: [DONE]"), "the stream did not end with [DONE]");
    match (first_byte, first_text) {
        (Some(first_byte), Some(first_text)) => Ok((first_byte, first_text)),
        _ => anyhow::bail!("the stream carried no text"),
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The `q` quantile of sorted durations, in milliseconds (0 when there are none).
pub(crate) fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
