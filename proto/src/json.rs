//! Conversions between `google.protobuf.Struct` / `Value` and `serde_json`.
//!
//! A protobuf number is an `f64`; converting back, an integral number within
//! ±2^53 becomes a JSON integer so that `3` stays `3`, not `3.0`. A non-finite
//! number (NaN, ±inf) has no JSON form and becomes `null`.
//!
//! Nesting: protobuf decoders refuse a message nested more than 100
//! messages deep (prost, upb). In a `Struct`, a JSON object costs three
//! message levels (the `Value`, its `Struct`, and the map entry holding each
//! member), an array two (the `Value` and its `ListValue`), a scalar one.
//! [`check_struct`] and [`check_value`] hold a context, a config or a patched
//! value to [`MAX_NESTING`] levels, so that whatever passes them reaches
//! every plugin; the one limit for patches, `--context` and config.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number};

/// The largest integer an `f64` holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The deepest a context or config may nest, in protobuf message levels
/// counted from its `Struct` (1): below the decoders' 100, leaving room
/// for the request around it. 96 is 32 levels of JSON objects.
pub const MAX_NESTING: usize = 96;

/// A value nested deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{at} is nested too deep: more than {MAX_NESTING} protobuf message levels \
     (an object costs 3, an array 2), more than a plugin can decode"
)]
pub struct TooDeep {
    /// A JSON Pointer (from the checked value) to the first value past the
    /// limit; `the value` for the value itself.
    pub at: String,
}

/// Checks a JSON object sent as a `Struct` (a context, a config).
pub fn check_struct(map: &Map<String, serde_json::Value>) -> Result<(), TooDeep> {
    // The Struct is level 1, each member's map entry level 2.
    members(map, 2)
}

/// Checks `value` as a `google.protobuf.Value` whose parent message is at
/// level `above` (2 for a member of a top-level `Struct`).
pub fn check_value(value: &serde_json::Value, above: usize) -> Result<(), TooDeep> {
    let here = above + 1;
    let inner = here + 1; // its Struct or ListValue
    let fits = match value {
        serde_json::Value::Object(_) | serde_json::Value::Array(_) => inner <= MAX_NESTING,
        _ => here <= MAX_NESTING,
    };
    if !fits {
        return Err(TooDeep {
            at: "the value".to_owned(),
        });
    }
    // The recursion stops at the limit, however deep the value is.
    match value {
        serde_json::Value::Object(map) => members(map, inner + 1),
        serde_json::Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            check_value(item, inner).map_err(|e| e.inside(&i.to_string()))
        }),
        _ => Ok(()),
    }
}

/// Checks the members of an object whose map entries are at level `entry`.
fn members(map: &Map<String, serde_json::Value>, entry: usize) -> Result<(), TooDeep> {
    map.iter()
        .try_for_each(|(key, member)| check_value(member, entry).map_err(|e| e.inside(key)))
}

impl TooDeep {
    /// The error with `token` put in front of its pointer.
    fn inside(self, token: &str) -> TooDeep {
        let token = token.replace('~', "~0").replace('/', "~1");
        let at = match self.at.as_str() {
            "the value" => format!("/{token}"),
            rest => format!("/{token}{rest}"),
        };
        TooDeep { at }
    }
}

/// A `Struct` as a JSON object.
pub fn struct_to_json(s: &Struct) -> Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

/// A protobuf `Value` as JSON.
pub fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        // In range and integral, so the cast is exact.
        serde_json::Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// A JSON object as a `Struct`.
pub fn json_to_struct(m: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// JSON as a protobuf `Value`. Integers beyond ±2^53 lose precision, as
/// they do in any JSON parser that reads numbers as doubles.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_kind() {
        let doc = json!({
            "null": null, "t": true, "int": 3, "neg": -7, "float": 1.5,
            "s": "x", "list": [1, "a", [], {}], "obj": {"nested": {"deep": false}}
        });
        let serde_json::Value::Object(map) = &doc else {
            unreachable!()
        };
        let back = serde_json::Value::Object(struct_to_json(&json_to_struct(map)));
        assert_eq!(back, doc);
    }

    fn nested(objects: usize, arrays: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..arrays {
            v = json!([v]);
        }
        for _ in 0..objects {
            v = json!({"k": v});
        }
        v
    }

    /// Whether a context holding `value` at `/c` decodes inside a request.
    fn decodes(value: &serde_json::Value) -> bool {
        use prost::Message;
        let mut context = Map::new();
        context.insert("c".into(), value.clone());
        let request = crate::v1::InvokeRequest {
            context: Some(json_to_struct(&context)),
            ..Default::default()
        };
        crate::v1::InvokeRequest::decode(request.encode_to_vec().as_slice()).is_ok()
    }

    #[test]
    fn the_limit_counts_levels_as_decoders_do_and_stays_below_theirs() {
        // At /c, a value is at level 3: 31 objects inside it reach 96.
        for (objects, arrays) in [(31, 0), (0, 46), (20, 16)] {
            let ok = json!({"c": nested(objects, arrays)});
            assert_eq!(check_struct(ok.as_object().expect("an object")), Ok(()));
            assert!(decodes(&ok["c"]));
        }
        // The error points at the first value past the limit.
        for (objects, arrays, at) in [(32, 0, 32), (0, 47, 48), (21, 16, 37)] {
            let deep = json!({"c": nested(objects, arrays)});
            let err = check_struct(deep.as_object().expect("an object")).expect_err("too deep");
            assert_eq!(err.at.matches('/').count(), at, "{}", err.at);
            assert!(err.at.starts_with("/c/"), "{}", err.at);
        }
        // What the limit leaves out, decoders refuse a few levels further.
        assert!(!decodes(&nested(33, 0)) && !decodes(&nested(0, 49)));
        let err = check_value(&json!({"a/b": {"x~": [[1]]}}), 94).expect_err("too deep");
        assert_eq!(err.at, "/a~1b");
        assert_eq!(
            err.to_string(),
            "/a~1b is nested too deep: more than 96 protobuf message levels \
             (an object costs 3, an array 2), more than a plugin can decode"
        );
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let v = Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(value_to_json(&v), serde_json::Value::Null);
        let unset = Value { kind: None };
        assert_eq!(value_to_json(&unset), serde_json::Value::Null);
    }
}
