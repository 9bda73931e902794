//! The layering (defaults → file → environment → flags) and the validation of every key.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::{AuthMode, LogFormat, Strategy};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn file(text: &str) -> (tempfile::TempDir, Flags) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threadline.toml");
    std::fs::write(&path, text).unwrap();
    (dir, Flags { config: Some(path), ..Flags::default() })
}

fn error(flags: &Flags, vars: &[(&str, &str)]) -> String {
    load_from(flags, env(vars)).unwrap_err().to_string()
}

#[test]
fn defaults_run_on_a_laptop() {
    let config = load_from(&Flags::default(), Vec::new()).unwrap();
    assert_eq!(config.listen, "127.0.0.1:8080");
    assert_eq!(config.database_url, "sqlite://threadline.db");
    assert_eq!(config.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams[0].base_url.as_deref(), Some(OLLAMA_URL));
    assert_eq!(config.upstreams[0].kind, UpstreamKind::ChatCompletions);
    assert_eq!(config.upstreams[0].timeout, Duration::from_secs(600));
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let (_dir, mut flags) =
        file("listen = \"0.0.0.0:9000\"\n[database]\nmax_connections = 4\nacquire_timeout = \"2s\"\n");
    let vars = [("THREADLINE_DATABASE__MAX_CONNECTIONS", "7"), ("THREADLINE_LISTEN", "127.0.0.1:9001")];
    let config = load_from(&flags, env(&vars)).unwrap();
    assert_eq!((config.listen.as_str(), config.database.max_connections), ("127.0.0.1:9001", 7));
    assert_eq!(config.database.acquire_timeout, Duration::from_secs(2));
    flags.listen = Some("127.0.0.1:9002".into());
    assert_eq!(load_from(&flags, env(&vars)).unwrap().listen, "127.0.0.1:9002");
}

#[test]
fn the_variables_users_rely_on_keep_working() {
    let vars = [
        ("THREADLINE_DATABASE_URL", "postgres://db/x"),
        ("THREADLINE_UPSTREAM_URL", "http://10.0.0.1:8000/v1"),
        ("THREADLINE_UPSTREAM_API_KEY", "0123"),
        ("THREADLINE_UPSTREAM__TIMEOUT", "45s"),
        ("THREADLINE_UPSTREAM__CONNECT_TIMEOUT", "250ms"),
        ("THREADLINE_CONFIG", "ignored-here.toml"),
    ];
    let config = load_from(&Flags::default(), env(&vars)).unwrap();
    assert_eq!(config.database_url, "postgres://db/x");
    let upstream = &config.upstreams[0];
    assert_eq!((upstream.name.as_str(), upstream.base_url.as_deref()), ("default", Some("http://10.0.0.1:8000/v1")));
    assert_eq!(upstream.api_key, Some(Secret("0123".into())), "a numeric key stays text");
    assert_eq!((upstream.timeout, upstream.connect_timeout), (Duration::from_secs(45), Duration::from_millis(250)));
    let echo = load_from(&Flags::default(), env(&[("THREADLINE_UPSTREAM_URL", "echo")])).unwrap();
    assert_eq!((echo.upstreams[0].kind, echo.upstreams[0].base_url.clone()), (UpstreamKind::Echo, None));
    let flags = Flags { upstream_url: Some("echo".into()), ..Flags::default() };
    assert_eq!(load_from(&flags, env(&vars)).unwrap().upstreams[0].kind, UpstreamKind::Echo, "--upstream wins");
}

#[test]
fn the_upstream_url_replaces_the_files_upstreams() {
    let (_dir, flags) = file("[[upstreams]]\nname = \"a\"\nkind = \"chat_completions\"\nbase_url = \"http://x/v1\"\nmodels = [\"llama3*\"]\ntimeout = \"1m\"\n");
    let config = load_from(&flags, Vec::new()).unwrap();
    assert_eq!(
        (config.upstreams[0].models.clone(), config.upstreams[0].timeout),
        (vec!["llama3*".into()], Duration::from_secs(60))
    );
    let config = load_from(&flags, env(&[("THREADLINE_UPSTREAM_URL", "echo")])).unwrap();
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams[0].kind, UpstreamKind::Echo);
}

#[test]
fn a_whole_upstream_list_can_come_from_the_environment() {
    let list = r#"[{name = "e", kind = "echo", models = ["a*"]}, {name = "v", kind = "chat_completions", base_url = "http://v/v1"}]"#;
    let config = load_from(&Flags::default(), env(&[("THREADLINE_UPSTREAMS", list)])).unwrap();
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["e", "v"]);
    assert_eq!(config.upstreams[1].timeout, Duration::from_secs(600));
}

