//! `[retention]`: how long stored responses and conversations are kept, and how the purge that erases expired data
//! runs. A duration of `"none"` (or `"0"`) keeps data forever, or turns the periodic purge off.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How long data is kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How long a stored response is kept after it was created (a chain is kept whole while any turn continuing it
    /// is); `None`: forever.
    #[serde(deserialize_with = "optional_duration")]
    pub responses: Option<Duration>,
    /// How long a conversation is kept after its last use (created, items added, a turn appended, metadata
    /// updated); `None`: forever.
    #[serde(deserialize_with = "optional_duration")]
    pub conversations: Option<Duration>,
    /// How often each server erases expired data; `None`: never (run `threadline purge` instead).
    #[serde(deserialize_with = "optional_duration")]
    pub purge_interval: Option<Duration>,
    /// Rows the purge deletes per transaction.
    pub purge_batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            responses: Some(Duration::from_secs(30 * 86_400)),
            conversations: None,
            purge_interval: Some(Duration::from_secs(3600)),
            purge_batch: 500,
        }
    }
}

/// Most rows of one purge batch: each is a bound parameter of its statements.
pub const MAX_PURGE_BATCH: u32 = 10_000;

impl RetentionConfig {
    /// Checks the values; an error names the key and the problem.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, problem: &str| Err((format!("retention.{key}"), problem.to_string()));
        for (key, kept) in [("responses", self.responses), ("conversations", self.conversations)] {
            if kept.is_some_and(|kept| kept < Duration::from_secs(1)) {
                return fail(key, "must be at least 1s (\"none\" keeps data forever)");
            }
        }
        if self.purge_interval.is_some_and(|every| every < Duration::from_secs(1)) {
            return fail("purge_interval", "must be at least 1s (\"none\" turns the periodic purge off)");
        }
        if !(1..=MAX_PURGE_BATCH).contains(&self.purge_batch) {
            return fail("purge_batch", &format!("must be between 1 and {MAX_PURGE_BATCH}"));
        }
        Ok(())
    }
}

/// A duration written as humantime (`"30d"`, `"1h"`), or `"none"`, `"0"` or `0` for none.
fn optional_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Number(u64),
    }
    let expected = "a duration such as \"30d\" or \"1h\", or \"none\"";
    match Written::deserialize(deserializer).map_err(|_| serde::de::Error::custom(format!("expected {expected}")))? {
        Written::Number(0) => Ok(None),
        Written::Text(text) if ["none", "0"].contains(&text.trim()) => Ok(None),
        Written::Text(text) => humantime_serde::re::humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|err| serde::de::Error::custom(format!("'{text}' is not {expected} ({err})"))),
        Written::Number(n) => Err(serde::de::Error::custom(format!("'{n}' is not {expected} (give a unit)"))),
    }
}
