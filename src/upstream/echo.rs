//! The built-in offline echo model: deterministic, and its reply shows the context it received, so statefulness
//! is visible without any LLM: `echo: <last user text> [turn N, M messages in context]`.

use async_trait::async_trait;

use crate::tokens::{TokenCounter, REPLY_PRIMING};
use futures::stream::{self, StreamExt};

use super::{
    ChatRequest, ChatRole, Completion, Context, Delta, DeltaStream, FinishReason, FormatMismatch, ModelInfo,
    TokenCounts, Upstream, UpstreamError, UpstreamResult,
};

/// The context window the echo model reports, so long conversations behave offline as on a real backend.
const WINDOW: u64 = 8192;

/// The echo backend.
pub struct Echo {
    name: String,
}

impl Echo {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string() }
    }
}

/// The echo reply for a context of `(role, text)` messages, cut to `max_tokens` words if given, with its usage
/// counted by the default tokenizer as a backend would report it.
fn reply<'a>(messages: impl Iterator<Item = (ChatRole, &'a str)>, max_tokens: Option<u64>) -> Completion {
    let counter = TokenCounter::default();
    let (mut count, mut turns, mut last_user, mut input) = (0, 0, None, u64::from(REPLY_PRIMING));
    for (role, text) in messages {
        count += 1;
        input += u64::from(counter.message(text));
        if role == ChatRole::User {
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
    let output = u64::from(counter.text(&text));
    Completion {
        text,
        logprobs: Vec::new(),
        reasoning: Vec::new(),
        tool_calls: Vec::new(),
        finish_reason,
        usage: Some(TokenCounts { input, output, cached: 0, reasoning: 0, cache_write: 0 }),
    }
}

/// The reply's text in word-sized pieces, as a stream would deliver it.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

#[async_trait]
impl Upstream for Echo {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> UpstreamResult<Completion> {
        let Context::Chat(messages) = &request.messages else {
            let what = format!("a context it cannot read ({FormatMismatch})");
            return Err(UpstreamError::BadAnswer { upstream: self.name.clone(), what });
        };
        let texts: Vec<(ChatRole, String)> = messages.iter().map(|m| (m.role, m.content_text())).collect();
        Ok(reply(texts.iter().map(|(role, text)| (*role, text.as_str())), request.parameters.max_output_tokens))
    }

    async fn complete_stream(&self, request: &ChatRequest) -> UpstreamResult<DeltaStream> {
        let completion = self.complete(request).await?;
        let text = pieces(&completion.text).map(|piece| Delta::Text(piece.to_string()));
        let end = [Delta::Finish(completion.finish_reason)].into_iter().chain(completion.usage.map(Delta::Usage));
        let deltas: Vec<_> = text.chain(end).map(Ok).collect();
        Ok(stream::iter(deltas).boxed())
    }

    /// The echo model, with the window it is fitted to as a real backend reports one.
    async fn models(&self) -> UpstreamResult<Vec<ModelInfo>> {
        let mut echo = ModelInfo::named("echo", &self.name);
        echo.extra.insert("context_length".into(), WINDOW.into());
        Ok(vec![echo])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_counts_turns_and_messages() {
        let messages =
            [(ChatRole::System, "be kind"), (ChatRole::User, "a"), (ChatRole::Assistant, "x"), (ChatRole::User, "b c")];
        let completion = reply(messages.into_iter(), None);
        assert_eq!(completion.text, "echo: b c [turn 2, 4 messages in context]");
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert_eq!(
            completion.usage.unwrap(),
            TokenCounts { input: 25, output: 15, cached: 0, reasoning: 0, cache_write: 0 }
        );
    }

    #[test]
    fn reply_is_cut_at_max_tokens() {
        let completion = reply([(ChatRole::User, "one two three")].into_iter(), Some(3));
        assert_eq!(completion.text, "echo: one two");
        assert_eq!(completion.finish_reason, FinishReason::Length);
    }
}
