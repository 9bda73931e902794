//! Typed configuration: defaults, then a TOML file, then `THREADLINE_*` environment variables and flags.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The whole server configuration, validated once at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where conversations are stored: `sqlite://PATH` (created on first run) or `postgres://…`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Connection pool and timeouts of the database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Request and chain limits.
    #[serde(default)]
    pub limits: Limits,
    /// The LLM backends, tried in order; a request goes to the first whose `models` match its model.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
}

/// The database connection pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most connections each replica opens.
    pub max_connections: u32,
    /// Seconds a request waits for a connection before it gets 503.
    pub acquire_timeout_secs: f64,
    /// Seconds one statement may run before it is cancelled (Postgres; SQLite waits this long for a lock).
    pub statement_timeout_secs: f64,
    /// Seconds to keep retrying an unreachable database at start-up before giving up.
    pub startup_timeout_secs: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout_secs: 10.0,
            statement_timeout_secs: 30.0,
            startup_timeout_secs: 60.0,
        }
    }
}

/// Limits that protect the server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body in bytes (larger bodies get 413).
    pub max_body_bytes: usize,
    /// Most turns a chain may hold; continuing a longer chain is a 400 `chain_too_deep`.
    pub max_chain_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 16 * 1024 * 1024, max_chain_depth: 10_000 }
    }
}

/// The wire protocol an upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// OpenAI Chat Completions (`POST {base_url}/chat/completions`): Ollama, vLLM, llama.cpp, LM Studio, OpenAI…
    ChatCompletions,
    /// The built-in offline echo model.
    Echo,
}

/// One LLM backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A name for logs and error messages.
    pub name: String,
    /// The protocol: `chat_completions` or `echo`.
    pub kind: UpstreamKind,
    /// Base URL including the version prefix, e.g. `http://127.0.0.1:11434/v1` (needed by `chat_completions`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key sent as `Authorization: Bearer …`; prefer `api_key_env`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The name of an environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model name patterns this upstream serves; `*` matches any run of characters.
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    /// Seconds to wait for a TCP connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: f64,
    /// Seconds a whole completion may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

impl UpstreamConfig {
    /// The single upstream given by `--upstream-url` / `THREADLINE_UPSTREAM_URL`: `echo` or a base URL.
    pub fn from_url(url: &str, api_key: Option<Secret>) -> Self {
        let echo = url == "echo";
        Self {
            name: if echo { "echo".into() } else { "default".into() },
            kind: if echo { UpstreamKind::Echo } else { UpstreamKind::ChatCompletions },
            base_url: (!echo).then(|| url.to_string()),
            api_key,
            api_key_env: None,
            models: all_models(),
            connect_timeout_secs: default_connect_timeout(),
            timeout_secs: default_timeout(),
        }
    }

    /// The API key: `api_key`, else the variable named by `api_key_env`.
    pub fn resolved_api_key(&self) -> anyhow::Result<Option<Secret>> {
        match (&self.api_key, &self.api_key_env) {
            (Some(key), _) => Ok(Some(key.clone())),
            (None, Some(var)) => {
                let key = std::env::var(var)
                    .with_context(|| format!("upstream '{}': environment variable {var} is not set", self.name))?;
                Ok(Some(Secret(key)))
            }
            (None, None) => Ok(None),
        }
    }
}

/// A secret string (an API key): never shown by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Values from flags and environment variables; each one given replaces the file's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    /// `echo` or a base URL: replaces the file's upstreams with this one serving every model.
    pub upstream_url: Option<String>,
    /// `THREADLINE_UPSTREAM_API_KEY`, for the upstream given by `upstream_url` or the default one.
    pub upstream_api_key: Option<Secret>,
}

pub const DEFAULT_UPSTREAM_URL: &str = "http://127.0.0.1:11434/v1";

impl Config {
    /// Reads the optional TOML file, applies the overrides and validates the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut config: Config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => toml::from_str("")?,
        };
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(url) = overrides.database_url {
            config.database_url = url;
        }
        if let Some(url) = overrides.upstream_url {
            config.upstreams = vec![UpstreamConfig::from_url(&url, overrides.upstream_api_key)];
        } else if config.upstreams.is_empty() {
            config.upstreams = vec![UpstreamConfig::from_url(DEFAULT_UPSTREAM_URL, overrides.upstream_api_key)];
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.upstreams.is_empty() {
            bail!("no upstream is configured");
        }
        for (i, upstream) in self.upstreams.iter().enumerate() {
            if self.upstreams[..i].iter().any(|u| u.name == upstream.name) {
                bail!("upstream name '{}' is used twice", upstream.name);
            }
            if upstream.kind == UpstreamKind::ChatCompletions && upstream.base_url.is_none() {
                bail!("upstream '{}' of kind chat_completions needs a base_url", upstream.name);
            }
            if upstream.models.is_empty() {
                bail!("upstream '{}' serves no models (set models = [\"*\"] to serve all)", upstream.name);
            }
            if !(upstream.timeout_secs > 0.0 && upstream.connect_timeout_secs > 0.0) {
                bail!("upstream '{}': timeouts must be positive", upstream.name);
            }
            upstream.resolved_api_key()?;
        }
        if self.limits.max_chain_depth == 0 || self.limits.max_body_bytes == 0 {
            bail!("limits must be positive");
        }
        let db = &self.database;
        if db.max_connections == 0 || !(db.acquire_timeout_secs > 0.0 && db.statement_timeout_secs > 0.0) {
            bail!("database: max_connections and timeouts must be positive");
        }
        if db.startup_timeout_secs.is_nan() || db.startup_timeout_secs < 0.0 {
            bail!("database: startup_timeout_secs must not be negative");
        }
        Ok(())
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_database_url() -> String {
    "sqlite://threadline.db".into()
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}

fn default_connect_timeout() -> f64 {
    10.0
}

fn default_timeout() -> f64 {
    600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_on_a_laptop() {
        let config = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://threadline.db");
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams[0].base_url.as_deref(), Some(DEFAULT_UPSTREAM_URL));
        assert_eq!(config.upstreams[0].kind, UpstreamKind::ChatCompletions);
    }

    #[test]
    fn overrides_replace_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\n[[upstreams]]\nname = \"a\"\nkind = \"chat_completions\"\nbase_url = \"http://x/v1\"\nmodels = [\"llama3*\"]\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.upstreams[0].models, vec!["llama3*"]);
        let overrides = Overrides { upstream_url: Some("echo".into()), ..Default::default() };
        let config = Config::load(Some(&path), overrides).unwrap();
        assert_eq!(config.upstreams[0].kind, UpstreamKind::Echo);
        assert_eq!(config.upstreams.len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_upstreams_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path), Overrides::default()).is_err());
        std::fs::write(&path, "[[upstreams]]\nname = \"a\"\nkind = \"chat_completions\"\n").unwrap();
        let err = Config::load(Some(&path), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("needs a base_url"), "{err}");
    }

    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/threadline.toml");
        let config = Config::load(Some(&path), Overrides::default()).unwrap();
        let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["ollama", "echo"]);
        assert_eq!(config.upstreams[0].models, ["llama3*", "qwen*"]);
    }

    #[test]
    fn secrets_are_hidden_from_debug() {
        let upstream = UpstreamConfig::from_url("http://x/v1", Some(Secret("sk-123".into())));
        assert!(!format!("{upstream:?}").contains("sk-123"));
    }
}
