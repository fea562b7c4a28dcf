//! File operations an `Invoke` asks for, to test a filesystem wall from
//! inside a running plugin: the context's `stress_files` is a list of
//! `{"read": PATH}` (read the file), `{"write": PATH}` (create or truncate
//! it and write `stress`) and `{"connect": PATH}` (connect to the Unix
//! socket there, then close), tried in turn. The reply then sets
//! `/metadata/stress_files` to one result per operation, in order:
//! `{"op": "read", "path": PATH, "ok": true, "error": null}`, or with
//! `"ok": false` and the error's text (`"Permission denied (os error 13)"`).
//! An entry that is neither is reported as failed, naming what was wrong.

use outboard_plugin::Reply;
use serde_json::{Map, Value, json};

/// The context key listing the operations.
const KEY: &str = "stress_files";

/// `reply` with the results of the operations `context` asks for, if it
/// asks for any.
pub(crate) fn attempt(context: &Map<String, Value>, reply: Reply) -> Reply {
    let Some(Value::Array(operations)) = context.get(KEY) else {
        return reply;
    };
    let results: Vec<Value> = operations.iter().map(one).collect();
    reply.set("/metadata/stress_files", Value::Array(results))
}

/// Tries one operation.
fn one(operation: &Value) -> Value {
    let (op, path) = match operation.as_object().and_then(|o| o.iter().next()) {
        Some((op, Value::String(path))) if ["read", "write", "connect"].contains(&op.as_str()) => {
            (op.as_str(), path)
        }
        _ => {
            return json!({
                "op": null, "path": null, "ok": false,
                "error": format!("not {{\"read\" | \"write\" | \"connect\": PATH}}: {operation}"),
            });
        }
    };
    let outcome = match op {
        "read" => std::fs::read(path).map(drop),
        "write" => std::fs::write(path, "stress"),
        _ => std::os::unix::net::UnixStream::connect(path).map(drop),
    };
    json!({
        "op": op,
        "path": path,
        "ok": outcome.is_ok(),
        "error": outcome.err().map(|e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_operation_is_tried_and_reported_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let missing = dir.path().join("missing/f");
        let socket = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let context = json!({KEY: [
            {"write": file},
            {"read": file},
            {"read": missing},
            {"delete": file},
            {"connect": socket},
        ]});
        let reply = attempt(context.as_object().unwrap(), Reply::ok());
        let patch = reply.patch().unwrap();
        let [outboard_proto::patch::PatchOp::Set { value: results, .. }] = patch else {
            panic!("one set: {patch:?}");
        };
        assert_eq!(results[0]["ok"], json!(true), "{results}");
        assert_eq!(results[1]["ok"], json!(true), "{results}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "stress");
        assert_eq!(results[2]["ok"], json!(false));
        assert_eq!(
            results[2]["error"],
            json!("No such file or directory (os error 2)")
        );
        assert_eq!(results[3]["op"], Value::Null);
        assert!(results[3]["error"].as_str().unwrap().contains("delete"));
        assert_eq!(results[4]["ok"], json!(true), "{results}");
    }

    #[test]
    fn a_context_without_the_key_changes_nothing() {
        let reply = attempt(&Map::new(), Reply::ok());
        assert!(reply.patch().unwrap().is_empty());
    }
}
