//! Secrets scrubbed from the text an upstream sends back before threadline relays, stores or logs it. A backend (or
//! a proxy in front of it) may quote the request it was sent — `Internal failure for Bearer sk-…` — so every secret
//! threadline holds is replaced by `[redacted]` wherever it appears in such text, in any form a quote may give it: as
//! it is, percent-encoded (hex digits in either case, `+` for a space, also encoded again: `%252F`), JSON-escaped
//! (`\/`, `\u0073`, a surrogate pair, also escaped again: `\\u0073`), or any mix of these, character by character.
//!
//! A `Scrubber` is built once from the configuration (`from_config`: each upstream's key, the client keys known in
//! plain, the server's own secrets, the database password) and held by every HTTP backend, which scrubs each error
//! it makes of a backend's text, and the answers `/v1/chat/completions` passes through as they are (`scrub_json`,
//! `scrub_stream`: a stream's error event is in its bytes); a request made with a client's own key (`passthrough`)
//! scrubs with that key too (`with`). Secrets shorter than `MIN_SECRET_CHARS` characters are left alone: scrubbing a
//! short one would wipe ordinary words.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::http::ByteStream;
use crate::config::{Config, Secret};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The fewest characters a secret has to be scrubbed.
pub const MIN_SECRET_CHARS: usize = 8;

/// The longest form one character of a secret may take in a text (a JSON surrogate pair, `\ud83d\ude00`).
const LONGEST_FORM: usize = 12;

/// A stream being scrubbed: the bytes held back, which could begin a secret.
struct Passing {
    bytes: ByteStream,
    scrubber: Scrubber,
    held: Vec<u8>,
    ended: bool,
}

/// Every secret to scrub, and the request's own key when it has one.
#[derive(Clone, Default)]
pub struct Scrubber {
    secrets: Arc<[Box<str>]>,
    key: Option<Arc<str>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len() + usize::from(self.key.is_some()))
    }
}

