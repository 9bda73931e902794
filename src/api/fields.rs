//! Reading and validating wire JSON objects field by field, with OpenAI's error codes and messages.
//!
//! A `Fields` takes each known key out of an object; `finish` rejects whatever is left as `unknown_parameter`.

use serde_json::{Map, Value};

use crate::api::error::{ApiError, ApiResult};
use crate::api::wording::type_name;
pub use crate::api::wording::{check_array_length, check_length, invalid_type, invalid_value, missing};
use crate::model::Metadata;

/// The remaining fields of a JSON object being read, and the parameter path it sits at (`""`, `input[2]` …).
pub struct Fields {
    map: Map<String, Value>,
    path: String,
}

impl Fields {
    /// Starts reading `value`, which must be an object; `path` names it in errors (empty for the body).
    pub fn new(value: Value, path: &str) -> ApiResult<Self> {
        match value {
            Value::Object(map) => Ok(Self { map, path: path.to_string() }),
            other if path.is_empty() => Err(crate::api::wording::not_an_object(type_name(&other))),
            other => Err(invalid_type(path, "an object", &other)),
        }
    }

    /// The parameter path of `key` in this object.
    pub fn param(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Takes a field; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Takes a field that must be present.
    pub fn required(&mut self, key: &str) -> ApiResult<Value> {
        self.take(key).ok_or_else(|| missing(&self.param(key)))
    }

    pub fn string(&mut self, key: &str) -> ApiResult<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid_type(&self.param(key), "a string", &other)),
        }
    }

    pub fn required_string(&mut self, key: &str) -> ApiResult<String> {
        self.string(key)?.ok_or_else(|| missing(&self.param(key)))
    }

    /// A string of at most `max` characters.
    pub fn short_string(&mut self, key: &str, max: usize) -> ApiResult<Option<String>> {
        let value = self.string(key)?;
        if let Some(s) = &value {
            check_length(&self.param(key), s, max)?;
        }
        Ok(value)
    }

    /// A string that must be one of `supported`.
    pub fn choice(&mut self, key: &str, supported: &[&str]) -> ApiResult<Option<String>> {
        let value = self.string(key)?;
        match value {
            Some(s) if !supported.contains(&s.as_str()) => Err(invalid_value(&self.param(key), &s, supported)),
            other => Ok(other),
        }
    }

    pub fn bool(&mut self, key: &str) -> ApiResult<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(invalid_type(&self.param(key), "a boolean", &other)),
        }
    }

    /// A number within `min..=max`.
    pub fn number(&mut self, key: &str, min: f64, max: f64) -> ApiResult<Option<f64>> {
        let param = self.param(key);
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let Some(n) = value.as_f64().filter(|_| value.is_number()) else {
            return Err(invalid_type(&param, "a number", &value));
        };
        if n < min {
            return Err(out_of_range(&param, "decimal below minimum value", &format!(">= {}", fmt_num(min)), &value));
        }
        if n > max {
            return Err(out_of_range(&param, "decimal above maximum value", &format!("<= {}", fmt_num(max)), &value));
        }
        Ok(Some(n))
    }

    /// An integer of at least `min`.
    pub fn integer(&mut self, key: &str, min: u64) -> ApiResult<Option<u64>> {
        self.integer_within(key, min, u64::MAX)
    }

    /// An integer within `min..=max`.
    pub fn integer_within(&mut self, key: &str, min: u64, max: u64) -> ApiResult<Option<u64>> {
        let param = self.param(key);
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        if !(value.is_i64() || value.is_u64()) {
            return Err(invalid_type(&param, "an integer", &value));
        }
        match value.as_u64() {
            Some(n) if n > max => {
                Err(out_of_range(&param, "integer above maximum value", &format!("<= {max}"), &value))
            }
            Some(n) if n >= min => Ok(Some(n)),
            _ => Err(out_of_range(&param, "integer below minimum value", &format!(">= {min}"), &value)),
        }
    }

    /// Takes a field that must be an array.
    pub fn array(&mut self, key: &str) -> ApiResult<Option<Vec<Value>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(invalid_type(&self.param(key), "an array", &other)),
        }
    }

    /// Takes a field that must be an object, to read it in turn.
    pub fn object(&mut self, key: &str) -> ApiResult<Option<Fields>> {
        let param = self.param(key);
        self.take(key).map(|value| Fields::new(value, &param)).transpose()
    }

    /// Rejects a field this server does not implement, unless it is absent or null.
    pub fn reject(&mut self, key: &str, what: &str) -> ApiResult<()> {
        match self.take(key) {
            None => Ok(()),
            Some(_) => Err(ApiError::unsupported(&self.param(key), what)),
        }
    }

    /// Ends reading: any field left is an `unknown_parameter`.
    pub fn finish(self) -> ApiResult<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(crate::api::wording::unknown(&self.param(key))),
        }
    }
}

