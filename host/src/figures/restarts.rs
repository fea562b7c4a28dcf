//! Why a plugin was started again: a small fixed set of reasons, each the
//! supervisor (or a reload) already tells apart, counted per plugin.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

/// Why a start after the first happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartReason {
    /// Its process exited with a failure (or a signal) and its restart
    /// policy restarts it.
    Crashed,
    /// Its process exited cleanly and its restart policy (`always`)
    /// restarts it.
    Exited,
    /// It missed its health checks and was killed.
    Health,
    /// The previous start failed (spawn, handshake, configure, health):
    /// another attempt, after backoff.
    StartFailed,
    /// An operator asked for it (a restart, or a quarantined plugin
    /// started afresh).
    Operator,
    /// An operator enabled it after disabling it.
    Enabled,
    /// A reload replaced it blue/green with a new instance.
    Reload,
}

impl RestartReason {
    /// Every reason, in a fixed order.
    pub const ALL: [RestartReason; 7] = [
        RestartReason::Crashed,
        RestartReason::Exited,
        RestartReason::Health,
        RestartReason::StartFailed,
        RestartReason::Operator,
        RestartReason::Enabled,
        RestartReason::Reload,
    ];

    /// Its name, as labels and the JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Crashed => "crashed",
            RestartReason::Exited => "exited",
            RestartReason::Health => "health",
            RestartReason::StartFailed => "start_failed",
            RestartReason::Operator => "operator",
            RestartReason::Enabled => "enabled",
            RestartReason::Reload => "reload",
        }
    }

    /// Its place in [`RestartReason::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// A plugin's restarts by reason.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    counts: [AtomicU64; RestartReason::ALL.len()],
    /// The latest restart's reason: its index plus one; 0 before any.
    last: AtomicUsize,
}

impl Restarts {
    /// Counts one restart for `reason`.
    pub(crate) fn record(&self, reason: RestartReason) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        self.last.store(reason.index() + 1, Ordering::Relaxed);
    }

    /// The latest restart's reason; `None` before any.
    pub(crate) fn last(&self) -> Option<RestartReason> {
        let last = self.last.load(Ordering::Relaxed);
        RestartReason::ALL.get(last.checked_sub(1)?).copied()
    }

    /// Every reason with its count, zeros included (so each series exists
    /// from the start).
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        RestartReason::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    self.counts[r.index()].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_at_its_index() {
        for (i, reason) in RestartReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            let json = serde_json::to_value(reason).unwrap_or_default();
            assert_eq!(json, serde_json::json!(reason.as_str()));
        }
    }

    #[test]
    fn restarts_count_under_their_reason_and_zeros_are_shown() {
        let restarts = Restarts::default();
        restarts.record(RestartReason::Crashed);
        restarts.record(RestartReason::Crashed);
        restarts.record(RestartReason::Reload);
        let counts = restarts.snapshot();
        assert_eq!(counts.len(), RestartReason::ALL.len());
        assert_eq!(counts.get("crashed"), Some(&2));
        assert_eq!(counts.get("reload"), Some(&1));
        assert_eq!(counts.get("health"), Some(&0));
        assert_eq!(counts.values().sum::<u64>(), 3);
        assert_eq!(restarts.last(), Some(RestartReason::Reload));
        assert_eq!(Restarts::default().last(), None);
    }
}
