//! The server's settings, each documented once here with its default. `load.rs` layers them (defaults → TOML file
//! → `THREADLINE_*` environment → flags) and validates the result in one place at start-up.

mod auth;
mod context;
mod load;
mod pattern;
mod retention;

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

pub use auth::{AuthConfig, AuthMode, KeyEntry};
pub use context::{ContextConfig, ModelContext, ModelSettings, Strategy};
pub use load::{load, unknown_variables, Flags};
pub use pattern::ModelPattern;
pub use retention::{RetentionConfig, MAX_PURGE_BATCH};

/// The whole server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Where conversations are stored: `sqlite://PATH` (created on first run) or `postgres://…` (with `sslmode` and
    /// `sslrootcert` in the URL for TLS).
    pub database_url: String,
    /// How long a shutdown waits for running turns to finish and be stored before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Connection pool and timeouts of the database.
    pub database: DatabaseConfig,
    /// Request and chain limits.
    pub limits: Limits,
    /// Context windows, token counting and what long conversations do.
    pub context: ContextConfig,
    /// How long stored data is kept, and the purge that erases it.
    pub retention: RetentionConfig,
    /// Who may call the server, and which tenant each caller is.
    pub auth: AuthConfig,
    /// How background responses are run.
    pub background: BackgroundConfig,
    /// The single upstream serving every model: used when `upstreams` is empty, and replacing it when `url` is set.
    pub upstream: DefaultUpstream,
    /// The LLM backends, tried in order; a request goes to the first whose `models` match its model.
    pub upstreams: Vec<UpstreamConfig>,
    /// How the server logs.
    pub log: LogConfig,
    /// The MCP server (`/mcp` and `threadline mcp`).
    pub mcp: McpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://threadline.db".into(),
            drain_timeout: Duration::from_secs(30),
            database: DatabaseConfig::default(),
            limits: Limits::default(),
            context: ContextConfig::default(),
            retention: RetentionConfig::default(),
            auth: AuthConfig::default(),
            background: BackgroundConfig::default(),
            upstream: DefaultUpstream::default(),
            upstreams: Vec::new(),
            log: LogConfig::default(),
            mcp: McpConfig::default(),
        }
    }
}

/// The MCP server's settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// The model `stateful_chat` uses when a call names none; unset, such a call is an error.
    pub default_model: Option<String>,
}

/// The database connection pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most connections each replica opens.
    pub max_connections: u32,
    /// How long a request waits for a connection before it gets 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// How long one statement may run before it is cancelled (Postgres; SQLite waits this long for a lock).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// How long to keep retrying an unreachable database at start-up before giving up.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// When a SQLite commit waits for the disk: `normal` (a commit survives a crash of the process, not of the
    /// machine) or `full` (it also survives a power cut, at about a millisecond per commit).
    pub synchronous: Synchronous,
    /// Memory for resolved histories kept to answer the next turn without reading the database; 0 turns it off.
    pub history_cache_bytes: usize,
}

/// SQLite's `synchronous` setting (WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    Normal,
    Full,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(60),
            synchronous: Synchronous::Normal,
            history_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Limits that protect the server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body in bytes (larger bodies get 413), and WebSocket message (a larger one ends its
    /// socket).
    pub max_body_bytes: usize,
    /// Most turns a chain may hold; continuing a longer chain is a 400 `chain_too_deep`.
    pub max_chain_depth: u32,
    /// Largest upstream answer read, in bytes: a larger one is a 502 (or, streamed, ends the turn `failed`).
    pub max_upstream_reply_bytes: usize,
    /// Most items an `input` array may hold (`/v1/responses`, its `input_tokens` and `compact`, `/api/v1/chat`);
    /// more is a 400 `array_above_max_length`.
    pub max_input_items: usize,
    /// How long a request may take until its answer starts (a whole non-streamed answer; a stream once it has
    /// started is not cut); past it the client gets a 504 `timeout`, and a turn it started still runs and is stored.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most requests one tenant may have in progress (from when its body is in; a stream counts until it ends); more
    /// is a 429. 0: no limit.
    pub max_concurrent_requests_per_tenant: u32,
    /// Most requests one tenant may start per minute (spread evenly, bursts up to the whole minute's); more is a
    /// 429 with `retry-after`. 0: no limit.
    pub requests_per_minute_per_tenant: u32,
    /// How long a WebSocket on `/v1/responses` may stay open; then it gets an `error` event
    /// `websocket_connection_limit_reached` and is closed.
    #[serde(with = "humantime_serde")]
    pub websocket_lifetime: Duration,
    /// How long a client may take to send a request's headers, from its connection's opening, or on a kept-alive
    /// connection from the next request's first byte; past it the connection is closed without an answer.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress, from its last answer's end; then it is
    /// closed. A stream being answered, an answer its client is still reading and a WebSocket are never idle.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive whole, from the end of its headers; past it the request gets a
    /// 408 `request_timeout`. A request counts against its tenant's limits only once its body is in.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Most client connections open at once (a WebSocket's until it closes); past it new connections wait to be
    /// accepted. Lowered at start-up to three quarters of the process's open-file limit when that is smaller.
    pub max_connections: u32,
    /// Most bytes of request bodies held at once, by all requests together, while they arrive and until their
    /// requests are answered; a body that would pass it waits (within `body_read_timeout`). At least
    /// `max_body_bytes`.
    pub max_buffered_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_chain_depth: 10_000,
            max_upstream_reply_bytes: 16 * 1024 * 1024,
            max_input_items: 2048,
            request_timeout: Duration::from_secs(600),
            max_concurrent_requests_per_tenant: 64,
            requests_per_minute_per_tenant: 0,
            websocket_lifetime: Duration::from_secs(60 * 60),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_buffered_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Background responses (`background: true`): queued in the database, run by a bounded pool of workers on each
/// server, any of which may take a queued one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackgroundConfig {
    /// Most background responses this server runs at once; more wait, queued.
    pub workers: usize,
    /// How long a running background response stays claimed by its server without a sign of life from it: the
    /// server renews it as it runs, and when it lapses (the server died) another marks the response failed.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often a running background response saves its progress and checks whether it was cancelled, how often
    /// idle workers look for queued ones, and how often a stream of one running elsewhere looks for new events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self { workers: 16, lease: Duration::from_secs(30), poll_interval: Duration::from_millis(250) }
    }
}

