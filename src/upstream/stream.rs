//! Reading a streamed Chat Completions answer: Server-Sent Events decoded by `sse-stream` (every line-end form, a
//! leading byte-order mark, comments, events without data), each chunk read into deltas.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use sse_stream::{Sse, SseStream};

use super::chat_completions::token_counts;
use super::http::ByteStream;
use super::scrub::Scrubber;
use super::wire::ChatChunk;
use super::{Delta, DeltaStream, FinishReason, UpstreamError, UpstreamResult};

/// The deltas of a streamed Chat Completions answer from `upstream`, whose body is `bytes` (capped by
/// `HttpBackend::bytes`: a body past the cap ends the deltas with `TooLarge`); `scrubber` scrubs its errors.
pub fn deltas(upstream: String, scrubber: Scrubber, bytes: ByteStream) -> DeltaStream {
    read_deltas(upstream, scrubber, bytes, ChatChunks)
}

/// What one upstream's event data means: each event read into the answer's deltas.
pub(super) trait EventFormat: Send + 'static {
    /// Reads one event's data into `answer`.
    fn read(&mut self, data: &str, answer: &mut Answer);
}

/// The deltas of a streamed answer from `upstream`, whose body is `bytes`, each event read by `format`, every
/// error scrubbed by `scrubber`.
pub(super) fn read_deltas(
    upstream: String,
    scrubber: Scrubber,
    bytes: ByteStream,
    format: impl EventFormat,
) -> DeltaStream {
    let answer = Answer { upstream, scrubber, pending: VecDeque::new(), finished: false, ended: false };
    let reader = Reader { events: events(bytes), answer, format };
    stream::unfold(reader, Reader::next).boxed()
}

/// The Server-Sent Events of a body.
pub(super) fn events<E: std::error::Error + Send + Sync + 'static>(
    bytes: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> BoxStream<'static, Result<Sse, sse_stream::Error>> {
    SseStream::from_bytes_stream(bytes).boxed()
}

/// The `TooLarge` a capped body (`HttpBackend::bytes`) ended with, if that is what broke the stream.
pub(super) fn too_large(err: &sse_stream::Error) -> Option<UpstreamError> {
    let sse_stream::Error::Body(body) = err else { return None };
    let io = body.downcast_ref::<std::io::Error>()?;
    match io.get_ref()?.downcast_ref::<UpstreamError>()? {
        UpstreamError::TooLarge { upstream, max_bytes } => {
            Some(UpstreamError::TooLarge { upstream: upstream.clone(), max_bytes: *max_bytes })
        }
        _ => None,
    }
}

/// A streamed answer as read so far: the deltas not yet taken, and how it stands.
pub(super) struct Answer {
    upstream: String,
    /// What scrubs the secrets from its errors.
    scrubber: Scrubber,
    pending: VecDeque<UpstreamResult<Delta>>,
    /// Its end (a finish reason) was seen.
    finished: bool,
    /// Nothing more will be read.
    ended: bool,
}

impl Answer {
    pub(super) fn push(&mut self, delta: Delta) {
        self.pending.push_back(Ok(delta));
    }

    /// A piece of text, after the log probabilities of its tokens when there are any.
    pub(super) fn text(&mut self, text: String, logprobs: Vec<serde_json::Value>) {
        if !logprobs.is_empty() {
            self.push(Delta::Logprobs(logprobs));
        }
        self.push(Delta::Text(text));
    }

    /// The answer's finish reason was read: the stream may end from now on.
    pub(super) fn finish(&mut self, reason: FinishReason) {
        self.finished = true;
        self.push(Delta::Finish(reason));
    }

    /// Nothing more is to be read (once finished, when `finished_only`).
    pub(super) fn end(&mut self, finished_only: bool) {
        self.ended |= self.finished || !finished_only;
    }

