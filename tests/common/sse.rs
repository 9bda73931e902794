//! A strict reader of threadline's own event streams, written apart from the product's SSE decoder so that the
//! tests can catch its bugs: every frame must be exactly `event: <name>\n` (optional) then one `data: <text>\n`,
//! then a blank line — LF line ends, no comments, no other fields.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;

/// One event: its name (if any) and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub event: Option<String>,
    pub data: String,
}

impl Frame {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|err| panic!("event data is not JSON ({err}): {}", self.data))
    }
}

/// Splits complete frames off the front of `buffer`.
pub fn parse_frames(buffer: &mut Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
        let raw: Vec<u8> = buffer.drain(..end + 2).collect();
        let text = std::str::from_utf8(&raw[..end]).expect("a frame that is not UTF-8");
        assert!(!text.contains('\r'), "a frame with a carriage return: {text:?}");
        let mut lines = text.split('\n');
        let mut line = lines.next().unwrap_or_default();
        let event = match line.strip_prefix("event: ") {
            Some(name) => {
                line = lines.next().unwrap_or_default();
                Some(name.to_string())
            }
            None => None,
        };
        let data = line.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data line in {text:?}")).to_string();
        assert_eq!(lines.next(), None, "more than one data line in {text:?}");
        frames.push(Frame { event, data });
    }
    frames
}

/// An SSE response read event by event; every wait is bounded so a stuck stream fails the test.
pub struct Events {
    bytes: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
    pending: VecDeque<Frame>,
}

impl Events {
    /// Reads an answer that must be a 200 `text/event-stream`.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "text/event-stream; charset=utf-8");
        Self { bytes: response.bytes_stream().boxed(), buffer: Vec::new(), pending: VecDeque::new() }
    }

    /// The next event, or `None` when the stream has ended (with no partial frame left).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.bytes.next()).await.expect("stream stalled");
            match chunk {
                Some(chunk) => {
                    self.buffer.extend_from_slice(&chunk.unwrap());
                    self.pending.extend(parse_frames(&mut self.buffer));
                }
                None => {
                    assert!(self.buffer.is_empty(), "the stream ended inside a frame: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next event's JSON data.
    pub async fn next_json(&mut self) -> Value {
        self.next().await.expect("stream ended").json()
    }

    /// The JSON data of every remaining event, leaving out the final `[DONE]`.
    pub async fn rest_json(self) -> Vec<Value> {
        let frames = self.rest().await;
        frames.iter().filter(|f| f.data != "[DONE]").map(Frame::json).collect()
    }

    /// Every remaining event.
    pub async fn rest(mut self) -> Vec<Frame> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// The event sequence of a streamed answer of one message in two text deltas.
pub const TEXT_SEQUENCE: [&str; 10] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
];

/// The `type` of each event.
pub fn event_types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["type"].as_str().unwrap()).collect()
}
