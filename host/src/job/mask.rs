//! Keeping redacted values out of the job report.
//!
//! A plugin that redacts a secret (the example `secret-scrubber` sets
//! `/env/API_TOKEN` to `[redacted]`) does so in one phase, but the report
//! keeps the context of every phase, and the patches of every plugin: the
//! phases before it would show the secret in clear. The rule: the report
//! shows each value only as the job left it. A value in a phase's context
//! or in a plugin's patch that is not the value at the same path at the
//! end of the job (a later plugin replaced or removed it) is shown as
//! [`MASK`]. A phase with no subscribers carries no context at all: it is
//! the context of the phase before.

use outboard_proto::patch::PatchOp;
use serde_json::Value;

use crate::dispatch::Report;

/// What a value replaced or removed later in the job is shown as.
pub const MASK: &str = "[masked]";

/// Masks, in `phases`, every value that differs from `last` (the context
/// at the end of the job) at the same path; drops the context of phases
/// with no subscribers.
pub(super) fn mask(phases: &mut [Report], last: &Value) {
    for report in phases {
        if report.entries.is_empty() {
            report.context = Value::Null;
            continue;
        }
        against(&mut report.context, Some(last));
        for entry in &mut report.entries {
            for op in &mut entry.patch {
                if let PatchOp::Set { path, value } = op {
                    let now = path
                        .tokens()
                        .iter()
                        .try_fold(last, |at, token| child(at, token));
                    against(value, now);
                }
            }
        }
    }
}

/// Masks every scalar of `value` that is not the one at the same place in
/// `now` (`None`: nothing there any more).
fn against(value: &mut Value, now: Option<&Value>) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                against(member, now.and_then(|n| child(n, key)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                against(item, now.and_then(|n| n.as_array()?.get(i)));
            }
        }
        scalar => {
            if now != Some(scalar) {
                *scalar = Value::String(MASK.to_owned());
            }
        }
    }
}

/// The member `token` of an object, or element of an array.
fn child<'v>(value: &'v Value, token: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(token.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::{FailurePolicy, Mode};
    use crate::dispatch::{Entry, Verdict};

    fn phase(name: &str, context: Value, patches: Vec<Vec<PatchOp>>) -> Report {
        Report {
            phase: name.into(),
            mode: Mode::Sequential,
            invocation_id: String::new(),
            verdict: Verdict::Passed,
            entries: patches
                .into_iter()
                .map(|patch| Entry::continued("p", FailurePolicy::FailClosed, patch))
                .collect(),
            context,
            duration: Duration::ZERO,
        }
    }

    fn set(path: &str, value: Value) -> PatchOp {
        PatchOp::set(path, value).expect("valid path")
    }

    #[test]
    fn values_replaced_or_removed_later_are_masked_in_contexts_and_patches() {
        let secret = json!({"env": {"TOKEN": "hunter2", "PATH": "/bin"}, "m": {"a": [1, 2]}});
        let mut phases = [
            phase(
                "first",
                secret.clone(),
                vec![vec![set("/m/a", json!([1, 2]))]],
            ),
            phase("empty", secret, vec![]),
            phase(
                "scrub",
                json!({"env": {"TOKEN": "[redacted]", "PATH": "/bin"}, "m": {"a": [1]}}),
                vec![
                    vec![set("/env/NEW", json!({"CRED": "s3"})), set("/x", json!(0))],
                    vec![set("/env/TOKEN", json!("[redacted]"))],
                ],
            ),
        ];
        let last = json!({"env": {"TOKEN": "[redacted]", "PATH": "/bin"}, "m": {"a": [1]}, "x": 0});
        mask(&mut phases, &last);
        assert_eq!(
            phases[0].context,
            json!({"env": {"TOKEN": MASK, "PATH": "/bin"}, "m": {"a": [1, MASK]}})
        );
        assert_eq!(phases[0].entries[0].patch, [set("/m/a", json!([1, MASK]))]);
        assert_eq!(phases[1].context, Value::Null);
        assert_eq!(phases[2].context["env"]["TOKEN"], "[redacted]");
        assert_eq!(
            phases[2].entries[0].patch,
            [set("/env/NEW", json!({"CRED": MASK})), set("/x", json!(0))]
        );
        assert_eq!(
            phases[2].entries[1].patch,
            [set("/env/TOKEN", json!("[redacted]"))]
        );
        let text = serde_json::to_string(&phases[..]).expect("serializes");
        assert!(
            !text.contains("hunter2") && !text.contains("s3\""),
            "{text}"
        );
        assert!(!serde_json::to_value(&phases[1]).expect("serializes")["context"].is_string());
    }
}
