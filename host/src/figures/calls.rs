//! One plugin's calls for one phase: how many ended how, and how long the
//! calls made took. Resolved once per routing generation into each
//! [`Subscriber`](crate::Subscriber), so a dispatch records with a few
//! atomic adds and no lookup.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::histogram::{Buckets, Histogram};
use crate::dispatch::{Entry, FailureKind, Outcome};

/// The counters of one (plugin, phase).
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    ok: AtomicU64,
    vetoed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    crashed: AtomicU64,
    skipped: AtomicU64,
    /// The durations of the calls made (skipped ones are not).
    duration: Buckets,
}

/// Calls by outcome. Each call counts once, under one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Outcomes {
    /// Calls that continued.
    pub ok: u64,
    /// Calls that vetoed their phase.
    pub vetoed: u64,
    /// Calls that failed other than by a timeout or a crash: an error
    /// status, unavailable, a conflict, an invalid patch.
    pub failed: u64,
    /// Calls cut off at their timeout.
    pub timed_out: u64,
    /// Calls during which (or before which) the plugin's process exited.
    pub crashed: u64,
    /// Subscriptions not called because the phase had already stopped.
    pub skipped: u64,
}

impl Outcomes {
    /// Every call counted, skipped ones included.
    pub fn total(&self) -> u64 {
        self.ok + self.vetoed + self.failed + self.timed_out + self.crashed + self.skipped
    }

    /// Each outcome with its name as the reports spell it (`ok`, `vetoed`,
    /// `failed`, `timed_out`, `crashed`, `skipped`): a fixed set, for
    /// labels.
    pub fn by_name(&self) -> [(&'static str, u64); 6] {
        [
            ("ok", self.ok),
            ("vetoed", self.vetoed),
            ("failed", self.failed),
            ("timed_out", self.timed_out),
            ("crashed", self.crashed),
            ("skipped", self.skipped),
        ]
    }

    /// These counts plus `other`'s.
    pub(crate) fn add(&mut self, other: &Outcomes) {
        self.ok += other.ok;
        self.vetoed += other.vetoed;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.crashed += other.crashed;
        self.skipped += other.skipped;
    }
}

/// One plugin's calls for one phase, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallFigures {
    /// The phase.
    pub phase: String,
    /// Calls by outcome.
    pub outcomes: Outcomes,
    /// How long the calls made took (retries included; skipped ones are
    /// not in it).
    pub duration: Histogram,
}

impl CallCounters {
    /// Counts one dispatch entry: its outcome, and its duration if the call
    /// was made.
    pub(crate) fn record(&self, entry: &Entry) {
        let counter = match (entry.outcome, entry.failure) {
            (Outcome::Ok, _) => &self.ok,
            (Outcome::Vetoed, _) => &self.vetoed,
            (Outcome::Skipped, _) => &self.skipped,
            (Outcome::Failed, Some(FailureKind::Timeout)) => &self.timed_out,
            (Outcome::Failed, Some(FailureKind::Crashed)) => &self.crashed,
            (Outcome::Failed, _) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if entry.outcome != Outcome::Skipped {
            self.duration.record(entry.duration);
        }
    }

    /// The counts by outcome now.
    pub(crate) fn outcomes(&self) -> Outcomes {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Outcomes {
            ok: count(&self.ok),
            vetoed: count(&self.vetoed),
            failed: count(&self.failed),
            timed_out: count(&self.timed_out),
            crashed: count(&self.crashed),
            skipped: count(&self.skipped),
        }
    }

    /// The figures of `phase` now.
    pub(crate) fn snapshot(&self, phase: &str) -> CallFigures {
        CallFigures {
            phase: phase.to_owned(),
            outcomes: self.outcomes(),
            duration: self.duration.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::FailurePolicy;

    /// A call's span says its outcome with [`FailureKind::outcome`]; the
    /// counters must file every kind under that same word.
    #[test]
    fn every_failure_is_counted_under_the_word_its_span_says() {
        for kind in FailureKind::ALL {
            let counters = CallCounters::default();
            counters.record(&Entry {
                plugin: "p".into(),
                priority: 0,
                policy: FailurePolicy::FailOpen,
                outcome: Outcome::Failed,
                failure: Some(kind),
                duration: Duration::from_millis(1),
                attempts: 1,
                patch: Vec::new(),
                message: String::new(),
            });
            let counted: Vec<&str> = counters
                .outcomes()
                .by_name()
                .into_iter()
                .filter(|(_, n)| *n == 1)
                .map(|(name, _)| name)
                .collect();
            assert_eq!(counted, [kind.outcome()], "{kind:?}");
        }
    }
}
