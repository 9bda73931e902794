//! Authentication: every request but the health and metrics endpoints names its caller — a tenant, an admin role,
//! and (in `passthrough`) the key to send upstream — from its `Authorization: Bearer` key. Keys are kept as SHA-256
//! digests, compared in constant time; a passthrough key's tenant is an HMAC of it, and the key itself is never
//! stored or logged.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::extract::DEFAULT_TENANT;
use crate::config::{AuthConfig, AuthMode, KeyEntry, Secret};

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: String,
    /// Whether the key has the admin role.
    pub admin: bool,
    /// `passthrough`: the caller's own key, sent to the upstream in place of the configured one.
    pub upstream_key: Option<Secret>,
}

/// A configured key: its digest, tenant and role.
struct Known {
    digest: [u8; 32],
    tenant: String,
    admin: bool,
}

/// Turns a request's key into its caller, per the configured mode.
pub struct Authenticator {
    mode: AuthMode,
    keys: Vec<Known>,
    /// `passthrough`: the HMAC key tenants are derived with.
    secret: Vec<u8>,
}

impl Authenticator {
    /// The authenticator of `config` (its mode resolved at load; unset counts as `none`), with `secret` for
    /// `passthrough` tenants.
    pub fn new(config: &AuthConfig, secret: &str) -> Self {
        let known = |entries: &[KeyEntry], admin: bool| -> Vec<Known> {
            entries
                .iter()
                .filter_map(|entry| Some(Known { digest: digest_of(entry)?, tenant: entry.tenant.clone(), admin }))
                .collect()
        };
        let mut keys = known(&config.keys, false);
        keys.extend(known(&config.admin_keys, true));
        Self { mode: config.mode.unwrap_or(AuthMode::None), keys, secret: secret.as_bytes().to_vec() }
    }

    /// The caller a request's `Authorization` header names, or the 401 it gets.
    pub fn caller(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let key =
            authorization.and_then(|value| value.strip_prefix("Bearer ")).map(str::trim).filter(|k| !k.is_empty());
        match (self.mode, key) {
            (AuthMode::None, _) => Ok(Caller { tenant: DEFAULT_TENANT.into(), admin: false, upstream_key: None }),
            (_, None) => Err(unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using \
                 Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )),
            (AuthMode::Keys, Some(key)) => self.known(key).ok_or_else(|| unauthorized("Incorrect API key provided.")),
            (AuthMode::Passthrough, Some(key)) => {
                let admin = self.known(key).filter(|caller| caller.admin);
                Ok(admin.unwrap_or_else(|| Caller {
                    tenant: self.passthrough_tenant(key),
                    admin: false,
                    upstream_key: Some(Secret(key.to_string())),
                }))
            }
        }
    }

    /// The configured key `key` is, compared with every one in constant time.
    fn known(&self, key: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for known in &self.keys {
            if bool::from(known.digest.ct_eq(&digest)) {
                found = Some(Caller { tenant: known.tenant.clone(), admin: known.admin, upstream_key: None });
            }
        }
        found
    }

    /// A passthrough key's tenant: `key-` and the first 16 bytes of its HMAC, in hex.
    fn passthrough_tenant(&self, key: &str) -> String {
        let tag = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(key.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            // HMAC takes keys of any length.
            Err(_) => Vec::new(),
        };
        let hex: String = tag.iter().take(16).map(|byte| format!("{byte:02x}")).collect();
        format!("key-{hex}")
    }
}

/// A configured key's SHA-256: of its text, or as given in hex.
fn digest_of(entry: &KeyEntry) -> Option<[u8; 32]> {
    if let Some(Secret(key)) = &entry.key {
        return Some(Sha256::digest(key.as_bytes()).into());
    }
    let hex = entry.key_sha256.as_deref()?;
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::status(StatusCode::UNAUTHORIZED, message).code("invalid_api_key")
}

