//! Reading a streamed Anthropic Messages answer: its Server-Sent Events (decoded as for every upstream, see
//! `stream`) read into deltas as they arrive — text, thinking, function calls in pieces, the stop reason and usage.

use super::anthropic_wire::{finish_reason, AnswerBlock, BlockDelta, Event, Usage};
use super::http::ByteStream;
use super::scrub::Scrubber;
use super::stream::{read_deltas, Answer, EventFormat};
use super::{Delta, DeltaStream};

/// The deltas of a streamed answer from `upstream`, whose body is `bytes` (capped by `HttpBackend::bytes`: a body
/// past the cap ends the deltas with `TooLarge`); `scrubber` scrubs its errors.
pub fn deltas(upstream: String, scrubber: Scrubber, bytes: ByteStream) -> DeltaStream {
    read_deltas(upstream, scrubber, bytes, MessageEvents { usage: Usage::default(), calls: Vec::new() })
}

/// A function call being streamed: the index of its content block, and whether arguments came for it.
struct Call {
    block: usize,
    has_arguments: bool,
}

/// Messages API events, and what they told so far.
struct MessageEvents {
    /// The usage reported so far (`message_start`, updated by `message_delta`).
    usage: Usage,
    /// The function calls, in order: a call's position is its index in the deltas.
    calls: Vec<Call>,
}

impl MessageEvents {
    /// The position of the function call streamed in content block `block`.
    fn call(&mut self, block: usize) -> Option<(usize, &mut Call)> {
        self.calls.iter_mut().enumerate().find(|(_, call)| call.block == block)
    }
}

impl EventFormat for MessageEvents {
    fn read(&mut self, data: &str, answer: &mut Answer) {
        let event: Event = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(err) => return answer.fail(&format!("an event that does not parse ({err})")),
        };
        match event {
            Event::MessageStart { message } => self.usage = self.usage.update(message.usage.unwrap_or_default()),
            Event::ContentBlockStart { index, content_block } => match content_block {
                AnswerBlock::Text { text } if !text.is_empty() => answer.push(Delta::Text(text)),
                AnswerBlock::Thinking { thinking } if !thinking.is_empty() => {
                    answer.push(Delta::Reasoning(thinking));
                }
                AnswerBlock::ToolUse { id, name, .. } => {
                    let delta = Delta::ToolCall {
                        index: self.calls.len(),
                        id: Some(id),
                        name: Some(name),
                        arguments: "".into(),
                    };
                    self.calls.push(Call { block: index, has_arguments: false });
                    answer.push(delta);
                }
                _ => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => answer.push(Delta::Text(text)),
                BlockDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    answer.push(Delta::Reasoning(thinking));
                }
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    let Some((position, call)) = self.call(index) else {
                        let what = format!("arguments for content block {index}, which is no function call");
                        return answer.fail(&what);
                    };
                    call.has_arguments = true;
                    let delta = Delta::ToolCall { index: position, id: None, name: None, arguments: partial_json };
                    answer.push(delta);
                }
                _ => {}
            },
            Event::ContentBlockStop { index } => {
                // A call without arguments takes none: `{}`, as a whole answer gives its input.
                if let Some((position, call)) = self.call(index).filter(|(_, call)| !call.has_arguments) {
                    call.has_arguments = true;
                    let delta = Delta::ToolCall { index: position, id: None, name: None, arguments: "{}".into() };
                    answer.push(delta);
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.usage = self.usage.update(usage.unwrap_or_default());
                answer.finish(finish_reason(delta.stop_reason.as_deref()));
                answer.push(Delta::Usage(self.usage.counts()));
            }
            Event::MessageStop => answer.end(true),
            Event::Error { error } => answer.fail(&error.message),
            Event::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::stream::{self, StreamExt};

    use super::*;
    use crate::upstream::{FinishReason, TokenCounts};

    async fn read(body: &'static str) -> Vec<Result<Delta, String>> {
        let chunks: ByteStream = stream::iter([Ok(Bytes::from_static(body.as_bytes()))]).boxed();
        deltas("claude".into(), Scrubber::default(), chunks)
            .map(|delta| delta.map_err(|err| err.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_call_without_arguments_takes_none_and_a_cut_stream_fails() {
        let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n\
            data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"now\",\"input\":{}}}\n\n\
            data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
            data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n";
        let call = |arguments: &str, id: Option<&str>| Delta::ToolCall {
            index: 0,
            id: id.map(str::to_string),
            name: id.map(|_| "now".to_string()),
            arguments: arguments.into(),
        };
        let usage = TokenCounts { input: 7, output: 9, cached: 2, reasoning: 0, cache_write: 0 };
        let expected = vec![
            Ok(call("", Some("t1"))),
            Ok(call("{}", None)),
            Ok(Delta::Finish(FinishReason::ToolCalls)),
            Ok(Delta::Usage(usage)),
        ];
        assert_eq!(read(body).await, expected);
        let cut = read("data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n").await;
        assert_eq!(
            cut,
            vec![
                Ok(Delta::Text("Hi".into())),
                Err("Upstream 'claude' failed mid-stream: the stream ended before the completion finished.".into())
            ]
        );
    }
}
