//! Ids as clients send them: one check, the same whichever store is behind, made before any query.
//!
//! An id longer than `MAX_ID_CHARS` or holding a control character (NUL among them, which Postgres refuses in text)
//! was never issued by this server and cannot be stored. An id that refers to something (a path id, a
//! `previous_response_id`, a `conversation`, an `after` cursor) is answered as unknown without asking the store; an id
//! the client chooses for a new item is a 400 `invalid_value`.

use crate::api::error::{ApiError, ApiResult};
use crate::engine::EngineError;

/// The longest id accepted, in characters (this server's own ids are far shorter).
pub const MAX_ID_CHARS: usize = 256;

/// Whether `id` could name a stored object: at most `MAX_ID_CHARS` characters, none of them a control character.
pub fn is_possible(id: &str) -> bool {
    id.chars().count() <= MAX_ID_CHARS && !id.chars().any(char::is_control)
}

/// `Ok` for an id that could exist; otherwise the error the store's miss would give, `unknown(id)`.
pub fn known_or(id: &str, unknown: fn(String) -> EngineError) -> ApiResult<()> {
    match is_possible(id) {
        true => Ok(()),
        false => Err(unknown(id.to_string()).into()),
    }
}

/// `Ok` for an optional reference that could exist (or is absent).
pub fn known_if_some(id: Option<&str>, unknown: fn(String) -> EngineError) -> ApiResult<()> {
    id.map_or(Ok(()), |id| known_or(id, unknown))
}

/// An `after` cursor that could name an item; otherwise the store's `No item found` answer.
pub fn cursor(after: Option<&str>) -> ApiResult<()> {
    match after {
        Some(after) if !is_possible(after) => Err(crate::store::StoreError::CursorNotFound(after.to_string()).into()),
        _ => Ok(()),
    }
}

/// A client-chosen id for a new item at `param`: a 400 `invalid_value` when it could not be stored.
pub fn new_item_id(param: &str, id: &str) -> ApiResult<()> {
    if is_possible(id) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "Invalid '{param}': an id has at most {MAX_ID_CHARS} characters and no control characters."
    ))
    .param(param)
    .code("invalid_value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_and_control_characters_are_impossible() {
        assert!(is_possible("resp_abc"));
        assert!(is_possible(&"é".repeat(MAX_ID_CHARS)));
        assert!(!is_possible(&"a".repeat(MAX_ID_CHARS + 1)));
        assert!(!is_possible("resp_\u{0}"));
        assert!(!is_possible("msg_\n"));
    }
}
