//! Request extractors whose failures are OpenAI-shaped errors: the JSON body, path ids and the caller's tenant (the
//! query string: `query`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode};
use serde_json::Value;

use super::auth::Caller;
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
