//! Values as written in TOML turned into the host's: durations (parsed once
//! their span is known, so an error names the line) and a plugin's config
//! table as JSON.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::limits::{CountBounds, DurationBounds};

/// A duration as written, parsed with humantime once its span is known.
/// Its own visitor so that `call_timeout = 5` says what is expected.
#[derive(Debug)]
pub(super) struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"10s\" or \"500ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// Parses an optional humantime duration within `bounds`; the error carries
/// the value's span and says why.
pub(super) fn duration(
    value: &Option<Spanned<DurationText>>,
    fallback: Duration,
    bounds: DurationBounds,
) -> Result<Duration, (Range<usize>, String)> {
    let Some(value) = value else {
        return Ok(fallback);
    };
    let text = &value.get_ref().0;
    let why = match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() && !bounds.min.is_zero() => {
            format!("{text:?} must be longer than zero")
        }
        Ok(d) if d < bounds.min => format!(
            "{text:?} is shorter than the minimum, {}",
            humantime::format_duration(bounds.min)
        ),
        Ok(d) if d > bounds.max => format!(
            "{text:?} is longer than the maximum, {}",
            humantime::format_duration(bounds.max)
        ),
        Ok(d) => return Ok(d),
        Err(e) => format!("{text:?} is not a duration like \"10s\" or \"500ms\": {e}"),
    };
    Err((value.span(), why))
}

/// Parses an optional humantime duration within `bounds` that has no
/// fallback.
pub(super) fn optional_duration(
    value: &Option<Spanned<DurationText>>,
    bounds: DurationBounds,
) -> Result<Option<Duration>, (Range<usize>, String)> {
    match value {
        None => Ok(None),
        Some(_) => duration(value, Duration::ZERO, bounds).map(Some),
    }
}

/// An optional count within `bounds`, or `fallback` when left out; the
/// error carries the value's span and says why.
pub(super) fn count(
    value: &Option<Spanned<u32>>,
    fallback: u32,
    bounds: CountBounds,
) -> Result<u32, (Range<usize>, String)> {
    let Some(value) = value else {
        return Ok(fallback);
    };
    let n = *value.get_ref();
    if n < bounds.min {
        Err((
            value.span(),
            format!("must be at least {}{}", bounds.min, bounds.meaning),
        ))
    } else if n > bounds.max {
        Err((
            value.span(),
            format!("{n} is more than the maximum, {}", bounds.max),
        ))
    } else {
        Ok(n)
    }
}

/// A TOML table as a JSON object. Datetimes become their TOML text; a float
/// with no JSON form (nan, inf) is an error naming its key; so is nesting
/// deeper than a plugin could decode.
pub(super) fn toml_table_to_json(
    table: toml::Table,
    at: &str,
) -> Result<serde_json::Map<String, Value>, (String, String)> {
    let map = table_to_json(table, at)?;
    outboard_proto::json::check_struct(&map).map_err(|deep| (at.to_owned(), deep.to_string()))?;
    Ok(map)
}

/// [`toml_table_to_json`] for any table, nested ones included.
fn table_to_json(
    table: toml::Table,
    at: &str,
) -> Result<serde_json::Map<String, Value>, (String, String)> {
    table
        .into_iter()
        .map(|(k, v)| {
            let here = format!("{at}.{k}");
            toml_to_json(v, &here).map(|v| (k, v))
        })
        .collect()
}

/// One TOML value as JSON; `at` names it in an error (`config.tags[1]`).
/// The TOML parser bounds the nesting, so the recursion is bounded too.
fn toml_to_json(value: toml::Value, at: &str) -> Result<Value, (String, String)> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err((at.to_owned(), format!("{f} has no JSON form")));
            }
        },
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(table_to_json(t, at)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_nested_deeper_than_a_plugin_decodes_is_refused() {
        let toml = |arrays: usize| {
            let text = format!("x = {}1{}", "[".repeat(arrays), "]".repeat(arrays));
            toml::from_str::<toml::Table>(&text).expect("TOML")
        };
        // At the config's top level a value is at level 3; 46 arrays fit.
        assert!(toml_table_to_json(toml(46), "config").is_ok());
        let (field, why) = toml_table_to_json(toml(47), "config").expect_err("too deep");
        assert_eq!(field, "config");
        assert!(
            why.starts_with(&format!("/x{} is nested too deep", "/0".repeat(47))),
            "{why}"
        );
    }
}