impl Scrubber {
    /// A scrubber of these secrets (each shorter than `MIN_SECRET_CHARS` left out).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut kept: Vec<Box<str>> = secrets.into_iter().filter(|s| long_enough(s)).map(Box::from).collect();
        kept.sort_unstable();
        kept.dedup();
        Self { secrets: kept.into(), key: None }
    }

    /// Every secret the configuration holds in plain: each upstream's key, the client and admin keys given as keys
    /// (not as digests), the passthrough and compaction secrets, and the database password (of the URL, or
    /// `PGPASSWORD`).
    pub fn from_config(config: &Config) -> Self {
        let upstreams = config.upstreams.iter().filter_map(|upstream| upstream.api_key.as_ref());
        let auth = &config.auth;
        let clients = auth.keys.iter().chain(&auth.admin_keys).filter_map(|entry| entry.key.as_ref());
        let own = [&config.upstream.api_key, &auth.passthrough_secret, &config.context.compaction_key];
        let secrets = upstreams.chain(clients).chain(own.into_iter().flatten()).map(|Secret(secret)| secret.as_str());
        let mut passwords = crate::config::database_passwords(&config.database_url);
        // Postgres takes the password from the environment when the URL gives none.
        if config.database_url.starts_with("postgres") {
            passwords.extend(std::env::var("PGPASSWORD").ok());
        }
        Self::new(secrets.chain(passwords.iter().map(String::as_str)))
    }

    /// This scrubber with the key a request is made with, too.
    pub fn with(&self, key: Option<&Secret>) -> Self {
        let key = key.map(|Secret(key)| key.as_str()).filter(|key| long_enough(key));
        Self { secrets: self.secrets.clone(), key: key.map(Arc::from).or_else(|| self.key.clone()) }
    }

    /// The text with every secret in it replaced by `[redacted]`.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let (scrubbed, _) = self.scan(text.as_bytes(), true);
        match scrubbed {
            None => Cow::Borrowed(text),
            Some(bytes) => Cow::Owned(
                String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
            ),
        }
    }

    /// `scrub`, of an owned text.
    pub fn scrub_owned(&self, text: String) -> String {
        match self.scrub(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(scrubbed) => scrubbed,
        }
    }

    /// Every string in a JSON value, scrubbed.
    pub fn scrub_json(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(scrubbed) = self.scrub(text) {
                    *text = scrubbed;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub_json(item)),
            Value::Object(fields) => fields.values_mut().for_each(|field| self.scrub_json(field)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A stream of bytes, scrubbed as it passes: bytes that could begin a secret wait for the next chunk (at the end
    /// of the stream they go, scrubbed; when it fails, they are dropped).
    pub fn scrub_stream(&self, bytes: ByteStream) -> ByteStream {
        if self.all().next().is_none() {
            return bytes;
        }
        let passing = Passing { bytes, scrubber: self.clone(), held: Vec::new(), ended: false };
        stream::unfold(passing, |mut passing| async move {
            while !passing.ended {
                let at_end = match passing.bytes.next().await {
                    Some(Ok(chunk)) => {
                        passing.held.extend_from_slice(&chunk);
                        false
                    }
                    Some(Err(err)) => {
                        passing.ended = true;
                        return Some((Err(err), passing));
                    }
                    None => {
                        passing.ended = true;
                        true
                    }
                };
                let (scrubbed, scanned) = passing.scrubber.scan(&passing.held, at_end);
                let out = scrubbed.unwrap_or_else(|| passing.held[..scanned].to_vec());
                passing.held.drain(..scanned);
                if !out.is_empty() {
                    return Some((Ok(Bytes::from(out)), passing));
                }
            }
            None
        })
        .boxed()
    }

    /// How many bytes past a cut in a text a secret starting before the cut may reach.
    pub fn reach(&self) -> usize {
        self.all().map(|secret| secret.chars().count() * LONGEST_FORM).max().unwrap_or(0)
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|secret| &**secret).chain(self.key.as_deref())
    }

    /// Scrubs `text`: `None` when nothing in it was a secret. Unless `at_end`, the text may go on, so a secret that
    /// could start in it and end past it stops the scan there: the second value is how far the scan went (the length
    /// of `text` when `at_end`), and the bytes from there on are not in the first.
    fn scan(&self, text: &[u8], at_end: bool) -> (Option<Vec<u8>>, usize) {
        let mut out: Option<Vec<u8>> = None;
        let (mut copied, mut at) = (0, 0);
        while at < text.len() {
            if !b"%\\+".contains(&text[at]) && !self.all().any(|secret| secret.as_bytes()[0] == text[at]) {
                at += 1;
                continue;
            }
            let mut longest: Option<usize> = None;
            for secret in self.all() {
                let found = found_at(text, at, secret);
                if found.partial && !at_end {
                    return (out.map(|mut out| finish(&mut out, &text[copied..at])), at);
                }
                longest = longest.max(found.end);
            }
            match longest {
                Some(end) => {
                    let out = out.get_or_insert_with(Vec::new);
                    out.extend_from_slice(&text[copied..at]);
                    out.extend_from_slice(REDACTED.as_bytes());
                    (copied, at) = (end, end);
                }
                None => at += 1,
            }
        }
        (out.map(|mut out| finish(&mut out, &text[copied..])), text.len())
    }
}

fn long_enough(secret: &str) -> bool {
    secret.chars().count() >= MIN_SECRET_CHARS
}

fn finish(out: &mut Vec<u8>, rest: &[u8]) -> Vec<u8> {
    out.extend_from_slice(rest);
    std::mem::take(out)
}

/// A secret found at a place in a text: where its longest form found there ends, and whether the text ran out
/// while a form of it was still matching.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    end: Option<usize>,
    partial: bool,
}

/// Whether `secret`, in any of its forms, is at `start` of `text`.
fn found_at(text: &[u8], start: usize, secret: &str) -> Found {
    let mut found = Found::default();
    let mut ends = vec![start];
    for c in secret.chars() {
        let mut next = Vec::new();
        for &at in &ends {
            char_ends(text, at, c, &mut next, &mut found.partial);
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            return found;
        }
        ends = next;
    }
    found.end = ends.last().copied();
    found
}

/// Adds to `ends` where each form of `c` starting at `at` of `text` ends; notes when the text runs out first.
fn char_ends(text: &[u8], at: usize, c: char, ends: &mut Vec<usize>, partial: &mut bool) {
    if c == '\\' {
        // An escaped backslash, escaped once or twice.
        let run = backslashes(text, at);
        ends.extend([2, 4].into_iter().filter(|&n| run >= n).map(|n| at + n));
        *partial |= run > 0 && at + run == text.len();
    }
    if text.get(at) == Some(&b'\\') {
        match json_escape(text, at) {
            Escape::Char(escaped, end) if escaped == c => ends.push(end),
            Escape::Truncated => *partial = true,
            Escape::Char(..) | Escape::None => {}
        }
    }
    if c == ' ' && text.get(at) == Some(&b'+') {
        ends.push(at + 1);
    }
    let mut buffer = [0; 4];
    let mut positions = vec![at];
    for &byte in c.encode_utf8(&mut buffer).as_bytes() {
        let mut next = Vec::new();
        for &at in &positions {
            byte_ends(text, at, byte, &mut next, partial);
        }
        positions = next;
    }
    ends.extend(positions);
}

