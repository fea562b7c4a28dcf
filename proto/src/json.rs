//! Conversions between `google.protobuf.Struct` / `Value` and `serde_json`.
//!
//! A protobuf number is an `f64`; converting back, an integral number within
//! ±2^53 becomes a JSON integer so that `3` stays `3`, not `3.0`. A non-finite
//! number (NaN, ±inf) has no JSON form and becomes `null`.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number};

/// The largest integer an `f64` holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

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