    /// The answer failed mid-stream: this error (scrubbed) is its last delta.
    pub(super) fn fail(&mut self, what: &str) {
        let what = self.scrubber.scrub(what).into_owned();
        let error = UpstreamError::MidStream { upstream: self.upstream.clone(), what };
        self.pending.push_back(Err(error));
        self.ended = true;
    }
}

/// Reads events into deltas, one at a time.
struct Reader<F> {
    events: BoxStream<'static, Result<Sse, sse_stream::Error>>,
    answer: Answer,
    format: F,
}

impl<F: EventFormat> Reader<F> {
    async fn next(mut self) -> Option<(UpstreamResult<Delta>, Self)> {
        loop {
            if let Some(delta) = self.answer.pending.pop_front() {
                return Some((delta, self));
            }
            if self.answer.ended {
                return None;
            }
            match self.events.next().await {
                // An event without data (a named keep-alive, say) carries nothing to read.
                Some(Ok(Sse { data: None, .. })) => {}
                Some(Ok(Sse { data: Some(data), .. })) => self.format.read(&data, &mut self.answer),
                Some(Err(err)) => match too_large(&err) {
                    Some(too_large) => {
                        self.answer.pending.push_back(Err(too_large));
                        self.answer.ended = true;
                    }
                    None => self.answer.fail(&format!("the stream broke off ({err})")),
                },
                None if self.answer.finished => self.answer.ended = true,
                None => self.answer.fail("the stream ended before the completion finished"),
            }
        }
    }
}

/// Chat Completions chunks.
struct ChatChunks;

impl EventFormat for ChatChunks {
    /// Reads one event's data: a chunk, an error, or `[DONE]`.
    fn read(&mut self, data: &str, answer: &mut Answer) {
        if data == "[DONE]" {
            return answer.end(false);
        }
        let chunk: ChatChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(err) => return answer.fail(&format!("a chunk that does not parse ({err})")),
        };
        if let Some(error) = chunk.error {
            let message = error.get("message").and_then(|m| m.as_str()).or(error.as_str()).unwrap_or("an error");
            return answer.fail(message);
        }
        for choice in chunk.choices.into_iter().take(1) {
            let delta = choice.delta;
            if let Some(text) = delta.reasoning_text() {
                answer.push(Delta::Reasoning(text.to_string()));
            }
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                let logprobs = choice.logprobs.map(super::wire::ChoiceLogprobs::into_values).unwrap_or_default();
                answer.text(text, logprobs);
            }
            for (position, call) in delta.tool_calls.into_iter().enumerate() {
                answer.push(Delta::ToolCall {
                    index: call.index.unwrap_or(position),
                    id: call.id.filter(|id| !id.is_empty()),
                    name: call.function.name.filter(|name| !name.is_empty()),
                    arguments: call.function.arguments.unwrap_or_default(),
                });
            }
            if let Some(reason) = choice.finish_reason {
                answer.finish(FinishReason::from_wire(&reason));
            }
        }
        if let Some(counts) = chunk.usage.and_then(token_counts) {
            answer.push(Delta::Usage(counts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a body sent in the given chunks, as (name, data).
    async fn decode(chunks: &[&'static str]) -> Vec<(Option<String>, Option<String>)> {
        let chunks: Vec<reqwest::Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from_static(c.as_bytes()))).collect();
        let body = stream::iter(chunks);
        let events: Vec<_> = events(body).collect().await;
        events.into_iter().map(|event| event.map(|e| (e.event, e.data)).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_data_less_event_does_not_name_the_next_one() {
        let events = decode(&["event: ping\r", "\n\r\ndata: a\r\r", "event: x\ndata: b\n\n"]).await;
        let expected = [(Some("ping"), None), (None, Some("a")), (Some("x"), Some("b"))];
        let expected: Vec<_> = expected.iter().map(|(e, d)| (e.map(String::from), d.map(String::from))).collect();
        assert_eq!(events, expected);
    }
}
