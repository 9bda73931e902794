//! Typed request bodies: `Body<T>` reads a JSON body into a serde type `T` — the same type the OpenAPI document is
//! generated from — and serde's errors become OpenAI's (`errors`). `rules` holds the checks serde's attributes cannot
//! say (ranges, lengths, refused fields), for `#[serde(deserialize_with)]`.

mod errors;
pub mod rules;

use axum::extract::{FromRequest, Request};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::input::check_input_items;
use super::wording::{not_an_object, type_name};
use super::AppState;
pub use errors::{refuse, PARAM};

/// A request body read into `T`, refused with OpenAI's errors: bad JSON and oversized bodies as `JsonBody` refuses
/// them, an `input` array longer than the server's limit before any item is read, then whatever `T` refuses.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        check_input_items(&value, state.max_input_items)?;
        from_value(value).map(Body)
    }
}

/// Reads a JSON value (a body, or a WebSocket frame) into `T`, with OpenAI's errors.
pub fn from_value<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    if !value.is_object() {
        return Err(not_an_object(type_name(&value)));
    }
    serde_path_to_error::deserialize(value).map_err(errors::to_api_error)
}

/// Reads `value` into `T` within a type's own `Deserialize` (one that looked at a field first, such as `type`), so
/// that an error keeps its path below the value.
pub fn nested<T: DeserializeOwned, E: de::Error>(value: Value) -> Result<T, E> {
    nested_at("", value)
}

/// Reads `value`, found at `prefix` below the value a type's own `Deserialize` reads, into `T`.
pub fn nested_at<T: DeserializeOwned, E: de::Error>(prefix: &str, value: Value) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|err| errors::nested(prefix, err))
}

/// A JSON object.
pub type Object = Map<String, Value>;

/// Reads an object whose `type` decides its shape: the object, and its `type` read as `K` (absent or null: `None`).
pub fn tagged<'de, D: Deserializer<'de>, K: DeserializeOwned>(d: D) -> Result<(Object, Option<K>), D::Error> {
    let object = Object::deserialize(d)?;
    let kind = object.get("type").filter(|kind| !kind.is_null()).cloned();
    let kind = kind.map(|kind| nested_at("type", kind)).transpose()?;
    Ok((object, kind))
}

#[cfg(test)]
mod tests;
