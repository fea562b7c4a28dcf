//! What the host refuses in a patch beyond the patch grammar: `/env` holds
//! a command's environment, so every name a patch puts there must be one
//! `execve` passes on unchanged (as for the `env` of a plugin's config).

use outboard_proto::patch::PatchOp;
use serde_json::Value;

/// Why `ops` may not be applied, naming the variable; `None` if they may.
pub(super) fn check(ops: &[PatchOp]) -> Option<String> {
    ops.iter().find_map(|op| {
        let PatchOp::Set { path, value } = op else {
            // Removing a bad name only makes the environment cleaner.
            return None;
        };
        match path.tokens() {
            [env, name, rest @ ..] if env == "env" => {
                let value = if rest.is_empty() { Some(value) } else { None };
                variable(name, value)
            }
            [env] if env == "env" => value
                .as_object()?
                .iter()
                .find_map(|(name, value)| variable(name, Some(value))),
            _ => None,
        }
    })
}

/// What is wrong with the variable `name` (set to `value`, if known).
fn variable(name: &str, value: Option<&Value>) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Some(format!(
            "{name:?} is not a valid environment variable name (empty, or contains '=' or NUL)"
        ));
    }
    match value {
        Some(Value::String(text)) if text.contains('\0') => Some(format!(
            "the value of environment variable {name:?} contains a NUL byte"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(path: &str, value: Value) -> PatchOp {
        PatchOp::set(path, value).expect("valid path")
    }

    #[test]
    fn bad_names_and_nul_values_are_refused_wherever_they_enter_env() {
        let refused = [
            (set("/env/A=B", json!("1")), "\"A=B\" is not a valid"),
            (set("/env/", json!("1")), "\"\" is not a valid"),
            (set("/env/A\0B", json!("1")), "\"A\\0B\" is not a valid"),
            (set("/env/A=B/x", json!("1")), "\"A=B\" is not a valid"),
            (set("/env", json!({"OK": "1", "X=Y": "2"})), "\"X=Y\""),
            (
                set("/env/A", json!("x\0y")),
                "variable \"A\" contains a NUL",
            ),
            (
                set("/env", json!({"A": "x\0y"})),
                "variable \"A\" contains a NUL",
            ),
        ];
        for (op, want) in refused {
            let why = check(&[set("/env/OK", json!("1")), op.clone()]).expect("refused");
            assert!(why.contains(want), "{op:?}: {why}");
        }
    }

    #[test]
    fn good_names_removes_and_other_keys_pass() {
        let ops = [
            set("/env/PATH", json!("/bin")),
            set("/env", json!({"A": "1", "_b": "2"})),
            PatchOp::remove("/env/A=B").expect("valid path"),
            set("/metadata/A=B", json!("x\0")),
            set("/env", json!("not an object")),
        ];
        assert_eq!(check(&ops), None);
    }
}
