//! The checks of a typed body that serde's attributes cannot say, for `#[serde(deserialize_with = …)]`: numbers
//! within a range, strings of bounded length, and fields of later features refused rather than ignored. `null`
//! counts as absent, as for every optional field.

use serde::de::{Deserialize, Deserializer};
use serde_json::{Number, Value};

use super::errors::{refuse, PARAM};
use crate::api::error::ApiError;
use crate::api::wording::{check_length, out_of_range, wrong_type};

/// A number within `MIN..=MAX`.
pub fn decimal<'de, D: Deserializer<'de>, const MIN: i64, const MAX: i64>(d: D) -> Result<Option<f64>, D::Error> {
    let Some(number) = Option::<Number>::deserialize(d)? else { return Ok(None) };
    let value = number.as_f64().unwrap_or(f64::NAN);
    if value < MIN as f64 {
        return Err(refuse(out_of_range(
            PARAM,
            "decimal below minimum value",
            &format!(">= {MIN}"),
            &number.to_string(),
        )));
    }
    if value > MAX as f64 {
        return Err(refuse(out_of_range(
            PARAM,
            "decimal above maximum value",
            &format!("<= {MAX}"),
            &number.to_string(),
        )));
    }
    Ok(Some(value))
}

/// An integer within `MIN..=MAX`.
pub fn integer<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<Number>::deserialize(d)? else { return Ok(None) };
    if number.is_f64() {
        return Err(refuse(wrong_type(PARAM, "an integer", "a decimal")));
    }
    let got = number.to_string();
    match number.as_u64() {
        Some(n) if n > MAX => {
            Err(refuse(out_of_range(PARAM, "integer above maximum value", &format!("<= {MAX}"), &got)))
        }
        Some(n) if n >= MIN => Ok(Some(n)),
        _ => Err(refuse(out_of_range(PARAM, "integer below minimum value", &format!(">= {MIN}"), &got))),
    }
}

/// A string of at most `MAX` characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<const MAX: usize>(pub String);

impl<'de, const MAX: usize> Deserialize<'de> for Bounded<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        check_length(PARAM, &text, MAX).map_err(refuse)?;
        Ok(Bounded(text))
    }
}

/// A field of a feature this server does not implement: absent or `null`, or `unsupported_parameter` saying `what`.
pub fn refused<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<(), D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(()),
        Some(_) => Err(refuse(ApiError::unsupported(PARAM, what))),
    }
}
