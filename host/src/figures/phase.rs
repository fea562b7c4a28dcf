//! One phase's dispatches: how long they took, how they ended, and how
//! many parallel ones failed on conflicting patches. Resolved once per
//! routing generation into the phase's [`Route`](crate::Route).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::histogram::{Buckets, Histogram};
use crate::dispatch::{FailureKind, Report, Verdict};

/// A dispatch's result, as the phase's figures count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhaseResult {
    /// Every subscriber continued, or failed under `fail_open`.
    Passed,
    /// A plugin vetoed it.
    Vetoed,
    /// A plugin failed it, or patches conflicted.
    Failed,
    /// The host refused it before calling anyone (shutting down, or a
    /// context that cannot be sent).
    Refused,
}

impl PhaseResult {
    /// Every result, in a fixed order, with its name.
    const ALL: [(PhaseResult, &'static str); 4] = [
        (PhaseResult::Passed, "passed"),
        (PhaseResult::Vetoed, "vetoed"),
        (PhaseResult::Failed, "failed"),
        (PhaseResult::Refused, "refused"),
    ];
}

/// The counters of one phase.
#[derive(Debug, Default)]
pub(crate) struct PhaseCounters {
    /// Dispatches by [`PhaseResult`], in the order of `PhaseResult::ALL`.
    verdicts: [AtomicU64; 4],
    /// Parallel dispatches that failed because two patches overlapped.
    conflicts: AtomicU64,
    /// How long the dispatches that ran took.
    duration: Buckets,
}

/// One phase's dispatches at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseFigures {
    /// The phase.
    pub phase: String,
    /// How long its dispatches took, start to report (refused ones are not
    /// in it).
    pub duration: Histogram,
    /// Dispatches of it (a parallel phase) that failed on conflicting
    /// patches; each is also counted as `failed` in `verdicts`.
    pub conflicts: u64,
    /// Dispatches by result: `passed`, `vetoed`, `failed`, `refused`
    /// (zeros included).
    pub verdicts: BTreeMap<String, u64>,
}

impl PhaseCounters {
    /// Counts a dispatch that ran and reported `report`.
    pub(crate) fn record(&self, report: &Report) {
        let result = match &report.verdict {
            Verdict::Passed => PhaseResult::Passed,
            Verdict::Vetoed { .. } => PhaseResult::Vetoed,
            Verdict::Failed { .. } => PhaseResult::Failed,
        };
        self.count(result);
        self.duration.record(report.duration);
        let conflicted = report
            .entries
            .iter()
            .any(|e| e.failure == Some(FailureKind::Conflict));
        if matches!(report.verdict, Verdict::Failed { .. }) && conflicted {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a dispatch the host refused before calling anyone.
    pub(crate) fn refused(&self) {
        self.count(PhaseResult::Refused);
    }

    fn count(&self, result: PhaseResult) {
        if let Some(i) = PhaseResult::ALL.iter().position(|(r, _)| *r == result) {
            self.verdicts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The figures of `phase` now.
    pub(crate) fn snapshot(&self, phase: &str) -> PhaseFigures {
        PhaseFigures {
            phase: phase.to_owned(),
            duration: self.duration.snapshot(),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            verdicts: PhaseResult::ALL
                .iter()
                .zip(&self.verdicts)
                .map(|((_, name), c)| ((*name).to_owned(), c.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
