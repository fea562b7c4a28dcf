//! Which parts of a plugin's config are secret, so that a schema violation
//! names their path and type but never quotes their value: such errors end
//! up in terminals, CI logs and reports.
//!
//! A key is secret when the plugin's schema marks its property
//! `"writeOnly": true` (JSON Schema's annotation for values that are sent
//! but never shown) or `"x-secret": true`, or when its name looks like one
//! (`token`, `password`, `api_key`, ...).

use serde_json::Value;

/// Parts of a key name, lowercased, that mark it as secret.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "key",
    "credential",
    "auth",
    "cookie",
    "private",
];

/// The secret keys of one plugin's configs.
#[derive(Debug, Clone, Default)]
pub(super) struct SecretKeys {
    /// Property names the schema marks secret, wherever they are declared
    /// (a `$ref` or an `allOf` cannot hide one).
    marked: Vec<String>,
}

impl SecretKeys {
    /// The keys `schema` marks secret.
    pub(super) fn of_schema(schema: Option<&Value>) -> SecretKeys {
        let mut marked = Vec::new();
        if let Some(schema) = schema {
            collect_marked(schema, schema, &mut marked);
        }
        marked.sort();
        marked.dedup();
        SecretKeys { marked }
    }

    /// `true` if the value at `pointer` (a JSON Pointer into the config),
    /// which is `value`, is secret or holds a secret.
    pub(super) fn covers(&self, pointer: &str, value: &Value) -> bool {
        pointer
            .split('/')
            .skip(1)
            .any(|segment| self.is_secret(&segment.replace("~1", "/").replace("~0", "~")))
            || self.holds_secret(value)
    }

    fn is_secret(&self, key: &str) -> bool {
        let lower = key.to_lowercase();
        self.marked.iter().any(|m| m == key) || SECRET_WORDS.iter().any(|w| lower.contains(w))
    }

    /// `true` if an object inside `value` has a secret key.
    fn holds_secret(&self, value: &Value) -> bool {
        match value {
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| self.is_secret(k) || self.holds_secret(v)),
            Value::Array(items) => items.iter().any(|v| self.holds_secret(v)),
            _ => false,
        }
    }
}

/// Adds to `out` every property name under a `properties` of `schema`
/// (part of `root`) whose subschema is marked secret.
fn collect_marked(schema: &Value, root: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, sub) in props {
                    if marked_secret(sub, root) {
                        out.push(name.clone());
                    }
                }
            }
            map.values().for_each(|v| collect_marked(v, root, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_marked(v, root, out)),
        _ => {}
    }
}

/// `true` if `schema` says `"writeOnly": true` or `"x-secret": true`, itself
/// or through a chain of local `$ref`s (a few deep: a cycle ends it).
fn marked_secret<'a>(mut schema: &'a Value, root: &'a Value) -> bool {
    for _ in 0..8 {
        let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
        if flag("writeOnly") || flag("x-secret") {
            return true;
        }
        let target = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| root.pointer(pointer));
        match target {
            Some(next) => schema = next,
            None => return false,
        }
    }
    false
}

/// What a withheld value is called in a message: `the secret string`.
pub(super) fn placeholder(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("the secret {kind}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn marked_and_named_keys() {
        let schema = json!({
            "properties": {
                "webhook": {"type": "string", "writeOnly": true},
                "nested": {"$ref": "#/$defs/n"},
                "plain": {"type": "string", "writeOnly": false}
            },
            "$defs": {"n": {"properties": {"dsn": {"x-secret": true}}}}
        });
        let keys = SecretKeys::of_schema(Some(&schema));
        assert!(keys.covers("/webhook", &json!("x")));
        assert!(keys.covers("/nested/dsn", &json!(1)));
        assert!(keys.covers("/API_Token/0", &json!("x")));
        assert!(keys.covers("/a~1password", &json!("x")));
        assert!(!keys.covers("/plain", &json!("x")));
        assert!(!keys.covers("", &json!({"plain": 1})));
        assert!(keys.covers("", &json!({"plain": [{"private_key": 1}]})));
    }
}