#[test]
fn errors_name_the_key() {
    let none = Flags::default();
    let message = error(&none, &[("THREADLINE_DATABASE__MAX_CONNECTIONS", "many")]);
    assert!(message.contains("THREADLINE_DATABASE__MAX_CONNECTIONS"), "{message}");
    let message = error(&none, &[("THREADLINE_DRAIN_TIMEOUT", "soon")]);
    assert!(message.contains("THREADLINE_DRAIN_TIMEOUT"), "{message}");
    let message = error(&none, &[("THREADLINE_DATABASE__MAX_CONNECTION", "3")]);
    assert!(message.contains("max_connection"), "{message}");
    let message = error(&none, &[("THREADLINE_DATABASE__MAX_CONNECTIONS", "0")]);
    assert_eq!(message, "invalid configuration: database.max_connections: must be at least 1");
    let message = error(&none, &[("THREADLINE_DATABASE_URL", "mysql://x")]);
    assert_eq!(message, "invalid configuration: database_url: expected sqlite://PATH or postgres://…");
    let message = error(&none, &[("THREADLINE_UPSTREAM_URL", "localhost:11434")]);
    assert_eq!(
        message,
        "invalid configuration: upstreams[0].base_url: 'localhost:11434' is not an http:// or https:// URL"
    );
    let (_dir, flags) = file("listn = \"x\"\n");
    let message = error(&flags, &[]);
    assert!(message.contains("listn"), "{message}");
    let (_dir, flags) = file("[[upstreams]]\nname = \"a\"\nkind = \"chat_completions\"\n");
    let message = error(&flags, &[]);
    assert_eq!(message, "invalid configuration: upstreams[0].base_url: a chat_completions upstream needs one");
    let (_dir, flags) =
        file("[[upstreams]]\nname = \"a\"\nkind = \"echo\"\n[[upstreams]]\nname = \"a\"\nkind = \"echo\"\n");
    assert_eq!(error(&flags, &[]), "invalid configuration: upstreams[1].name: 'a' is used twice");
    let (_dir, flags) =
        file("[[upstreams]]\nname = \"a\"\nkind = \"echo\"\napi_key_env = \"THREADLINE_TEST_SURELY_UNSET\"\n");
    let message = error(&flags, &[]);
    assert_eq!(message, "invalid configuration: upstreams[0].api_key_env: the environment variable THREADLINE_TEST_SURELY_UNSET is not set");
    let missing = Flags { config: Some("/nonexistent/threadline.toml".into()), ..Flags::default() };
    assert_eq!(error(&missing, &[]), "cannot read config file /nonexistent/threadline.toml");
}

#[test]
fn an_anthropic_upstream_parses_with_its_defaults_and_needs_a_base_url() {
    let (_dir, flags) = file(
        "[[upstreams]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\napi_key = \"sk-ant\"\nmodels = [\"claude-*\"]\n",
    );
    let config = load_from(&flags, Vec::new()).unwrap();
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.kind, UpstreamKind::Anthropic);
    assert_eq!(upstream.base_url.as_deref(), Some("https://api.anthropic.com/v1"));
    assert_eq!((upstream.max_tokens, upstream.prompt_cache), (4096, true));
    let (_dir, flags) = file(
        "[[upstreams]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\nmax_tokens = 8192\nprompt_cache = false\n",
    );
    let upstream = &load_from(&flags, Vec::new()).unwrap().upstreams[0];
    assert_eq!((upstream.max_tokens, upstream.prompt_cache), (8192, false));
    let (_dir, flags) = file("[[upstreams]]\nname = \"claude\"\nkind = \"anthropic\"\n");
    assert_eq!(error(&flags, &[]), "invalid configuration: upstreams[0].base_url: an anthropic upstream needs one");
    let (_dir, flags) =
        file("[[upstreams]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://x/v1\"\nmax_tokens = 0\n");
    assert_eq!(error(&flags, &[]), "invalid configuration: upstreams[0].max_tokens: must be at least 1");
}

#[test]
fn variables_that_name_no_setting_are_ignored() {
    let vars = [
        ("THREADLINE_SERVICE_HOST", "10.0.0.3"),
        ("THREADLINE_PORT", "tcp://10.0.0.3:8080"),
        ("THREADLINE_LISTEN", ""),
    ];
    let config = load_from(&Flags::default(), env(&vars)).unwrap();
    assert_eq!(config.listen, "127.0.0.1:8080", "an empty variable counts as unset");
    let vars = [("THREADLINE_CONFIG", "a.toml"), ("THREADLINE_LOG__FORMAT", "json"), ("THREADLINE_PORT", "1")];
    assert_eq!(unknown_variables(env(&vars)), ["THREADLINE_PORT"], "warned about once logging is set up");
}

