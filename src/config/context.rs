//! `[context]`: how conversations are kept inside each model's context window — its size, how tokens are counted,
//! and the strategy (summarize, keep the last turns) applied per model.

use serde::Deserialize;

use super::ModelPattern;
use super::Secret;
use crate::tokens::{Encoding, TokenCounter, DEFAULT_IMAGE_TOKENS};

/// Context windows, token counting and long-conversation strategies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// The window of a model that neither `models`, nor a backend's overflow answer, nor its upstream's model list gives
    /// one for. Unset (the default): such a model's context is sent whole, and the backend decides.
    pub default_window: Option<u64>,
    /// Share of the window kept free for the answer when a request sets no `max_output_tokens`.
    pub output_share: f64,
    /// The tokenizer's encoding.
    pub encoding: Encoding,
    /// What one image or file in the input counts for.
    pub image_tokens: u32,
    /// What every turn of a model does when its context grows long.
    pub strategy: Strategy,
    /// `summarize`: the share of the window past which the oldest part of the context is summarized.
    pub compact_threshold: f64,
    /// `last_turns`: how many of the latest whole turns of history are sent.
    pub last_turns: u32,
    /// The key that seals compaction summaries (32 bytes, base64); unset: one is made and kept in the database.
    pub compaction_key: Option<Secret>,
    /// Settings for the models whose names match a pattern: the first match wins over the defaults above.
    pub models: Vec<ModelContext>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            default_window: None,
            output_share: 0.25,
            encoding: Encoding::default(),
            image_tokens: DEFAULT_IMAGE_TOKENS,
            strategy: Strategy::None,
            compact_threshold: 0.8,
            last_turns: 20,
            compaction_key: None,
            models: Vec::new(),
        }
    }
}

/// What a turn does when its context grows long (besides a request's own `truncation` and `context_management`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Nothing: the request's `truncation` decides.
    #[default]
    None,
    /// Summarize the oldest part of the context once it passes `compact_threshold` of the window.
    Summarize,
    /// Send only the last `last_turns` whole turns of history.
    LastTurns,
}

/// Context settings of the models matching `models`; each unset field keeps the `[context]` default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelContext {
    /// Model name patterns (`*` matches any run of characters, `?` any one character).
    pub models: Vec<ModelPattern>,
    #[serde(default)]
    pub window: Option<u64>,
    #[serde(default)]
    pub encoding: Option<Encoding>,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    #[serde(default)]
    pub compact_threshold: Option<f64>,
    #[serde(default)]
    pub last_turns: Option<u32>,
}

/// The context settings that apply to one model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSettings {
    /// The configured window, if any (else what an overflow answer taught, the upstream's report, `default_window`).
    pub window: Option<u64>,
    pub counter: TokenCounter,
    pub strategy: Strategy,
    pub compact_threshold: f64,
    pub last_turns: u32,
}

impl ContextConfig {
    /// The settings for `model`: the first matching `models` entry over the defaults.
    pub fn for_model(&self, model: &str) -> ModelSettings {
        let entry = self.models.iter().find(|entry| entry.models.iter().any(|pattern| pattern.matches(model)));
        let pick = |get: fn(&ModelContext) -> Option<f64>, default: f64| entry.and_then(get).unwrap_or(default);
        ModelSettings {
            window: entry.and_then(|entry| entry.window),
            counter: TokenCounter::new(entry.and_then(|e| e.encoding).unwrap_or(self.encoding), self.image_tokens),
            strategy: entry.and_then(|entry| entry.strategy).unwrap_or(self.strategy),
            compact_threshold: pick(|entry| entry.compact_threshold, self.compact_threshold),
            last_turns: entry.and_then(|entry| entry.last_turns).unwrap_or(self.last_turns),
        }
    }

    /// Checks every value; an error names the key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: String, problem: &str| Err((key, problem.to_string()));
        if self.default_window == Some(0) {
            return fail("context.default_window".into(), "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.output_share) {
            return fail("context.output_share".into(), "must be at least 0 and below 1");
        }
        let share = |key: String, value: f64| match value > 0.0 && value <= 1.0 {
            true => Ok(()),
            false => fail(key, "must be above 0 and at most 1"),
        };
        share("context.compact_threshold".into(), self.compact_threshold)?;
        for (i, entry) in self.models.iter().enumerate() {
            if entry.models.is_empty() {
                return fail(format!("context.models[{i}].models"), "names no models");
            }
            if entry.window == Some(0) {
                return fail(format!("context.models[{i}].window"), "must be at least 1");
            }
            if let Some(threshold) = entry.compact_threshold {
                share(format!("context.models[{i}].compact_threshold"), threshold)?;
            }
        }
        Ok(())
    }
}