/// `metadata`: at most 16 string values, keys up to 64 and values up to 512 characters.
pub fn parse_metadata(f: &mut Fields) -> ApiResult<Metadata> {
    f.take("metadata").map(metadata).unwrap_or_else(|| Ok(Metadata::new()))
}

/// A `metadata` value: at most 16 string values, keys up to 64 and values up to 512 characters.
pub fn metadata(value: Value) -> ApiResult<Metadata> {
    let Value::Object(map) = value else {
        return Err(invalid_type("metadata", "an object", &value));
    };
    if map.len() > 16 {
        return Err(ApiError::invalid(format!(
                "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.",
                map.len()
            )).param("metadata").code("object_above_max_properties"));
    }
    map.into_iter()
        .map(|(key, value)| {
            check_length("metadata", &key, 64)?;
            let param = format!("metadata.{key}");
            match value {
                Value::String(s) => {
                    check_length(&param, &s, 512)?;
                    Ok((key, s))
                }
                other => Err(invalid_type(&param, "a string", &other)),
            }
        })
        .collect()
}

fn out_of_range(param: &str, what: &str, expected: &str, got: &Value) -> ApiError {
    crate::api::wording::out_of_range(param, what, expected, &got.to_string())
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn code(err: ApiError) -> (String, Option<String>, Option<String>) {
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        (err.body.message, err.body.param, err.body.code)
    }

    #[test]
    fn reads_and_rejects_with_openai_codes() {
        let mut f = Fields::new(json!({"t": "x", "n": 3, "i": 5, "s": 1.5, "extra": 1}), "").unwrap();
        let (message, param, c) = code(f.number("t", 0.0, 2.0).unwrap_err());
        assert_eq!(message, "Invalid type for 't': expected a number, but got a string instead.");
        assert_eq!((param.as_deref(), c.as_deref()), (Some("t"), Some("invalid_type")));
        let (message, _, c) = code(f.number("n", 0.0, 2.0).unwrap_err());
        assert_eq!(message, "Invalid 'n': decimal above maximum value. Expected a value <= 2, but got 3 instead.");
        assert_eq!(c.as_deref(), Some("decimal_above_max_value"));
        let (message, _, c) = code(f.integer("i", 16).unwrap_err());
        assert_eq!(message, "Invalid 'i': integer below minimum value. Expected a value >= 16, but got 5 instead.");
        assert_eq!(c.as_deref(), Some("integer_below_min_value"));
        let (_, _, c) = code(f.integer("s", 1).unwrap_err());
        assert_eq!(c.as_deref(), Some("invalid_type"));
        let (message, param, c) = code(f.finish().unwrap_err());
        assert_eq!(message, "Unknown parameter: 'extra'.");
        assert_eq!((param.as_deref(), c.as_deref()), (Some("extra"), Some("unknown_parameter")));
    }

    #[test]
    fn nested_paths_and_value_lists() {
        let mut f = Fields::new(json!({"role": "bot"}), "input[1]").unwrap();
        let (message, param, _) = code(f.choice("role", &["user", "assistant", "system"]).unwrap_err());
        assert_eq!(message, "Invalid value: 'bot'. Supported values are: 'user', 'assistant', and 'system'.");
        assert_eq!(param.as_deref(), Some("input[1].role"));
        let (message, ..) = code(invalid_value("x", "y", &["a", "b"]));
        assert_eq!(message, "Invalid value: 'y'. Supported values are: 'a' and 'b'.");
    }
}
