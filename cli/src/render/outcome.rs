//! One plugin's part in a phase, in a word.

use outboard_host::{Entry, FailureKind, FailurePolicy, Outcome};

/// "ok", "vetoed", "skipped", or the failure: "timeout", "crashed",
/// "conflict"..., with "(ignored)" under fail_open.
pub(super) fn outcome_word(e: &Entry) -> String {
    let kind = match (e.outcome, e.failure) {
        (Outcome::Ok, _) => return "ok".to_owned(),
        (Outcome::Vetoed, _) => return "vetoed".to_owned(),
        (Outcome::Skipped, _) => return "skipped".to_owned(),
        // An outcome this renderer does not know yet reads as a failure.
        (_, kind) => kind,
    };
    let word = match kind {
        Some(FailureKind::Timeout) => "timeout",
        Some(FailureKind::Crashed) => "crashed",
        Some(FailureKind::Unavailable) => "unavailable",
        Some(FailureKind::Conflict) => "conflict",
        Some(FailureKind::InvalidPatch) => "bad patch",
        Some(FailureKind::Error) | Some(_) | None => "failed",
    };
    // A conflict fails the phase whatever the policy.
    if e.policy == FailurePolicy::FailOpen && kind != Some(FailureKind::Conflict) {
        format!("{word} (ignored)")
    } else {
        word.to_owned()
    }
}
