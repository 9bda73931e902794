//! An agent loop of tool calls over HTTP against the same loop over one WebSocket: an opening turn with a tool, then
//! turns each sending the `function_call_output` of the previous turn's call and continuing it by
//! `previous_response_id` (the mock answers every one with a new call). Both transports stream: HTTP posts
//! `"stream": true` and reads the SSE body to its end, the socket sends `response.create` frames and reads the events
//! up to `response.completed`. Each loop opens its own connection, inside its time.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use reqwest::Client;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::cell::{self, percentile_ms, Post, Timing};
use crate::measure::Settings;
use crate::results::{AgentLoopCell, AgentLoopResults, CellStats, LoopStats};

/// How a loop reaches threadline.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Http,
    WebSocket,
}

/// Runs the loop at c=1, HTTP and WebSocket loops alternating on one worker (so drift falls on both alike), then
/// `s.agent_concurrency` loops at once, each transport in its own cell.
pub async fn measure(s: &Settings) -> anyhow::Result<AgentLoopResults> {
    let [http, websocket] = run(s, [Transport::Http, Transport::WebSocket], 1).await?;
    let mut cells = vec![AgentLoopCell { concurrency: 1, http, websocket }];
    let c = s.agent_concurrency;
    if c > 1 {
        let [http] = run(s, [Transport::Http], c).await?;
        let [websocket] = run(s, [Transport::WebSocket], c).await?;
        cells.push(AgentLoopCell { concurrency: c, http, websocket });
    }
    for cell in &cells {
        eprintln!(
            "{}: agent loop of {} turns, {} at once: median loop HTTP {:.1} ms, WebSocket {:.1} ms ({:.2} ×); \
             turns/s {:.0} / {:.0}; errors {}",
            s.store,
            s.agent_turns,
            cell.concurrency,
            cell.http.loop_p50_ms,
            cell.websocket.loop_p50_ms,
            cell.speedup(),
            cell.http.turns.per_sec,
            cell.websocket.turns.per_sec,
            cell.errors(),
        );
    }
    Ok(AgentLoopResults { turns: s.agent_turns, cells })
}

/// What one transport's loops took in a cell.
#[derive(Default)]
struct Times {
    loops: Vec<Duration>,
    turns: Vec<Duration>,
    errors: u64,
}

/// `concurrency` workers run loops for the warm-up and then `N` times the duration, each cycling through
/// `transports`; the figures per transport.
async fn run<const N: usize>(
    s: &Settings,
    transports: [Transport; N],
    concurrency: usize,
) -> anyhow::Result<[LoopStats; N]> {
    let Timing { warmup, duration } = s.timing;
    let measured_from = Instant::now() + warmup;
    let end = measured_from + duration * N as u32;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (base, turns) = (s.threadline.clone(), s.agent_turns);
        workers.spawn(async move {
            let mut times: [Times; N] = std::array::from_fn(|_| Times::default());
            'loops: loop {
                for (&transport, times) in transports.iter().zip(&mut times) {
                    if Instant::now() >= end {
                        break 'loops;
                    }
                    match agent_loop(&base, transport, turns).await {
                        Ok(run) if run.began >= measured_from => {
                            times.loops.push(run.took);
                            times.turns.extend(run.turns);
                        }
                        Ok(_) => {}
                        Err(err) => {
                            eprintln!("agent loop over {transport:?} failed: {err:#}");
                            times.errors += 1;
                        }
                    }
                }
            }
            times
        });
    }
    let mut all: [Times; N] = std::array::from_fn(|_| Times::default());
    while let Some(worker) = workers.join_next().await {
        for (all, times) in all.iter_mut().zip(worker?) {
            all.loops.extend(times.loops);
            all.turns.extend(times.turns);
            all.errors += times.errors;
        }
    }
    Ok(all.map(|mut times| {
        times.loops.sort_unstable();
        times.turns.sort_unstable();
        // Turns over the time the loops took, shared by the workers.
        let busy = times.loops.iter().sum::<Duration>().as_secs_f64() / concurrency as f64;
        LoopStats {
            loops: times.loops.len() as u64,
            loop_p50_ms: percentile_ms(&times.loops, 0.50),
            turns: CellStats {
                requests: times.turns.len() as u64,
                errors: times.errors,
                per_sec: if busy > 0.0 { times.turns.len() as f64 / busy } else { 0.0 },
                p50_ms: percentile_ms(&times.turns, 0.50),
                p99_ms: percentile_ms(&times.turns, 0.99),
            },
        }
    }))
}

