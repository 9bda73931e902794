//! Loading the configuration: defaults (the `Default` impls), then the TOML file, then `THREADLINE_*` environment
//! variables (nested keys joined with `__`), then flags — layered by figment — then resolving the upstream list and
//! validating every key in one place, with errors that name the key.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{Config, Secret, UpstreamConfig, UpstreamKind, OLLAMA_URL};

/// The top-level keys of the configuration: a `THREADLINE_*` variable naming anything else is not a setting (an
/// orchestrator's service variable, say) and is ignored (see `unknown_variables`).
const KEYS: [&str; 13] = [
    "listen",
    "database_url",
    "drain_timeout",
    "database",
    "limits",
    "context",
    "retention",
    "auth",
    "background",
    "upstream",
    "upstreams",
    "log",
    "mcp",
];

/// Variables read beside the settings: client and admin keys as `tenant:key,tenant:key` lists.
const KEY_LISTS: [&str; 2] = ["THREADLINE_API_KEYS", "THREADLINE_ADMIN_KEYS"];

/// The prefix of every setting's environment variable.
const PREFIX: &str = "THREADLINE_";

/// Settings whose variables keep the names they had before nested keys existed.
const RENAMED: [(&str, &str); 2] =
    [("upstream.url", "THREADLINE_UPSTREAM_URL"), ("upstream.api_key", "THREADLINE_UPSTREAM_API_KEY")];

/// The environment variable of a dotted key: `database.max_connections` → `THREADLINE_DATABASE__MAX_CONNECTIONS`.
fn variable(key: &str) -> String {
    match RENAMED.iter().find(|(renamed, _)| *renamed == key) {
        Some((_, variable)) => variable.to_string(),
        None => format!("{PREFIX}{}", key.replace('.', "__").to_ascii_uppercase()),
    }
}

/// The dotted key of an environment variable, if it is a `THREADLINE_*` one.
fn key(variable: &str) -> Option<String> {
    if let Some((key, _)) = RENAMED.iter().find(|(_, renamed)| *renamed == variable) {
        return Some(key.to_string());
    }
    Some(variable.strip_prefix(PREFIX)?.to_ascii_lowercase().replace("__", "."))
}

