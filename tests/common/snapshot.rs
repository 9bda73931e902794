//! Snapshots of wire JSON with what changes from run to run replaced: each generated id becomes `<prefix>_<n>` in
//! the order ids first appear (so an id repeated across events stays visibly the same), timestamps `[timestamp]`
//! and measured durations `[seconds]`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

const TIMESTAMPS: [&str; 3] = ["created_at", "completed_at", "created"];
const DURATIONS: [&str; 2] = ["tokens_per_second", "time_to_first_token_seconds"];

/// `value` (one or many values, redacted together) ready for `insta::assert_json_snapshot!`.
pub fn redact(value: &impl Serialize) -> Value {
    let mut ids = HashMap::new();
    redact_value(serde_json::to_value(value).unwrap(), None, &mut ids)
}

fn redact_value(value: Value, key: Option<&str>, ids: &mut HashMap<String, String>) -> Value {
    match value {
        Value::Number(_) if key.is_some_and(|k| TIMESTAMPS.contains(&k)) => Value::from("[timestamp]"),
        Value::Number(_) if key.is_some_and(|k| DURATIONS.contains(&k)) => Value::from("[seconds]"),
        Value::String(text) => match generated_id(&text).map(str::to_string) {
            Some(prefix) => {
                let next = format!("{prefix}_{}", ids.len() + 1);
                Value::String(ids.entry(text).or_insert(next).clone())
            }
            None => Value::String(text),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(|item| redact_value(item, None, ids)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = redact_value(v, Some(&k), ids);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The prefix of an id threadline generated (`resp_` + 32 hex digits …).
fn generated_id(text: &str) -> Option<&str> {
    let (prefix, hex) = text.split_once('_')?;
    let generated = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (generated && prefix.bytes().all(|b| b.is_ascii_lowercase())).then_some(prefix)
}