/// One loop's times.
struct LoopRun {
    began: Instant,
    /// From opening the connection to the last answer.
    took: Duration,
    /// Each tool-output turn's, from sending it to its `response.completed`.
    turns: Vec<Duration>,
}

/// One loop: the opening turn, then `turns` tool-output turns.
async fn agent_loop(base: &str, transport: Transport, turns: u32) -> anyhow::Result<LoopRun> {
    let mut connection = Connection::new(base, transport)?;
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]);
    let began = Instant::now();
    let mut previous = connection.turn(json!({"model": "bench", "input": "start", "tools": tools})).await?;
    let mut times = Vec::with_capacity(turns as usize);
    for _ in 0..turns {
        let call_id = previous.call_id()?;
        let output = json!([{"type": "function_call_output", "call_id": call_id, "output": "ok"}]);
        let fields = json!({"model": "bench", "input": output, "tools": tools, "previous_response_id": previous.id});
        let begun = Instant::now();
        previous = connection.turn(fields).await?;
        times.push(begun.elapsed());
    }
    previous.call_id()?;
    Ok(LoopRun { began, took: began.elapsed(), turns: times })
}

/// A connection to threadline, opened by its first turn.
enum Connection {
    Http { client: Client, url: String },
    WebSocket { url: String, socket: Option<Box<WebSocketStream<MaybeTlsStream<TcpStream>>>> },
}

impl Connection {
    fn new(base: &str, transport: Transport) -> anyhow::Result<Self> {
        let url = format!("{base}/v1/responses");
        Ok(match transport {
            Transport::Http => Self::Http { client: cell::client()?, url },
            Transport::WebSocket => Self::WebSocket { url: url.replacen("http://", "ws://", 1), socket: None },
        })
    }

    /// Runs one streamed turn with these request fields; the completed response.
    async fn turn(&mut self, mut fields: Value) -> anyhow::Result<Completed> {
        match self {
            Self::Http { client, url } => {
                fields["stream"] = json!(true);
                let body = Post::new(url.clone(), &fields)?.send(client).await?;
                let body = std::str::from_utf8(&body)?;
                let data = body.split("\n\n").filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")));
                for data in data.filter(|data| *data != "[DONE]") {
                    if let Some(completed) = Completed::from_event(data)? {
                        return Ok(completed);
                    }
                }
                anyhow::bail!("the stream ended without response.completed")
            }
            Self::WebSocket { url, socket } => {
                let socket = match socket {
                    Some(socket) => socket,
                    None => {
                        let (opened, _) =
                            tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
                        socket.insert(Box::new(opened))
                    }
                };
                fields["type"] = json!("response.create");
                socket.send(Message::text(fields.to_string())).await?;
                loop {
                    match socket.next().await.context("the socket closed mid-response")?? {
                        Message::Text(text) => {
                            if let Some(completed) = Completed::from_event(text.as_str())? {
                                return Ok(completed);
                            }
                        }
                        Message::Close(_) => anyhow::bail!("the socket closed mid-response"),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// An event's type, and its response (when it has one).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
}

/// A completed response: its id and output.
#[derive(Deserialize)]
struct Completed {
    id: String,
    output: Vec<OutputItem>,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(rename = "type")]
    kind: String,
    call_id: Option<String>,
}

impl Completed {
    /// The response of a `response.completed` event; `None` for an event on the way; an error for one that ends the
    /// response otherwise (failed, incomplete, or an error).
    fn from_event(data: &str) -> anyhow::Result<Option<Self>> {
        let event: Event = serde_json::from_str(data)?;
        match (event.kind, event.response) {
            ("response.completed", Some(response)) => Ok(Some(serde_json::from_str(response.get())?)),
            ("response.failed" | "response.incomplete" | "error", _) => anyhow::bail!("the response ended: {data}"),
            _ => Ok(None),
        }
    }

    /// The id of the function call the response ends with.
    fn call_id(&self) -> anyhow::Result<&str> {
        let call = self.output.iter().rev().find(|item| item.kind == "function_call");
        call.and_then(|call| call.call_id.as_deref())
            .with_context(|| format!("response {} called no function", self.id))
    }
}
