//! The built-in offline echo model: deterministic, and its reply shows the context it received, so statefulness
//! is visible without any LLM: `echo: <last user text> [turn N, M messages in context]`.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{estimate_tokens, ChatMessage, ChatRequest, Completion, FinishReason, TokenCounts, Upstream};
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
        model: None,
        text,
        reasoning: None,
        finish_reason,
        usage: TokenCounts { input, output, cached: 0, reasoning: 0 },
    }
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
        let messages = request.messages.iter().map(|ChatMessage { role, content }| (*role, content.as_str()));
        Ok(reply(messages, request.sampling.max_output_tokens))
    }

    async fn chat(&self, body: &Value) -> ApiResult<Value> {
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
        let completion = reply(pairs.iter().map(|(r, t)| (r.as_str(), t.as_str())), max_tokens);
        let finish_reason = if completion.finish_reason == FinishReason::Length { "length" } else { "stop" };
        Ok(json!({
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": chrono::Utc::now().timestamp(),
            "model": body.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": completion.usage.input,
                "completion_tokens": completion.usage.output,
                "total_tokens": completion.usage.input + completion.usage.output,
            },
        }))
    }

    async fn models(&self) -> ApiResult<Vec<Value>> {
        Ok(vec![json!({"id": "echo", "object": "model", "created": 0, "owned_by": self.name})])
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
        assert_eq!(completion.usage, TokenCounts { input: 6, output: 9, cached: 0, reasoning: 0 });
    }

    #[test]
    fn reply_is_cut_at_max_tokens() {
        let completion = reply([("user", "one two three")].into_iter(), Some(3));
        assert_eq!(completion.text, "echo: one two");
        assert_eq!(completion.finish_reason, FinishReason::Length);
    }
}
