//! What a dispatch did: the [`Report`], one [`Entry`] per subscriber, and
//! their serialization; and how a subscriber's call or failure is entered.

use std::sync::Arc;
use std::time::Duration;

use outboard_proto::patch::PatchOp;
use serde::Serialize;
use serde_json::Value;

use super::call::Call;
use crate::config::{FailurePolicy, Mode};
use crate::error::CallError;
use crate::instance::Reply;

/// What one dispatch of a phase did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The phase.
    pub phase: Arc<str>,
    /// How it ran.
    pub mode: Mode,
    /// The id sent to every plugin with this dispatch.
    pub invocation_id: String,
    /// The phase's result.
    pub verdict: Verdict,
    /// Every subscribed plugin, in priority order.
    pub entries: Vec<Entry>,
    /// The context after the applied patches (`null`, and left out of the
    /// JSON, where a job report leaves it out).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub context: Value,
    /// Wall time of the whole dispatch.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

impl Report {
    /// True if the phase passed (fail-open failures do not count).
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }
}

/// The phase's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Every subscriber continued, or failed under `fail_open`.
    Passed,
    /// A plugin vetoed the phase.
    Vetoed {
        /// The plugin that vetoed.
        plugin: Arc<str>,
        /// Its reason.
        message: String,
    },
    /// A plugin failed under `fail_closed`, or two plugins' patches
    /// conflicted (then both are named).
    Failed {
        /// The plugins responsible: one, both of a conflict, or none when
        /// the host refused the dispatch.
        plugins: Vec<Arc<str>>,
        /// What went wrong.
        error: String,
    },
}

/// One plugin's part in a dispatch.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// Its priority for this phase.
    pub priority: i32,
    /// Its failure policy for this phase.
    pub policy: FailurePolicy,
    /// What happened.
    pub outcome: Outcome,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// How long its call took, retries included (zero if skipped).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Attempts made (more than 1 after retries; 0 if skipped).
    pub attempts: u32,
    /// The patch it returned.
    #[serde(serialize_with = "patch_json")]
    pub patch: Vec<PatchOp>,
    /// Its message, or the error.
    pub message: String,
}

/// What happened to one plugin in a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It continued; its patch was applied (or, in a parallel phase that
    /// failed, would have been).
    Ok,
    /// It vetoed the phase.
    Vetoed,
    /// It failed; see [`FailureKind`] and the policy.
    Failed,
    /// It was not called because the phase had already stopped.
    Skipped,
}

/// Why a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// It did not answer within its timeout and was cut off.
    Timeout,
    /// Its process exited during the call (or before it).
    Crashed,
    /// It was restarting, or quarantined, and not ready by the deadline.
    Unavailable,
    /// It answered with an error status, or an answer the host cannot use.
    Error,
    /// Its patch overlaps another plugin's in a parallel phase.
    Conflict,
    /// Its patch does not apply to the context.
    InvalidPatch,
}

impl FailureKind {
    /// Every kind, for tests that check each is named and counted.
    #[cfg(test)]
    pub(crate) const ALL: [FailureKind; 6] = [
        FailureKind::Timeout,
        FailureKind::Crashed,
        FailureKind::Unavailable,
        FailureKind::Error,
        FailureKind::Conflict,
        FailureKind::InvalidPatch,
    ];

    /// The kind of a failed call. Every variant is listed, so a new one is
    /// classified on purpose rather than by a catch-all.
    pub(super) fn of(err: &CallError) -> FailureKind {
        match err {
            CallError::Timeout(_) => FailureKind::Timeout,
            CallError::Crashed { .. } => FailureKind::Crashed,
            CallError::NotReady(_) => FailureKind::Unavailable,
            CallError::Unavailable(_)
            | CallError::PeerRefused(_)
            | CallError::Unauthenticated(_)
            | CallError::Status { .. }
            | CallError::InvalidResponse(_) => FailureKind::Error,
        }
    }

    /// The outcome a failed call of this kind is counted under, in the
    /// words `/metrics` and `outboard status` use (`timed_out`, `crashed`,
    /// else `failed`), which a call's span says too.
    pub fn outcome(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timed_out",
            FailureKind::Crashed => "crashed",
            FailureKind::Unavailable
            | FailureKind::Error
            | FailureKind::Conflict
            | FailureKind::InvalidPatch => "failed",
        }
    }

    /// The kind as the report's JSON spells it (`timeout`, `invalid_patch`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Crashed => "crashed",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Error => "error",
            FailureKind::Conflict => "conflict",
            FailureKind::InvalidPatch => "invalid_patch",
        }
    }
}

impl Verdict {
    /// The verdict's `result` as the report's JSON spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Vetoed { .. } => "vetoed",
            Verdict::Failed { .. } => "failed",
        }
    }
}