#[test]
fn authentication_is_required_off_loopback_and_keys_come_from_the_environment() {
    let outside = Flags { listen: Some("0.0.0.0:8080".into()), ..Flags::default() };
    let message = error(&outside, &[]);
    assert!(message.contains("auth.mode") && message.contains("without authentication"), "{message}");
    let config = load_from(&outside, env(&[("THREADLINE_AUTH__MODE", "none")])).unwrap();
    assert!(config.auth.is_open("0.0.0.0:8080"));
    let vars = [("THREADLINE_API_KEYS", "alice:sk-1,bob:sk-2"), ("THREADLINE_ADMIN_KEYS", "ops:sk-3")];
    let config = load_from(&outside, env(&vars)).unwrap();
    assert_eq!(config.auth.mode, Some(AuthMode::Keys));
    let tenants: Vec<&str> = config.auth.keys.iter().map(|key| key.tenant.as_str()).collect();
    assert_eq!((tenants, config.auth.admin_keys.len()), (vec!["alice", "bob"], 1));
    assert!(unknown_variables(env(&vars)).is_empty());
    assert!(!format!("{config:?}").contains("sk-1"));
    let message = error(&outside, &[("THREADLINE_API_KEYS", "alice:sk-1,sk-2")]);
    assert!(message.contains("THREADLINE_API_KEYS: entry 2") && !message.contains("sk-2"), "{message}");
    let message = error(&Flags::default(), &[("THREADLINE_AUTH__MODE", "keys")]);
    assert!(message.contains("auth.keys"), "{message}");
    assert_eq!(load_from(&Flags::default(), Vec::new()).unwrap().auth.mode, Some(AuthMode::None));
}

#[test]
fn context_settings_come_from_the_environment() {
    let vars = env(&[
        ("THREADLINE_CONTEXT__DEFAULT_WINDOW", "32768"),
        ("THREADLINE_CONTEXT__STRATEGY", "summarize"),
        ("THREADLINE_CONTEXT__MODELS", r#"[{models = ["llama3*"], window = 8192, strategy = "last_turns"}]"#),
    ]);
    let config = load_from(&Flags::default(), vars).unwrap();
    assert_eq!(config.context.default_window, Some(32768));
    assert_eq!(config.context.strategy, Strategy::Summarize);
    let llama = config.context.for_model("llama3.1:8b");
    assert_eq!((llama.window, llama.strategy), (Some(8192), Strategy::LastTurns));
    assert_eq!(config.context.for_model("qwen").window, None);
    assert!(unknown_variables(env(&[("THREADLINE_CONTEXT__LAST_TURNS", "5")])).is_empty());
    let message = error(&Flags::default(), &[("THREADLINE_CONTEXT__OUTPUT_SHARE", "1.5")]);
    assert!(message.contains("context.output_share"), "{message}");
}

#[test]
fn the_log_format_is_a_setting() {
    assert_eq!(load_from(&Flags::default(), Vec::new()).unwrap().log.format, LogFormat::Text);
    let config = load_from(&Flags::default(), env(&[("THREADLINE_LOG__FORMAT", "json")])).unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    let message = error(&Flags::default(), &[("THREADLINE_LOG__FORMAT", "yaml")]);
    assert!(message.contains("`yaml`") && message.contains("THREADLINE_LOG__FORMAT"), "{message}");
}

#[test]
fn the_example_config_loads_and_names_every_keys_variable() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/threadline.toml");
    let flags = Flags { config: Some(path.clone()), ..Flags::default() };
    let config = load_from(&flags, Vec::new()).unwrap();
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["ollama", "echo"]);
    assert_eq!(config.upstreams[0].models, ["llama3*", "qwen*"]);
    let text = std::fs::read_to_string(&path).unwrap();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let reference = std::fs::read_to_string(reference).unwrap();
    let mut section = String::new();
    for line in text.lines().map(|line| line.trim_start_matches("# ").trim()) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).to_string();
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else { continue };
        if !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') || section == "upstreams" {
            continue;
        }
        let variable = variable(&if section.is_empty() { key.to_string() } else { format!("{section}.{key}") });
        assert!(text.contains(&variable), "config/threadline.toml does not name {variable}");
        assert!(reference.contains(&variable), "docs/configuration.md does not name {variable}");
    }
}

#[test]
fn database_passwords_are_left_out_of_logged_urls() {
    use crate::config::without_password;
    assert_eq!(without_password("postgres://app:s3cret@db:5432/threadline"), "postgres://app:***@db:5432/threadline");
    assert_eq!(without_password("postgres://app@db/threadline"), "postgres://app@db/threadline");
    assert_eq!(without_password("sqlite://threadline.db"), "sqlite://threadline.db");
}