/// Middleware: names the caller of every request (a 401 when it cannot), for the `Tenant` extractor and the
/// handlers; the key itself goes no further than this, but in `passthrough` to the upstream. An admin's
/// `tenant=NAME` query parameter makes the request act for that tenant (and is taken off the query).
pub async fn authenticate(
    State(authenticator): State<std::sync::Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    let acted = authenticator.caller(authorization).and_then(|caller| act_for(caller, request.uri()));
    match acted {
        Ok((caller, uri)) => {
            if let Some(uri) = uri {
                *request.uri_mut() = uri;
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// The caller a request acts as: the tenant its `tenant` query parameter names, for an admin (with the request's
/// URI without that parameter); a 403 for anyone else.
fn act_for(mut caller: Caller, uri: &Uri) -> Result<(Caller, Option<Uri>), ApiError> {
    let Some(query) = uri.query() else { return Ok((caller, None)) };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let (named, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(key, _)| key == "tenant");
    let Some((_, tenant)) = named.into_iter().last() else { return Ok((caller, None)) };
    if !caller.admin {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            "Only an admin key may act for another tenant ('tenant').",
        )
        .param("tenant")
        .code("permission_denied"));
    }
    if tenant.is_empty() || tenant.chars().any(char::is_control) {
        return Err(ApiError::invalid("Invalid 'tenant': expected a tenant name.")
            .param("tenant")
            .code("invalid_value"));
    }
    caller.tenant = tenant;
    let mut rebuilt = uri.path().to_string();
    if !rest.is_empty() {
        rebuilt.push('?');
        rebuilt.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish());
    }
    let uri = rebuilt.parse().map_err(|err| ApiError::invalid(format!("Invalid URL: {err}.")))?;
    Ok((caller, Some(uri)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(mode: AuthMode) -> Authenticator {
        let entry = |tenant: &str, key: Option<&str>, hash: Option<String>| KeyEntry {
            tenant: tenant.into(),
            key: key.map(|key| Secret(key.into())),
            key_sha256: hash,
        };
        let hash: String = Sha256::digest(b"sk-bob").iter().map(|b| format!("{b:02x}")).collect();
        let config = AuthConfig {
            mode: Some(mode),
            keys: vec![entry("alice", Some("sk-alice"), None), entry("bob", None, Some(hash))],
            admin_keys: vec![entry("ops", Some("sk-admin"), None)],
            passthrough_secret: None,
        };
        Authenticator::new(&config, "server secret")
    }

    #[test]
    fn keys_name_their_tenant_and_role() {
        let keys = authenticator(AuthMode::Keys);
        let caller = |header: &str| keys.caller(Some(header)).map(|c| (c.tenant, c.admin));
        assert_eq!(caller("Bearer sk-alice").unwrap(), ("alice".into(), false));
        assert_eq!(caller("Bearer sk-bob").unwrap(), ("bob".into(), false));
        assert_eq!(caller("Bearer sk-admin").unwrap(), ("ops".into(), true));
        for wrong in ["Bearer sk-eve", "Bearer ", "sk-alice", "Basic c2stYWxpY2U="] {
            let err = keys.caller(Some(wrong)).unwrap_err();
            assert_eq!((err.status, err.body.code.as_deref()), (StatusCode::UNAUTHORIZED, Some("invalid_api_key")));
            assert!(!err.body.message.contains("sk-"), "{}", err.body.message);
        }
        assert_eq!(keys.caller(None).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(authenticator(AuthMode::None).caller(None).unwrap().tenant, "default");
    }

    #[test]
    fn only_an_admin_acts_for_another_tenant() {
        let keys = authenticator(AuthMode::Keys);
        let uri: Uri = "/v1/conversations?limit=2&tenant=alice&order=asc".parse().unwrap();
        let admin = keys.caller(Some("Bearer sk-admin")).unwrap();
        let (caller, rebuilt) = act_for(admin.clone(), &uri).unwrap();
        assert_eq!((caller.tenant.as_str(), caller.admin), ("alice", true));
        assert_eq!(rebuilt.unwrap().to_string(), "/v1/conversations?limit=2&order=asc");
        let (_, rebuilt) = act_for(admin.clone(), &"/v1/models?tenant=bob".parse().unwrap()).unwrap();
        assert_eq!(rebuilt.unwrap().to_string(), "/v1/models");
        let (caller, rebuilt) = act_for(admin.clone(), &"/v1/models?limit=1".parse().unwrap()).unwrap();
        assert_eq!((caller.tenant.as_str(), rebuilt), ("ops", None));
        let empty = act_for(admin, &"/v1/models?tenant=".parse().unwrap()).unwrap_err();
        assert_eq!((empty.status, empty.body.code.as_deref()), (StatusCode::BAD_REQUEST, Some("invalid_value")));
        for caller in
            [keys.caller(Some("Bearer sk-alice")).unwrap(), authenticator(AuthMode::None).caller(None).unwrap()]
        {
            let err = act_for(caller, &uri).unwrap_err();
            assert_eq!((err.status, err.body.code.as_deref()), (StatusCode::FORBIDDEN, Some("permission_denied")));
        }
    }

    #[test]
    fn a_passthrough_key_is_its_own_tenant_and_goes_upstream() {
        let passthrough = authenticator(AuthMode::Passthrough);
        let one = passthrough.caller(Some("Bearer sk-user-1")).unwrap();
        let two = passthrough.caller(Some("Bearer sk-user-2")).unwrap();
        assert!(one.tenant.starts_with("key-") && one.tenant.len() == 36, "{}", one.tenant);
        assert_ne!(one.tenant, two.tenant);
        assert!(!one.tenant.contains("user"));
        assert_eq!(passthrough.caller(Some("Bearer sk-user-1")).unwrap().tenant, one.tenant);
        assert_eq!(one.upstream_key, Some(Secret("sk-user-1".into())));
        let other_secret =
            Authenticator::new(&AuthConfig { mode: Some(AuthMode::Passthrough), ..AuthConfig::default() }, "x");
        assert_ne!(other_secret.caller(Some("Bearer sk-user-1")).unwrap().tenant, one.tenant);
        assert!(passthrough.caller(Some("Bearer sk-admin")).unwrap().admin);
    }
}
