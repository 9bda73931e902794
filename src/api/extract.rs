//! Request extractors whose failures are OpenAI-shaped errors: the JSON body, query parameters, path ids and the
//! caller's tenant.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode};
use serde_json::Value;

use super::auth::Caller;
use super::fields::invalid_type;
use crate::api::error::{ApiError, ApiResult};

/// The tenant every stored object belongs to until authentication assigns one per API key.
pub const DEFAULT_TENANT: &str = "default";

/// The caller's tenant; every store operation is scoped to it.
#[derive(Clone, Debug)]
pub struct Tenant(pub String);

/// The caller a request acts for, as authentication named it (the default tenant's where it did not run): the one
/// place it is decided, read by the extractors and by the per-tenant limits.
pub fn caller_of(extensions: &Extensions) -> Caller {
    let caller = extensions.get::<Caller>().cloned();
    caller.unwrap_or_else(|| Caller { tenant: DEFAULT_TENANT.into(), admin: false, upstream_key: None })
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Tenant(caller_of(&parts.extensions).tenant))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(caller_of(&parts.extensions))
    }
}

/// A request body parsed as JSON (any content type), with OpenAI's errors for bad JSON and oversized bodies.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A request body that is JSON (any content type), kept as it came for a handler that passes it on; refused as
/// `JsonBody` refuses one.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        parse_json(&bytes)?;
        Ok(JsonBytes(bytes))
    }
}

/// A body parsed as JSON, or the 400 every route gives malformed (or too deeply nested) JSON.
fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::invalid(format!(
            "We could not parse the JSON body of your request ({err}). The API expects a JSON payload."
        ))
    })
}

fn body_error(rejection: BytesRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        _ => ApiError::invalid(format!("The request body could not be read: {rejection}.")),
    }
}

/// The one path parameter of a route, such as a response id.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(path_error)?;
        Ok(PathId(id))
    }
}

/// The two path parameters of a route, such as a conversation id and an item id.
pub struct PathIds(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((first, second)) =
            Path::<(String, String)>::from_request_parts(parts, state).await.map_err(path_error)?;
        Ok(PathIds(first, second))
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::invalid(format!("Invalid path: {rejection}."))
}

/// Query parameters, read like `Fields`: each known one is taken, and any left over is `unknown_parameter`.
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(QueryParams(form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }
}

impl QueryParams {
    /// Takes every value of `key` (also written `key[]`).
    pub fn take_all(&mut self, key: &str) -> Vec<String> {
        let array_key = format!("{key}[]");
        let (taken, rest) = std::mem::take(&mut self.0).into_iter().partition(|(k, _)| k == key || *k == array_key);
        self.0 = rest;
        taken.into_iter().map(|(_, v)| v).collect()
    }

    /// Takes every `name[KEY]=VALUE` parameter, as `(KEY, VALUE)` in order.
    pub fn take_keyed(&mut self, name: &str) -> Vec<(String, String)> {
        let keyed = |key: &str| key.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']').map(str::to_string);
        let (taken, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.0).into_iter().partition(|(key, _)| keyed(key).is_some());
        self.0 = rest;
        taken.into_iter().filter_map(|(key, value)| Some((keyed(&key)?, value))).collect()
    }

    /// Takes the last value of `key`.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.take_all(key).pop()
    }

    /// A boolean parameter (`true`/`false`).
    pub fn bool(&mut self, key: &str) -> ApiResult<Option<bool>> {
        match self.take(key).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(invalid_type(key, "a boolean", &Value::String(other.to_string()))),
        }
    }

    /// An integer parameter within `min..=max`.
    pub fn integer(&mut self, key: &str, min: u64, max: u64) -> ApiResult<Option<u64>> {
        let Some(raw) = self.take(key) else {
            return Ok(None);
        };
        let n: u64 = raw.parse().map_err(|_| invalid_type(key, "an integer", &Value::String(raw.clone())))?;
        if n < min || n > max {
            return Err(ApiError::invalid(format!(
                "Invalid '{key}': expected a value between {min} and {max}, but got {n} instead."
            ))
            .param(key)
            .code(if n < min { "integer_below_min_value" } else { "integer_above_max_value" }));
        }
        Ok(Some(n))
    }

    /// Ends reading: any parameter left is an `unknown_parameter`.
    pub fn finish(self) -> ApiResult<()> {
        match self.0.first() {
            None => Ok(()),
            Some((key, _)) => {
                Err(ApiError::invalid(format!("Unknown parameter: '{key}'.")).param(key).code("unknown_parameter"))
            }
        }
    }
}
