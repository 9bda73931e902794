//! `[auth]`: who may call the server and which tenant each caller is — no authentication (one tenant), API keys
//! mapped to tenants, or each client's own upstream key passed through (its tenant a keyed hash of it).

use std::net::SocketAddr;

use serde::Deserialize;

use super::Secret;

/// Authentication and tenants.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `none`, `keys` or `passthrough`. Unset: `keys` when keys are configured, else `none` on a loopback address
    /// (any other address refuses to start).
    pub mode: Option<AuthMode>,
    /// Client keys and their tenants (also `THREADLINE_API_KEYS=tenant:key,tenant:key`).
    pub keys: Vec<KeyEntry>,
    /// Keys of the admin role, for operator endpoints (also `THREADLINE_ADMIN_KEYS`, same form).
    pub admin_keys: Vec<KeyEntry>,
    /// `passthrough`: the secret the tenant of a client key is derived with (HMAC-SHA-256); unset, one is made and
    /// kept in the database, shared by every replica.
    pub passthrough_secret: Option<Secret>,
}

/// How callers are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication: every caller is the one tenant `default`.
    None,
    /// `Authorization: Bearer <key>` with a configured key.
    Keys,
    /// The caller's bearer key goes to the upstream; its tenant is a keyed hash of the key.
    Passthrough,
}

/// A client key and its tenant: the key itself, or its SHA-256 (hex) so the config holds no secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub tenant: String,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_sha256: Option<String>,
}

impl AuthConfig {
    /// Adds the keys of `THREADLINE_API_KEYS` and `THREADLINE_ADMIN_KEYS` (`tenant:key,tenant:key`), then settles
    /// the mode: keys when some are configured, else none — only on a loopback address, unless set explicitly.
    pub fn resolve(&mut self, listen: &str, api_keys: Option<&str>, admin_keys: Option<&str>) -> Result<(), String> {
        self.keys.extend(parse_keys(api_keys.unwrap_or_default(), "THREADLINE_API_KEYS")?);
        self.admin_keys.extend(parse_keys(admin_keys.unwrap_or_default(), "THREADLINE_ADMIN_KEYS")?);
        let has_keys = !self.keys.is_empty() || !self.admin_keys.is_empty();
        self.mode = Some(match self.mode {
            Some(mode) => mode,
            None if has_keys => AuthMode::Keys,
            None if is_loopback(listen) => AuthMode::None,
            None => {
                return Err(format!(
                    "the server would listen on {listen} without authentication: configure keys (auth.keys or \
                     THREADLINE_API_KEYS), or set auth.mode = \"none\" explicitly"
                ))
            }
        });
        Ok(())
    }

    /// Whether the server accepts anyone on an address other machines can reach (set explicitly: warn at start).
    pub fn is_open(&self, listen: &str) -> bool {
        self.mode == Some(AuthMode::None) && !is_loopback(listen)
    }

    /// Checks every value; an error names the key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (list, entries) in [("auth.keys", &self.keys), ("auth.admin_keys", &self.admin_keys)] {
            for (i, entry) in entries.iter().enumerate() {
                entry.validate().map_err(|problem| (format!("{list}[{i}]"), problem))?;
            }
        }
        if self.mode == Some(AuthMode::Keys) && self.keys.is_empty() && self.admin_keys.is_empty() {
            return Err(("auth.keys".into(), "mode \"keys\" needs at least one key".into()));
        }
        Ok(())
    }
}

impl KeyEntry {
    fn validate(&self) -> Result<(), String> {
        let tenant_ok = !self.tenant.is_empty()
            && self.tenant.len() <= 64
            && self.tenant.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !tenant_ok {
            return Err(format!("tenant '{}' must be 1 to 64 letters, digits, '.', '_' or '-'", self.tenant));
        }
        match (&self.key, &self.key_sha256) {
            (Some(Secret(key)), None) if !key.is_empty() => Ok(()),
            (None, Some(hash)) if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) => Ok(()),
            (None, Some(_)) => Err("key_sha256 must be 64 hexadecimal digits".into()),
            _ => Err("give exactly one of key or key_sha256".into()),
        }
    }
}

/// `tenant:key,tenant:key` as key entries (`variable` names the source in errors, never the keys).
fn parse_keys(list: &str, variable: &str) -> Result<Vec<KeyEntry>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.split_once(':') {
            Some((tenant, key)) if !tenant.is_empty() && !key.is_empty() => {
                Ok(KeyEntry { tenant: tenant.into(), key: Some(Secret(key.into())), key_sha256: None })
            }
            _ => Err(format!("{variable}: entry {} is not tenant:key", i + 1)),
        })
        .collect()
}

/// Whether `listen` is a loopback address (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`).
fn is_loopback(listen: &str) -> bool {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => addr.ip().is_loopback(),
        Err(_) => listen.rsplit_once(':').is_some_and(|(host, _)| host == "localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_address_and_the_keys() {
        let resolved = |listen: &str, mode: Option<AuthMode>, keys: Option<&str>| {
            let mut auth = AuthConfig { mode, ..AuthConfig::default() };
            auth.resolve(listen, keys, None).map(|()| auth.mode)
        };
        assert_eq!(resolved("127.0.0.1:8080", None, None), Ok(Some(AuthMode::None)));
        assert_eq!(resolved("[::1]:8080", None, None), Ok(Some(AuthMode::None)));
        assert_eq!(resolved("localhost:8080", None, None), Ok(Some(AuthMode::None)));
        assert!(resolved("0.0.0.0:8080", None, None).unwrap_err().contains("without authentication"));
        assert_eq!(resolved("0.0.0.0:8080", Some(AuthMode::None), None), Ok(Some(AuthMode::None)));
        assert_eq!(resolved("0.0.0.0:8080", None, Some("a:k1")), Ok(Some(AuthMode::Keys)));
        let auth = AuthConfig { mode: Some(AuthMode::None), ..AuthConfig::default() };
        assert!(auth.is_open("0.0.0.0:8080") && !auth.is_open("127.0.0.1:8080"));
    }

    #[test]
    fn key_lists_parse_and_never_show_a_key_in_errors() {
        let keys = parse_keys(" alice:sk-1 , bob:sk:2,", "THREADLINE_API_KEYS").unwrap();
        let pairs: Vec<(&str, &str)> =
            keys.iter().map(|k| (k.tenant.as_str(), k.key.as_ref().unwrap().0.as_str())).collect();
        assert_eq!(pairs, [("alice", "sk-1"), ("bob", "sk:2")]);
        let err = parse_keys("alice:sk-1,sk-secret", "THREADLINE_API_KEYS").unwrap_err();
        assert_eq!(err, "THREADLINE_API_KEYS: entry 2 is not tenant:key");
        let entry = |tenant: &str, key: Option<&str>, hash: Option<&str>| KeyEntry {
            tenant: tenant.into(),
            key: key.map(|k| Secret(k.into())),
            key_sha256: hash.map(str::to_string),
        };
        assert!(entry("a", Some("k"), None).validate().is_ok());
        assert!(entry("a", None, Some(&"ab".repeat(32))).validate().is_ok());
        assert!(entry("a", None, Some("xyz")).validate().is_err());
        assert!(entry("a", Some("k"), Some(&"ab".repeat(32))).validate().is_err());
        assert!(entry("a b", Some("k"), None).validate().is_err());
    }
}
