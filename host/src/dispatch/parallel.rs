//! A parallel phase: every subscriber at once on the same context, their
//! patches merged; two plugins writing overlapping paths, or into the same
//! array, is a conflict that names both.

use outboard_proto::patch::{self, PatchOp};
use serde_json::Value;

use super::Route;
use super::report::{Entry, FailureKind, Outcome, Verdict};
use crate::context::SentContext;

/// Calls every subscriber of `route` at once, then merges and applies what
/// those that continued want to write. A failed phase leaves `context` as
/// it was.
pub(super) async fn run(
    route: &Route,
    invocation_id: &str,
    context: &mut Value,
    entries: &mut [Entry],
) -> Verdict {
    // One conversion for everyone, per transport: the fast path's
    // subscribers share one encoding of the context, gRPC's one `Struct`.
    let shared = SentContext::of(context);
    let calls = route
        .subscribers
        .iter()
        .map(|sub| sub.call(&route.phase, invocation_id, &shared));
    let calls = futures_util::future::join_all(calls).await;
    drop(shared);
    for (entry, call) in entries.iter_mut().zip(calls) {
        entry.record(call);
    }

    // A veto or a fail-closed failure fails the phase; the first one in
    // priority order is the verdict, all are in the entries.
    if let Some(verdict) = entries.iter().find_map(Entry::stops_phase) {
        return verdict;
    }

    // Merge what the plugins that continued want to write.
    let writers: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == Outcome::Ok && !e.patch.is_empty())
        .map(|(i, _)| i)
        .collect();
    if let Some(verdict) = conflict(context, entries, &writers) {
        return verdict;
    }
    apply(context, entries, writers)
}

/// The verdict if two writers' patches overlap on `context` (the one they
/// saw): both fail, named with the paths they write.
fn conflict(context: &Value, entries: &mut [Entry], writers: &[usize]) -> Option<Verdict> {
    let conflict = patch::merge(context, &patches_of(entries, writers)).err()?;
    let (a, b) = (writers[conflict.first], writers[conflict.second]);
    let (name_a, name_b) = (entries[a].plugin.clone(), entries[b].plugin.clone());
    let what = if conflict.in_array {
        "into the array "
    } else {
        ""
    };
    let error = format!(
        "plugins {name_a} and {name_b} both write {what}{}: {name_a} writes {}, {name_b} writes {}",
        conflict.at, conflict.first_path, conflict.second_path
    );
    for i in [a, b] {
        entries[i].outcome = Outcome::Failed;
        entries[i].failure = Some(FailureKind::Conflict);
        entries[i].message = error.clone();
    }
    Some(Verdict::Failed {
        plugins: vec![name_a, name_b],
        error,
    })
}

/// Applies the writers' patches to `context`. They touch disjoint paths, so
/// applying them one writer after another is the merge, and a failure
/// belongs to exactly one writer. A fail-open writer whose patch does not
/// apply is dropped and the rest applied.
fn apply(context: &mut Value, entries: &mut [Entry], mut writers: Vec<usize>) -> Verdict {
    loop {
        let applied = patch::apply_all(context, &patches_of(entries, &writers));
        let Err((writer, err)) = applied else {
            return Verdict::Passed;
        };
        let entry = &mut entries[writers[writer]];
        entry.invalid_patch(err);
        if let Some(verdict) = entry.stops_phase() {
            return verdict;
        }
        writers.remove(writer);
    }
}

/// The patches of the entries at `writers`.
fn patches_of<'e>(entries: &'e [Entry], writers: &[usize]) -> Vec<&'e [PatchOp]> {
    writers
        .iter()
        .map(|&i| entries[i].patch.as_slice())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::FailurePolicy;

    /// An entry for `plugin` that continued with `patch`.
    fn wrote(plugin: &str, policy: FailurePolicy, patch: Vec<PatchOp>) -> Entry {
        Entry::continued(plugin, policy, patch)
    }

    fn set(path: &str, value: Value) -> PatchOp {
        PatchOp::set(path, value).expect("valid path")
    }

    #[test]
    fn overlapping_writes_fail_both_writers_by_name() {
        let mut entries = [
            wrote(
                "a",
                FailurePolicy::FailOpen,
                vec![set("/env/X", json!("1"))],
            ),
            wrote("b", FailurePolicy::FailOpen, vec![set("/env", json!({}))]),
        ];
        let verdict = conflict(&json!({}), &mut entries, &[0, 1]).expect("a conflict");
        let error = "plugins a and b both write /env: a writes /env/X, b writes /env";
        assert_eq!(
            verdict,
            Verdict::Failed {
                plugins: vec!["a".into(), "b".into()],
                error: error.into(),
            }
        );
        for entry in &entries {
            assert_eq!(
                (entry.outcome, entry.failure, entry.message.as_str()),
                (Outcome::Failed, Some(FailureKind::Conflict), error)
            );
        }
    }

    #[test]
    fn writes_into_one_array_fail_both_writers_naming_the_array() {
        let context = json!({"args": ["a", "b"]});
        let remove = PatchOp::remove("/args/0").expect("valid path");
        let mut entries = [
            wrote("a", FailurePolicy::FailOpen, vec![remove]),
            wrote(
                "b",
                FailurePolicy::FailOpen,
                vec![set("/args/1", json!("z"))],
            ),
        ];
        let verdict = conflict(&context, &mut entries, &[0, 1]).expect("a conflict");
        let error =
            "plugins a and b both write into the array /args: a writes /args/0, b writes /args/1";
        assert_eq!(
            verdict,
            Verdict::Failed {
                plugins: vec!["a".into(), "b".into()],
                error: error.into(),
            }
        );
    }

    #[test]
    fn a_fail_open_patch_that_does_not_apply_is_dropped_and_the_rest_applied() {
        let mut context = json!({"env": {"X": "s"}});
        let mut entries = [
            wrote(
                "a",
                FailurePolicy::FailClosed,
                vec![set("/env/A", json!("1"))],
            ),
            wrote(
                "b",
                FailurePolicy::FailOpen,
                vec![set("/env/X/Y", json!("2"))],
            ),
        ];
        assert_eq!(conflict(&context, &mut entries, &[0, 1]), None);
        assert_eq!(
            apply(&mut context, &mut entries, vec![0, 1]),
            Verdict::Passed
        );
        assert_eq!(context, json!({"env": {"X": "s", "A": "1"}}));
        assert_eq!(entries[0].outcome, Outcome::Ok);
        assert_eq!(entries[1].failure, Some(FailureKind::InvalidPatch));
    }

    #[test]
    fn a_fail_closed_patch_that_does_not_apply_fails_the_phase_untouched() {
        let mut context = json!({"env": {"X": "s"}});
        let mut entries = [
            wrote(
                "a",
                FailurePolicy::FailOpen,
                vec![set("/env/A", json!("1"))],
            ),
            wrote(
                "b",
                FailurePolicy::FailClosed,
                vec![set("/env/X/Y", json!("2"))],
            ),
        ];
        let verdict = apply(&mut context, &mut entries, vec![0, 1]);
        assert!(
            matches!(&verdict, Verdict::Failed { plugins, .. } if plugins[..] == ["b".into()]),
            "{verdict:?}"
        );
        assert_eq!(context, json!({"env": {"X": "s"}}));
    }
}