/// Logging (to stderr; the `RUST_LOG` variable picks the levels, by default `info,sqlx=warn`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text`, for people, or `json`: one JSON object a line, with the request's span (its `request_id`).
    pub format: LogFormat,
}

/// The format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The single upstream of `--upstream-url` / `THREADLINE_UPSTREAM_URL`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultUpstream {
    /// A base URL such as `http://127.0.0.1:8000/v1`, or `echo` for the built-in offline model. When set, it
    /// replaces `upstreams`; when neither is set, Ollama at `http://127.0.0.1:11434/v1` serves every model.
    pub url: Option<String>,
    /// The API key sent to it as `Authorization: Bearer …`.
    pub api_key: Option<Secret>,
    /// How long to wait for a TCP connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a whole completion may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DefaultUpstream {
    fn default() -> Self {
        Self { url: None, api_key: None, connect_timeout: default_connect_timeout(), timeout: default_timeout() }
    }
}

/// The upstream used when none is configured.
pub const OLLAMA_URL: &str = "http://127.0.0.1:11434/v1";

/// The wire protocol an upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// OpenAI Chat Completions (`POST {base_url}/chat/completions`): Ollama, vLLM, llama.cpp, LM Studio, OpenAI…
    ChatCompletions,
    /// The Anthropic Messages API (`POST {base_url}/messages`), with prompt caching of the stable prefix.
    Anthropic,
    /// The Responses API (`POST {base_url}/responses`), sent the whole context with `store: false`: OpenAI, vLLM…
    Responses,
    /// The built-in offline echo model.
    Echo,
}

/// One LLM backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A name for logs and error messages.
    pub name: String,
    /// The protocol: `chat_completions`, `responses`, `anthropic` or `echo`.
    pub kind: UpstreamKind,
    /// Base URL including the version prefix, e.g. `http://127.0.0.1:11434/v1` or `https://api.anthropic.com/v1`
    /// (needed by all but `echo`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key sent as `Authorization: Bearer …` (`x-api-key` to `anthropic`); prefer `api_key_env`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The name of an environment variable holding the API key (read at start-up).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model name patterns this upstream serves; `*` matches any run of characters, `?` any one character.
    #[serde(default = "all_models")]
    pub models: Vec<ModelPattern>,
    /// How long to wait for a TCP connection.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a whole completion may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `anthropic`: the `max_tokens` sent when a request sets no output limit (the Messages API requires one).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    /// `anthropic`: marks the system prompt and the conversation before the new input as cacheable
    /// (`cache_control` breakpoints), so a long chat is billed at the cached rate; `false` sends none.
    #[serde(default = "default_true")]
    pub prompt_cache: bool,
}

impl UpstreamConfig {
    /// The single upstream `url` names (`echo` or a base URL), serving every model.
    pub fn single(url: &str, defaults: &DefaultUpstream) -> Self {
        let echo = url == "echo";
        Self {
            name: if echo { "echo".into() } else { "default".into() },
            kind: if echo { UpstreamKind::Echo } else { UpstreamKind::ChatCompletions },
            base_url: (!echo).then(|| url.to_string()),
            api_key: defaults.api_key.clone(),
            api_key_env: None,
            models: all_models(),
            connect_timeout: defaults.connect_timeout,
            timeout: defaults.timeout,
            max_tokens: default_max_tokens(),
            prompt_cache: true,
        }
    }
}

/// A secret string (an API key): never shown by `Debug`. A key given in the environment that reads as a number or
/// boolean (`12345`) is taken as the text it was written as.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Unsigned(u64),
            Signed(i64),
            Decimal(f64),
            Flag(bool),
        }
        Ok(Secret(match Written::deserialize(deserializer)? {
            Written::Text(text) => text,
            Written::Unsigned(n) => n.to_string(),
            Written::Signed(n) => n.to_string(),
            Written::Decimal(x) => x.to_string(),
            Written::Flag(flag) => flag.to_string(),
        }))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A database URL fit for a log line: its password, if any, replaced by `***`.
pub fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some("***")) {
            Ok(()) => parsed.to_string(),
            Err(()) => "(a URL with a password)".into(),
        },
        _ => url.to_string(),
    }
}

/// The passwords a database URL holds: its user's (percent-decoded) and a `password` query parameter's.
pub fn database_passwords(url: &str) -> Vec<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else { return Vec::new() };
    let decoded = parsed.password().map(|password| percent_decode_str(password).decode_utf8_lossy().into_owned());
    let query = parsed.query_pairs().filter(|(key, _)| key == "password").map(|(_, value)| value.into_owned());
    decoded.into_iter().chain(query).collect()
}

fn all_models() -> Vec<ModelPattern> {
    vec!["*".into()]
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_tokens() -> u64 {
    4096
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(600)
}