impl Entry {
    /// Enters a subscriber's call: how long it took, the attempts, and its
    /// reply or failure.
    pub(super) fn record(&mut self, call: Call) {
        self.duration = call.duration;
        self.attempts = call.attempts;
        match call.reply {
            Ok(Reply::Continue { patch, message }) => {
                self.outcome = Outcome::Ok;
                self.message = message;
                let refused = super::rules::check(&patch);
                self.patch = patch;
                if let Some(why) = refused {
                    self.invalid_patch(why);
                }
            }
            Ok(Reply::Abort { message }) => {
                self.outcome = Outcome::Vetoed;
                self.message = message;
            }
            Err(err) => self.fail(FailureKind::of(&err), err.to_string()),
        }
    }

    /// Marks the plugin failed; under `fail_open` the failure is logged,
    /// since the phase goes on without a word about it.
    pub(super) fn fail(&mut self, kind: FailureKind, message: String) {
        self.outcome = Outcome::Failed;
        self.failure = Some(kind);
        self.message = message;
        if self.policy == FailurePolicy::FailOpen {
            tracing::warn!(
                plugin = &*self.plugin,
                "failed, ignored (fail_open): {}",
                crate::output::Escaped::line(&self.message)
            );
        }
    }

    /// Marks the plugin failed because its patch does not apply.
    pub(super) fn invalid_patch(&mut self, err: impl std::fmt::Display) {
        self.fail(
            FailureKind::InvalidPatch,
            format!("its patch does not apply: {err}"),
        );
    }

    /// The verdict if this entry stops the phase: a veto, or a fail-closed
    /// failure.
    pub(super) fn stops_phase(&self) -> Option<Verdict> {
        match (self.outcome, self.policy) {
            (Outcome::Vetoed, _) => Some(Verdict::Vetoed {
                plugin: self.plugin.clone(),
                message: self.message.clone(),
            }),
            (Outcome::Failed, FailurePolicy::FailClosed) => Some(Verdict::Failed {
                plugins: vec![self.plugin.clone()],
                error: self.message.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
impl Entry {
    /// An entry for `plugin` that continued with `patch`, for tests.
    pub(crate) fn continued(plugin: &str, policy: FailurePolicy, patch: Vec<PatchOp>) -> Entry {
        Entry {
            plugin: plugin.into(),
            priority: 0,
            policy,
            outcome: Outcome::Ok,
            failure: None,
            duration: Duration::ZERO,
            attempts: 1,
            patch,
            message: String::new(),
        }
    }
}

/// A patch as JSON: `[{"op": "set", "path": "/env/X", "value": ...}, ...]`.
pub fn patch_to_json(patch: &[PatchOp]) -> Value {
    Value::Array(
        patch
            .iter()
            .map(|op| match op {
                PatchOp::Set { path, value } => {
                    serde_json::json!({"op": "set", "path": path.to_string(), "value": value})
                }
                PatchOp::Remove { path } => {
                    serde_json::json!({"op": "remove", "path": path.to_string()})
                }
            })
            .collect(),
    )
}

/// Serializes a patch as [`patch_to_json`] writes it.
fn patch_json<S: serde::Serializer>(patch: &[PatchOp], s: S) -> Result<S::Ok, S::Error> {
    patch_to_json(patch).serialize(s)
}

/// Serializes a duration as milliseconds, to the microsecond.
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_entry_serializes_its_duration_in_milliseconds_and_its_patch_as_json() {
        let entry = Entry {
            plugin: "a".into(),
            priority: 5,
            policy: FailurePolicy::FailOpen,
            outcome: Outcome::Failed,
            failure: Some(FailureKind::of(&CallError::Timeout(Duration::from_secs(1)))),
            duration: Duration::from_micros(1500),
            attempts: 2,
            patch: vec![PatchOp::set("/env/X", "1").expect("valid path")],
            message: "timed out after 1s".into(),
        };
        assert_eq!(
            serde_json::to_value(&entry).expect("serializes"),
            json!({
                "plugin": "a", "priority": 5, "policy": "fail_open",
                "outcome": "failed", "failure": "timeout", "duration_ms": 1.5,
                "attempts": 2, "message": "timed out after 1s",
                "patch": [{"op": "set", "path": "/env/X", "value": "1"}],
            })
        );
    }

    #[test]
    fn kinds_and_verdicts_are_named_as_their_json_spells_them() {
        for kind in FailureKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                kind.as_str()
            );
        }
        let failed = Verdict::Failed {
            plugins: vec![],
            error: "x".into(),
        };
        let vetoed = Verdict::Vetoed {
            plugin: "p".into(),
            message: "m".into(),
        };
        for verdict in [Verdict::Passed, vetoed, failed] {
            assert_eq!(
                serde_json::to_value(&verdict).expect("serializes")["result"],
                verdict.as_str()
            );
        }
    }

    #[test]
    fn call_errors_are_classified() {
        let cases = [
            (
                CallError::NotReady("restarting".into()),
                FailureKind::Unavailable,
            ),
            (
                CallError::Crashed {
                    status: "status 1".into(),
                    stderr: Vec::new(),
                },
                FailureKind::Crashed,
            ),
            (CallError::Unavailable("gone".into()), FailureKind::Error),
            (CallError::InvalidResponse("bad".into()), FailureKind::Error),
        ];
        for (err, kind) in cases {
            assert_eq!(FailureKind::of(&err), kind, "{err}");
        }
    }
}