/// Values given on the command line; each replaces the file's and the environment's.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--config`: the TOML file to read.
    pub config: Option<PathBuf>,
    /// `--listen`
    pub listen: Option<String>,
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--upstream-url` (alias `--upstream`): `upstream.url`.
    pub upstream_url: Option<String>,
}

/// Loads the configuration from the file the flags name (if any), this process's environment and the flags.
pub fn load(flags: &Flags) -> anyhow::Result<Config> {
    load_from(flags, std::env::vars())
}

/// The `THREADLINE_*` variables among `vars` that name no setting, which loading ignores: the caller warns about
/// them once logging is set up (its format being a setting).
pub fn unknown_variables(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let unknown = |name: &String| {
        !KEY_LISTS.contains(&name.as_str()) && key(name).is_some_and(|key| key != "config" && !is_setting(&key))
    };
    vars.into_iter().map(|(name, _)| name).filter(unknown).collect()
}

/// Whether a dotted key is in a top-level setting.
fn is_setting(key: &str) -> bool {
    KEYS.contains(&key.split('.').next().unwrap_or_default())
}

/// Loads the configuration with the given environment variables.
pub fn load_from(flags: &Flags, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    if let Some(path) = &flags.config {
        if !path.is_file() {
            bail!("cannot read config file {}", path.display());
        }
        figment = figment.merge(Toml::file(path));
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    let list = |name: &str| env.iter().find(|(variable, _)| variable == name).map(|(_, value)| value.clone());
    let (api_keys, admin_keys) = (list(KEY_LISTS[0]), list(KEY_LISTS[1]));
    let figment = figment.merge(Layer::environment(env)).merge(Layer::flags(flags));
    let mut config: Config = figment.extract().map_err(|err| anyhow!("invalid configuration: {err}"))?;
    config.resolve_upstreams()?;
    let listen = config.listen.clone();
    config
        .auth
        .resolve(&listen, api_keys.as_deref(), admin_keys.as_deref())
        .map_err(|err| anyhow!("invalid configuration: auth: {err}"))?;
    config.validate().map_err(|(key, problem)| anyhow!("invalid configuration: {key}: {problem}"))?;
    Ok(config)
}

impl Config {
    /// Replaces `upstreams` by `upstream.url`'s single upstream when it is set (or when no upstream is configured),
    /// and reads every `api_key_env`.
    fn resolve_upstreams(&mut self) -> anyhow::Result<()> {
        match &self.upstream.url {
            Some(url) => self.upstreams = vec![UpstreamConfig::single(url, &self.upstream)],
            None if self.upstreams.is_empty() => {
                self.upstreams = vec![UpstreamConfig::single(OLLAMA_URL, &self.upstream)];
            }
            None => {}
        }
        for (i, upstream) in self.upstreams.iter_mut().enumerate() {
            if let (None, Some(var)) = (&upstream.api_key, &upstream.api_key_env) {
                let key = std::env::var(var).map_err(|_| {
                    anyhow!(
                        "invalid configuration: upstreams[{i}].api_key_env: the environment variable {var} is not set"
                    )
                })?;
                upstream.api_key = Some(Secret(key));
            }
        }
        Ok(())
    }

    /// Checks every value; an error names the key and the problem.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, problem: &str| Err((key.to_string(), problem.to_string()));
        let url = self.database_url.as_str();
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| url.starts_with(scheme)) {
            return fail("database_url", "expected sqlite://PATH or postgres://…");
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        if self.database.acquire_timeout.is_zero() || self.database.statement_timeout.is_zero() {
            return fail("database", "acquire_timeout and statement_timeout must be longer than 0s");
        }
        let limits = &self.limits;
        let sizes = [limits.max_body_bytes, limits.max_upstream_reply_bytes, limits.max_input_items];
        if sizes.contains(&0) || limits.max_chain_depth == 0 {
            return fail(
                "limits",
                "max_body_bytes, max_chain_depth, max_upstream_reply_bytes and max_input_items must be at least 1",
            );
        }
        if limits.request_timeout.is_zero() {
            return fail("limits.request_timeout", "must be longer than 0s");
        }
        let deadlines = [
            ("limits.websocket_lifetime", limits.websocket_lifetime),
            ("limits.header_read_timeout", limits.header_read_timeout),
            ("limits.idle_timeout", limits.idle_timeout),
            ("limits.body_read_timeout", limits.body_read_timeout),
        ];
        if let Some((key, _)) = deadlines.iter().find(|(_, deadline)| deadline.is_zero()) {
            return fail(key, "must be longer than 0s");
        }
        if limits.max_connections == 0 {
            return fail("limits.max_connections", "must be at least 1");
        }
        if limits.max_buffered_body_bytes < limits.max_body_bytes {
            return fail("limits.max_buffered_body_bytes", "must be at least limits.max_body_bytes");
        }
        self.context.validate()?;
        self.retention.validate()?;
        self.auth.validate()?;
        let background = &self.background;
        if background.workers == 0 {
            return fail("background.workers", "must be at least 1");
        }
        if background.poll_interval.is_zero() || background.lease <= background.poll_interval * 2 {
            return fail("background", "poll_interval must be longer than 0s and lease more than twice as long");
        }
        for (i, upstream) in self.upstreams.iter().enumerate() {
            upstream.validate().map_err(|(key, problem)| (format!("upstreams[{i}].{key}"), problem))?;
            if self.upstreams[..i].iter().any(|other| other.name == upstream.name) {
                return Err((format!("upstreams[{i}].name"), format!("'{}' is used twice", upstream.name)));
            }
        }
        Ok(())
    }
}

impl UpstreamConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, problem: String| Err((key.to_string(), problem));
        match (self.kind, &self.base_url) {
            (UpstreamKind::ChatCompletions, None) => {
                return fail("base_url", "a chat_completions upstream needs one".into())
            }
            (UpstreamKind::Anthropic, None) => return fail("base_url", "an anthropic upstream needs one".into()),
            (UpstreamKind::Responses, None) => return fail("base_url", "a responses upstream needs one".into()),
            (_, Some(url)) => match reqwest::Url::parse(url) {
                Ok(parsed) if ["http", "https"].contains(&parsed.scheme()) => {}
                Ok(_) => return fail("base_url", format!("'{url}' is not an http:// or https:// URL")),
                Err(err) => return fail("base_url", format!("'{url}' is not a URL ({err})")),
            },
            (UpstreamKind::Echo, None) => {}
        }
        if self.models.is_empty() {
            return fail("models", "serves no models (set models = [\"*\"] to serve all)".into());
        }
        if self.max_tokens == 0 {
            return fail("max_tokens", "must be at least 1".into());
        }
        if self.connect_timeout.is_zero() || self.timeout.is_zero() {
            return fail("timeout", "connect_timeout and timeout must be longer than 0s".into());
        }
        Ok(())
    }
}

/// Overrides from one source (the environment or the flags) as a figment provider.
struct Layer {
    metadata: Metadata,
    /// Dotted keys (`database.max_connections`) and their values.
    values: Vec<(String, Value)>,
}

impl Layer {
    /// `THREADLINE_*` variables (see `variable`; `THREADLINE_CONFIG` names the file and is read by the command
    /// line); an empty variable counts as unset.
    fn environment(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = vars
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(name, value)| {
                let key = key(&name)?;
                (key != "config" && is_setting(&key)).then(|| (key, env_value(value)))
            })
            .collect();
        let metadata = Metadata::named("the environment").interpolater(|_, keys| variable(&keys.join(".")));
        Self { metadata, values }
    }

    fn flags(flags: &Flags) -> Self {
        let given =
            [("listen", &flags.listen), ("database_url", &flags.database_url), ("upstream.url", &flags.upstream_url)];
        let values =
            given.into_iter().filter_map(|(key, value)| Some((key.to_string(), Value::from(value.clone()?)))).collect();
        Self { metadata: Metadata::named("command-line flags"), values }
    }
}

/// A variable's value: a list or table in TOML's inline syntax when it starts with `[` or `{`
/// (`THREADLINE_UPSTREAMS='[{name="a", kind="echo"}]'`); a number or boolean when it is written exactly as that
/// value prints (`12`, `0.25`, `true`, but not `0123` or `1e5`); else its text as written.
fn env_value(raw: String) -> Value {
    if raw.trim_start().starts_with(['[', '{']) {
        let Ok(value) = raw.parse::<Value>();
        return value;
    }
    let exact = |printed: String| printed == raw;
    if let Some(n) = raw.parse::<u64>().ok().filter(|n| exact(n.to_string())) {
        return Value::from(n);
    }
    if let Some(n) = raw.parse::<i64>().ok().filter(|n| exact(n.to_string())) {
        return Value::from(n);
    }
    if let Some(x) = raw.parse::<f64>().ok().filter(|x| x.is_finite() && exact(x.to_string())) {
        return Value::from(x);
    }
    if let Ok(flag) = raw.parse::<bool>() {
        return Value::from(flag);
    }
    Value::from(raw)
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.values {
            insert(&mut dict, key, value.clone());
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at the dotted `path` in `dict`.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_string()).or_insert_with(|| Dict::new().into());
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