/// Adds to `ends` where `byte` at `at` of `text` ends, as itself or percent-encoded.
fn byte_ends(text: &[u8], at: usize, byte: u8, ends: &mut Vec<usize>, partial: &mut bool) {
    let Some(&first) = text.get(at) else {
        *partial = true;
        return;
    };
    if first == byte {
        ends.push(at + 1);
    }
    if first == b'%' {
        // `%XX`, or encoded again: `%25XX`, `%2525XX`…
        let mut digits = at + 1;
        while let Some(value) = hex_value(text.get(digits..digits + 2)) {
            if value == u32::from(byte) {
                ends.push(digits + 2);
            }
            if value != 0x25 {
                return;
            }
            digits += 2;
        }
        *partial |= text.len() < digits + 2 && text[digits..].iter().all(u8::is_ascii_hexdigit);
    }
}

/// A JSON escape in a text.
enum Escape {
    /// The character it stands for, and where it ends.
    Char(char, usize),
    /// The text ends before the escape does.
    Truncated,
    /// No escape of a character.
    None,
}

/// The escape at `at` of `text`: a backslash, or several (JSON text escaped again), then what it escapes (an
/// escaped backslash is matched in `char_ends`).
fn json_escape(text: &[u8], at: usize) -> Escape {
    let body = at + backslashes(text, at);
    let short = |c| Escape::Char(c, body + 1);
    let character = |value, end| char::from_u32(value).map_or(Escape::None, |c| Escape::Char(c, end));
    match text.get(body) {
        None => Escape::Truncated,
        Some(b'"') => short('"'),
        Some(b'/') => short('/'),
        Some(b'b') => short('\u{8}'),
        Some(b'f') => short('\u{c}'),
        Some(b'n') => short('\n'),
        Some(b'r') => short('\r'),
        Some(b't') => short('\t'),
        Some(b'u') => match code_unit(text, at) {
            Unit::Value(high, end) if (0xd800..0xdc00).contains(&high) => match code_unit(text, end) {
                Unit::Value(low, end) if (0xdc00..0xe000).contains(&low) => {
                    character(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00), end)
                }
                Unit::Truncated => Escape::Truncated,
                Unit::Value(..) | Unit::None => Escape::None,
            },
            Unit::Value(value, end) => character(value, end),
            Unit::Truncated => Escape::Truncated,
            Unit::None => Escape::None,
        },
        Some(_) => Escape::None,
    }
}

/// A `\uXXXX` escape in a text.
enum Unit {
    /// The code unit it gives, and where it ends.
    Value(u32, usize),
    /// The text ends before the escape does.
    Truncated,
    /// No such escape.
    None,
}

/// The `\uXXXX` at `at` of `text` (its backslash perhaps escaped again).
fn code_unit(text: &[u8], at: usize) -> Unit {
    let run = backslashes(text, at);
    let given = text.get(at + run..).unwrap_or_default();
    if run == 0 {
        return if given.is_empty() { Unit::Truncated } else { Unit::None };
    }
    if given.len() < 5 {
        let could_be = given.first().is_none_or(|&u| u == b'u') && given.iter().skip(1).all(u8::is_ascii_hexdigit);
        return if could_be { Unit::Truncated } else { Unit::None };
    }
    match (given[0], hex_value(given.get(1..5))) {
        (b'u', Some(value)) => Unit::Value(value, at + run + 5),
        _ => Unit::None,
    }
}

/// How many backslashes run from `at` of `text`.
fn backslashes(text: &[u8], at: usize) -> usize {
    text.get(at..).unwrap_or_default().iter().take_while(|&&b| b == b'\\').count()
}

/// The number some hex digits write.
fn hex_value(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    let all_hex = digits.iter().all(u8::is_ascii_hexdigit);
    all_hex.then(|| digits.iter().fold(0, |value, &digit| value * 16 + (digit as char).to_digit(16).unwrap_or(0)))
}

#[cfg(test)]
mod tests;
