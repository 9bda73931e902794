//! The scrubber on its own: every form a secret may take in a text, secrets cut across a stream's chunks, and
//! what is left alone.

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::*;

const KEY: &str = "sk-up/stream+key=42";

fn scrubber() -> Scrubber {
    Scrubber::new([KEY, "short", ""])
}

#[test]
fn a_secret_is_scrubbed_in_every_form_it_is_quoted_in() {
    let forms = [
        KEY.to_string(),
        format!("Bearer {KEY}"),
        "sk-up%2Fstream%2Bkey%3D42".into(),
        "sk-up%2fstream%2bkey%3d42".into(),
        "%73%6B%2D%75%70%2F%73%74%72%65%61%6D%2B%6B%65%79%3D%34%32".into(),
        "sk-up\\/stream+key=42".into(),
        "\\u0073k-up\\/str\\u0065am+key\\u003d42".into(),
        "sk-up\\/stream%2Bkey\\u003D42".into(),
        "sk-up%252Fstream%25252Bkey%3D42".into(),
        "\\\\u0073k-up\\\\\\/stream+key\\\\u003d42".into(),
        "sk-up\\\\/stream+key=42".into(),
    ];
    for form in forms {
        let text = format!("Internal failure for {form}: try again");
        let scrubbed = scrubber().scrub(&text).into_owned();
        let bearer = if form.starts_with("Bearer") { "Bearer " } else { "" };
        assert_eq!(scrubbed, format!("Internal failure for {bearer}[redacted]: try again"), "{form}");
    }
}

#[test]
fn a_space_may_be_a_plus_and_a_character_a_surrogate_pair() {
    let backslash = Scrubber::new(["back\\slash-key"]);
    for form in ["back\\slash-key", "back\\\\slash-key", "back\\\\\\\\slash-key", "back%5Cslash-key"] {
        assert_eq!(backslash.scrub(&format!("<{form}>")), "<[redacted]>", "{form}");
    }
    let scrubber = Scrubber::new(["pass word 😀 é"]);
    assert_eq!(scrubber.scrub("x=pass+word%20\\ud83d\\ude00+%C3%A9&y"), "x=[redacted]&y");
    assert_eq!(scrubber.scrub("pass word 😀 \\u00e9."), "[redacted].");
}

#[test]
fn short_and_unknown_secrets_and_near_misses_are_left_alone() {
    let text = "short sk-up/stream+key=4 sk-up%2Fstream%2 sk-up%2Xstream \\u00";
    assert!(matches!(scrubber().scrub(text), Cow::Borrowed(_)));
    assert!(matches!(Scrubber::default().scrub(KEY), Cow::Borrowed(_)));
    assert_eq!(scrubber().scrub(&format!("{KEY}{KEY}!{KEY}")), "[redacted][redacted]![redacted]");
}

#[test]
fn a_request_s_own_key_is_scrubbed_with_the_configured_ones() {
    let client = Secret("sk-client-passthrough".into());
    let text = format!("{KEY} and {}", client.0);
    let scrubbed = scrubber().with(Some(&client)).scrub(&text).into_owned();
    assert_eq!(scrubbed, "[redacted] and [redacted]");
    assert_eq!(scrubber().scrub(&text), format!("[redacted] and {}", client.0));
    let short = Secret("abc".into());
    assert_eq!(scrubber().with(Some(&short)).scrub("abc abc"), "abc abc");
}

#[test]
fn the_configuration_s_secrets_are_all_scrubbed() {
    let mut config = Config {
        database_url: "postgres://app:p%40ss-w0rd-db@db:5432/threadline?sslmode=verify-full".into(),
        ..Config::default()
    };
    let upstream = |key: &str| crate::config::UpstreamConfig {
        api_key: Some(Secret(key.into())),
        ..crate::config::UpstreamConfig::single("http://127.0.0.1:9/v1", &crate::config::DefaultUpstream::default())
    };
    config.upstreams = vec![upstream("sk-first-upstream"), upstream("sk-second-upstream")];
    let entry = |key: Option<&str>, digest: Option<&str>| crate::config::KeyEntry {
        tenant: "t".into(),
        key: key.map(|key| Secret(key.into())),
        key_sha256: digest.map(str::to_string),
    };
    config.auth.keys = vec![entry(Some("sk-client-one"), None), entry(None, Some(&"ab".repeat(32)))];
    config.auth.admin_keys = vec![entry(Some("sk-admin-one"), None)];
    config.auth.passthrough_secret = Some(Secret("passthrough-secret".into()));
    config.context.compaction_key = Some(Secret("compaction-key-base64".into()));
    let scrubber = Scrubber::from_config(&config);
    let secrets = [
        "sk-first-upstream",
        "sk-second-upstream",
        "sk-client-one",
        "sk-admin-one",
        "passthrough-secret",
        "compaction-key-base64",
        "p@ss-w0rd-db",
        "p%40ss-w0rd-db",
    ];
    for secret in secrets {
        assert_eq!(scrubber.scrub(&format!("<{secret}>")), "<[redacted]>", "{secret}");
    }
}

#[test]
fn a_text_that_may_go_on_is_scanned_up_to_where_a_secret_could_start() {
    let scrubber = scrubber();
    let (out, scanned) = scrubber.scan(b"data: sk-up/str", false);
    assert_eq!((out, scanned), (None, 6));
    let (out, scanned) = scrubber.scan(b"data: sk-up%2", false);
    assert_eq!((out, scanned), (None, 6));
    let (out, scanned) = scrubber.scan(format!("a {KEY} b s").as_bytes(), false);
    assert_eq!((out.as_deref(), scanned), (Some(&b"a [redacted] b "[..]), KEY.len() + 5));
    let (out, scanned) = scrubber.scan(b"data: sk-up/str", true);
    assert_eq!((out, scanned), (None, 15));
}

#[test]
fn raw_text_cut_after_scrubbing_keeps_no_piece_of_a_secret() {
    let scrubber = scrubber();
    let mut text = "x".repeat(490);
    text.push_str(KEY);
    let (scrubbed, _) = scrubber.scan(text.as_bytes(), true);
    assert!(String::from_utf8(scrubbed.unwrap()).unwrap().ends_with("x[redacted]"));
    assert!(scrubber.reach() >= KEY.len() * 6);
}

#[tokio::test]
async fn a_stream_is_scrubbed_across_its_chunks_and_held_back_only_where_a_secret_could_start() {
    let chunks = ["data: {\"error\":\"for sk-up", "%2Fstream+ke", "y=42\"}\n\n", "data: s", "k-\n\n"];
    let bytes: ByteStream = stream::iter(chunks.map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))).boxed();
    let out: Vec<Bytes> = scrubber().scrub_stream(bytes).map(Result::unwrap).collect().await;
    let texts: Vec<&str> = out.iter().map(|chunk| std::str::from_utf8(chunk).unwrap()).collect();
    assert_eq!(texts, ["data: {\"error\":\"for ", "[redacted]\"}\n\n", "data: ", "sk-\n\n"]);
    let mut answer = serde_json::json!({"choices": [{"message": {"content": format!("{KEY}!")}}], "n": 1});
    scrubber().scrub_json(&mut answer);
    assert_eq!(answer, serde_json::json!({"choices": [{"message": {"content": "[redacted]!"}}], "n": 1}));
}
