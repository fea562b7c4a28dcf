//! Phases as the host declares them: how subscribers run (one after another
//! or all at once), how long each call may take, and what a plugin's failure
//! does to the phase. The job profile's phases come with defaults that
//! `[phases.NAME]` in `outboard.toml` overrides.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a phase runs its subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// One after another, lowest priority first (ties by name); each sees
    /// the context as patched by those before it; a veto stops the chain.
    #[default]
    Sequential,
    /// All at once on the same context; their patches are merged, and two
    /// plugins writing overlapping paths fail the phase.
    Parallel,
}

impl Mode {
    /// The mode as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::Parallel => "parallel",
        }
    }
}

/// What a plugin's failure (an error, a timeout, a crash) does to the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Record the failure and go on as if the plugin had not been there.
    FailOpen,
    /// The phase fails.
    #[default]
    FailClosed,
}

/// A phase as the host declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PhaseSpec {
    /// How its subscribers run.
    pub mode: Mode,
    /// The per-call timeout of its subscribers; `None`: each plugin's own
    /// `call_timeout`.
    pub timeout: Option<Duration>,
    /// The failure policy of its subscribers, unless a plugin's
    /// subscription overrides it.
    pub failure_policy: FailurePolicy,
}

/// The job profile's phases, in the order `outboard run` runs them.
pub const JOB_PHASES: [&str; 8] = [
    "pre_validation",
    "post_validation",
    "pre_source_prep",
    "post_source_prep",
    "pre_container",
    "post_container",
    "on_error",
    "cleanup",
];

/// The job profile's defaults. Everything up to `pre_container` runs in
/// order and fails closed: a gate that crashes must not wave a job through.
/// `post_container`, `on_error` and `cleanup` observe what happened; they
/// run in parallel and fail open, so a notifier that is down is reported
/// but does not turn a passed job into a failed one.
pub fn job_profile() -> BTreeMap<String, PhaseSpec> {
    JOB_PHASES
        .iter()
        .map(|&name| {
            let observer = matches!(name, "post_container" | "on_error" | "cleanup");
            let spec = PhaseSpec {
                mode: if observer {
                    Mode::Parallel
                } else {
                    Mode::Sequential
                },
                timeout: None,
                failure_policy: if observer {
                    FailurePolicy::FailOpen
                } else {
                    FailurePolicy::FailClosed
                },
            };
            (name.to_owned(), spec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_profile_gates_fail_closed_and_observers_fail_open() {
        let profile = job_profile();
        assert_eq!(profile.len(), JOB_PHASES.len());
        assert_eq!(profile["pre_container"].mode, Mode::Sequential);
        assert_eq!(
            profile["pre_container"].failure_policy,
            FailurePolicy::FailClosed
        );
        assert_eq!(profile["post_container"].mode, Mode::Parallel);
        assert_eq!(profile["cleanup"].failure_policy, FailurePolicy::FailOpen);
    }
}