#[test]
fn secrets_are_hidden_from_debug() {
    let config = load_from(&Flags::default(), env(&[("THREADLINE_UPSTREAM_API_KEY", "sk-123")])).unwrap();
    assert!(!format!("{config:?}").contains("sk-123"));
}

#[test]
fn retention_durations_parse_none_and_errors_name_the_key() {
    let day = Duration::from_secs(86_400);
    let config = load_from(&Flags::default(), Vec::new()).unwrap().retention;
    assert_eq!(
        (config.responses, config.conversations, config.purge_interval, config.purge_batch),
        (Some(30 * day), None, Some(Duration::from_secs(3600)), 500)
    );
    let vars = [
        ("THREADLINE_RETENTION__RESPONSES", "none"),
        ("THREADLINE_RETENTION__CONVERSATIONS", "90d"),
        ("THREADLINE_RETENTION__PURGE_INTERVAL", "0"),
        ("THREADLINE_RETENTION__PURGE_BATCH", "3"),
    ];
    let config = load_from(&Flags::default(), env(&vars)).unwrap().retention;
    assert_eq!(
        (config.responses, config.conversations, config.purge_interval, config.purge_batch),
        (None, Some(90 * day), None, 3)
    );
    assert!(unknown_variables(env(&vars)).is_empty());
    let (_dir, flags) =
        file("[retention]\nresponses = \"0\"\nconversations = \"30d\"\npurge_interval = 0\npurge_batch = 10\n");
    let config = load_from(&flags, Vec::new()).unwrap().retention;
    assert_eq!((config.responses, config.conversations, config.purge_interval), (None, Some(30 * day), None));
    let config = load_from(&flags, env(&[("THREADLINE_RETENTION__RESPONSES", "30d")])).unwrap().retention;
    assert_eq!(config.responses, Some(30 * day), "the environment wins over the file");

    for bad in ["soon", "30", "-1d"] {
        let message = error(&Flags::default(), &[("THREADLINE_RETENTION__RESPONSES", bad)]);
        assert!(message.contains("THREADLINE_RETENTION__RESPONSES") && message.contains("\"none\""), "{message}");
    }
    let (_dir, flags) = file("[retention]\nconversations = \"forever\"\n");
    let message = error(&flags, &[]);
    assert!(message.contains("retention.conversations") && message.contains("'forever'"), "{message}");
    let message = error(&Flags::default(), &[("THREADLINE_RETENTION__PURGE_BATCH", "0")]);
    assert_eq!(message, "invalid configuration: retention.purge_batch: must be between 1 and 10000");
    let message = error(&Flags::default(), &[("THREADLINE_RETENTION__RESPONSES", "500ms")]);
    assert_eq!(
        message,
        "invalid configuration: retention.responses: must be at least 1s (\"none\" keeps data forever)"
    );
    let message = error(&Flags::default(), &[("THREADLINE_RETENTION__PURGE_INTERVAL", "10ms")]);
    assert_eq!(
        message,
        "invalid configuration: retention.purge_interval: must be at least 1s (\"none\" turns the periodic purge off)"
    );
}

#[test]
fn connection_deadlines_come_from_the_environment_and_must_be_positive() {
    let defaults = load_from(&Flags::default(), Vec::new()).unwrap().limits;
    let got =
        (defaults.header_read_timeout, defaults.idle_timeout, defaults.body_read_timeout, defaults.max_connections);
    assert_eq!(got, (Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(30), 4096));
    let vars = [
        ("THREADLINE_LIMITS__HEADER_READ_TIMEOUT", "2s"),
        ("THREADLINE_LIMITS__IDLE_TIMEOUT", "90s"),
        ("THREADLINE_LIMITS__BODY_READ_TIMEOUT", "500ms"),
        ("THREADLINE_LIMITS__MAX_CONNECTIONS", "100"),
    ];
    let limits = load_from(&Flags::default(), env(&vars)).unwrap().limits;
    let got = (limits.header_read_timeout, limits.idle_timeout, limits.body_read_timeout, limits.max_connections);
    assert_eq!(got, (Duration::from_secs(2), Duration::from_secs(90), Duration::from_millis(500), 100));
    let message = error(&Flags::default(), &[("THREADLINE_LIMITS__IDLE_TIMEOUT", "0s")]);
    assert_eq!(message, "invalid configuration: limits.idle_timeout: must be longer than 0s");
    let message = error(&Flags::default(), &[("THREADLINE_LIMITS__MAX_CONNECTIONS", "0")]);
    assert_eq!(message, "invalid configuration: limits.max_connections: must be at least 1");
}
