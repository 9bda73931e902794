//! The built-in offline echo model: deterministic, and its reply shows the context it received, so statefulness
//! is visible without any LLM: `echo: <last user text> [turn N, M messages in context]`.

use async_trait::async_trait;
use axum::body::Bytes;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::{
    estimate_tokens, ByteStream, ChatRequest, Completion, Delta, DeltaStream, FinishReason, TokenCounts, Upstream,
};
use crate::error::{ApiError, ApiResult};
use crate::model::new_id;

/// The echo backend.
pub struct Echo {
    name: String,
}

impl Echo {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string() }
    }
}

/// The echo reply for a context of `(role, text)` messages, cut to `max_tokens` words if given.
fn reply<'a>(messages: impl Iterator<Item = (&'a str, &'a str)>, max_tokens: Option<u64>) -> Completion {
    let (mut count, mut turns, mut last_user, mut input) = (0, 0, None, 0);
    for (role, text) in messages {
        count += 1;
        input += estimate_tokens(text);
        if role == "user" {
            turns += 1;
            last_user = Some(text);
        }
    }
    let full =
        format!("echo: {} [turn {turns}, {count} messages in context]", last_user.unwrap_or("(no user message)"));
    let words: Vec<&str> = full.split_whitespace().collect();
    let (text, finish_reason) = match max_tokens {
        Some(max) if (words.len() as u64) > max => (words[..max as usize].join(" "), FinishReason::Length),
        _ => (full, FinishReason::Stop),
    };
    let output = estimate_tokens(&text);
    Completion {
        text,
        reasoning: None,
        tool_calls: Vec::new(),
        finish_reason,
        usage: Some(TokenCounts { input, output, cached: 0, reasoning: 0 }),
    }
}

/// The reply's text in word-sized pieces, as a stream would deliver it.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

/// The text of a Chat Completions message's `content` (a string or text parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

#[async_trait]
impl Upstream for Echo {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> ApiResult<Completion> {
        let texts: Vec<(&str, String)> = request.messages.iter().map(|m| (m.role, m.content_text())).collect();
        Ok(reply(texts.iter().map(|(role, text)| (*role, text.as_str())), request.parameters.max_output_tokens))
    }

    async fn complete_stream(&self, request: &ChatRequest) -> ApiResult<DeltaStream> {
        let completion = self.complete(request).await?;
        let text = pieces(&completion.text).map(|piece| Delta::Text(piece.to_string()));
        let end = [Delta::Finish(completion.finish_reason)].into_iter().chain(completion.usage.map(Delta::Usage));
        let deltas: Vec<_> = text.chain(end).map(Ok).collect();
        Ok(stream::iter(deltas).boxed())
    }

    async fn chat(&self, body: &Value) -> ApiResult<Value> {
        let answer = ChatAnswer::new(body)?;
        Ok(json!({
            "id": answer.id,
            "object": "chat.completion",
            "created": answer.created,
            "model": answer.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.completion.text},
                "logprobs": null,
                "finish_reason": answer.finish_reason(),
            }],
            "usage": answer.usage(),
        }))
    }

    async fn chat_stream(&self, body: &Value) -> ApiResult<ByteStream> {
        let answer = ChatAnswer::new(body)?;
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let chunk = |choices: Value, usage: Value| {
            let chunk = json!({"id": answer.id, "object": "chat.completion.chunk", "created": answer.created,
                "model": answer.model, "choices": choices, "usage": usage});
            format!("data: {chunk}\n\n")
        };
        let mut frames = vec![chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            Value::Null,
        )];
        frames.extend(pieces(&answer.completion.text).map(|piece| {
            chunk(json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]), Value::Null)
        }));
        frames.push(chunk(json!([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason()}]), Value::Null));
        if include_usage {
            frames.push(chunk(json!([]), answer.usage()));
        }
        frames.push("data: [DONE]\n\n".to_string());
        Ok(stream::iter(frames.into_iter().map(|frame| Ok(Bytes::from(frame)))).boxed())
    }

    async fn models(&self) -> ApiResult<Vec<Value>> {
        Ok(vec![json!({"id": "echo", "object": "model", "created": 0, "owned_by": self.name})])
    }
}

/// The echo answer to a Chat Completions request body.
struct ChatAnswer {
    id: String,
    created: i64,
    model: Value,
    completion: Completion,
}

impl ChatAnswer {
    fn new(body: &Value) -> ApiResult<Self> {
        let Some(messages) = body.get("messages").and_then(Value::as_array) else {
            return Err(ApiError::invalid(
                "Missing required parameter: 'messages'.",
                Some("messages".to_string()),
                Some("missing_required_parameter"),
            ));
        };
        let pairs: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or_default().to_string();
                (role, m.get("content").map(content_text).unwrap_or_default())
            })
            .collect();
        let max_tokens = ["max_completion_tokens", "max_tokens"].iter().find_map(|k| body.get(*k)?.as_u64());
        Ok(Self {
            id: new_id("chatcmpl"),
            created: chrono::Utc::now().timestamp(),
            model: body.get("model").cloned().unwrap_or(Value::Null),
            completion: reply(pairs.iter().map(|(r, t)| (r.as_str(), t.as_str())), max_tokens),
        })
    }

    fn finish_reason(&self) -> &'static str {
        if self.completion.finish_reason == FinishReason::Length {
            "length"
        } else {
            "stop"
        }
    }

    fn usage(&self) -> Value {
        let usage = self.completion.usage.unwrap_or_default();
        json!({"prompt_tokens": usage.input, "completion_tokens": usage.output, "total_tokens": usage.input + usage.output})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_counts_turns_and_messages() {
        let messages = [("system", "be kind"), ("user", "a"), ("assistant", "x"), ("user", "b c")];
        let completion = reply(messages.into_iter(), None);
        assert_eq!(completion.text, "echo: b c [turn 2, 4 messages in context]");
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert_eq!(completion.usage.unwrap(), TokenCounts { input: 6, output: 9, cached: 0, reasoning: 0 });
    }

    #[test]
    fn reply_is_cut_at_max_tokens() {
        let completion = reply([("user", "one two three")].into_iter(), Some(3));
        assert_eq!(completion.text, "echo: one two");
        assert_eq!(completion.finish_reason, FinishReason::Length);
    }
}
