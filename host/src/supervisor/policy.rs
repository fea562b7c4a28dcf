//! The supervisor's decisions, as pure functions of what happened and when:
//! the backoff before a restart, when a run counts as stable, the crash-loop
//! window, health misses, and whether an exit is restarted at all.
//!
//! Nothing here reads a clock, draws a random number or touches a process:
//! times come in as [`Instant`]s and jitter as a number in `[0, 1)`, so every
//! rule is tested directly.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{RestartPolicy, Supervision};

/// What the supervisor remembers between starts of one plugin.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The plugin's knobs.
    knobs: Supervision,
    /// Start times still within the crash-loop window, oldest first.
    starts: VecDeque<Instant>,
    /// Failures since the plugin was last stable (or restarted on request).
    failures_in_row: u32,
}

/// What to do before the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start again after this delay (zero: at once).
    StartAfter(Duration),
    /// Too many starts within the window: quarantine the plugin.
    Quarantine {
        /// Starts within the window, the reason's count.
        starts: usize,
    },
}

impl Policy {
    /// The policy of a plugin whose first start began at `first_start`.
    pub(crate) fn new(knobs: Supervision, first_start: Instant) -> Policy {
        Policy {
            knobs,
            starts: VecDeque::from([first_start]),
            failures_in_row: 0,
        }
    }

    /// A start began at `at`.
    pub(crate) fn started(&mut self, at: Instant) {
        self.starts.push_back(at);
    }

    /// The instance ready since `ready_at` was lost at `lost_at`. A run of
    /// at least `backoff_reset_after` was stable: backoff starts afresh.
    pub(crate) fn ran(&mut self, ready_at: Instant, lost_at: Instant) {
        if lost_at.saturating_duration_since(ready_at) >= self.knobs.backoff_reset_after {
            self.failures_in_row = 0;
        }
    }

    /// The plugin failed: it exited, turned unhealthy, or a start failed.
    pub(crate) fn failed(&mut self) {
        self.failures_in_row = self.failures_in_row.saturating_add(1);
    }

    /// Someone asked for a restart while it was running or quarantined: not
    /// a failure, and the crash-loop count starts over.
    pub(crate) fn reset(&mut self) {
        self.starts.clear();
        self.failures_in_row = 0;
    }

    /// Someone asked for a restart while it waited out a backoff: start at
    /// once (the crash-loop count stays).
    pub(crate) fn skip_backoff(&mut self) {
        self.failures_in_row = 0;
    }

    /// What to do before starting again at `now`; `jitter` is a uniform
    /// sample from `[0, 1)`. Starts older than the window are forgotten.
    pub(crate) fn next(&mut self, now: Instant, jitter: f64) -> Next {
        let window = self.knobs.crash_loop_window;
        while self
            .starts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            self.starts.pop_front();
        }
        if self.starts.len() >= self.knobs.crash_loop_starts as usize {
            return Next::Quarantine {
                starts: self.starts.len(),
            };
        }
        Next::StartAfter(backoff(self.failures_in_row, &self.knobs, jitter))
    }
}

/// The delay before the next start after `failures` failures in a row: none
/// for the first, then `backoff_initial` doubling up to `backoff_max`, with
/// jitter between half and all of it (`jitter` in `[0, 1)` picks where).
pub(crate) fn backoff(failures: u32, knobs: &Supervision, jitter: f64) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    // 2^20 times any sane initial delay is past any sane cap.
    let doublings = (failures - 2).min(20);
    let full = knobs
        .backoff_initial
        .saturating_mul(1 << doublings)
        .min(knobs.backoff_max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Whether a plugin that exited on its own (`success`: with status 0) is
/// started again under `policy`.
pub(crate) fn restarts_after_exit(policy: RestartPolicy, success: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Never => false,
    }
}

/// Consecutive health-check misses of one ready instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Health {
    /// Misses in a row that make it unhealthy.
    allowed: u32,
    /// Misses in a row so far.
    misses: u32,
}

impl Health {
    /// A fresh count for an instance that becomes unhealthy after `allowed`
    /// misses in a row.
    pub(crate) fn new(allowed: u32) -> Health {
        Health { allowed, misses: 0 }
    }

    /// A check passed: the count starts over.
    pub(crate) fn passed(&mut self) {
        self.misses = 0;
    }

    /// A check missed; true when that makes the instance unhealthy (it is
    /// then restarted).
    pub(crate) fn missed(&mut self) -> bool {
        self.misses = self.misses.saturating_add(1);
        self.misses >= self.allowed
    }

    /// Misses in a row so far.
    pub(crate) fn misses(&self) -> u32 {
        self.misses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn knobs() -> Supervision {
        Supervision::default()
    }

    #[test]
    fn backoff_is_immediate_then_doubles_with_jitter_up_to_the_cap() {
        let sup = knobs();
        assert_eq!(backoff(0, &sup, 0.5), Duration::ZERO);
        assert_eq!(backoff(1, &sup, 0.5), Duration::ZERO);
        for (failures, full) in [(2, 100), (3, 200), (4, 400), (12, 30_000), (40, 30_000)] {
            let full = full * MS;
            assert_eq!(backoff(failures, &sup, 0.0), full / 2, "{failures}");
            let top = backoff(failures, &sup, 0.999_999);
            assert!(top <= full && top > full * 99 / 100, "{failures}: {top:?}");
            for _ in 0..50 {
                let d = backoff(failures, &sup, rand::random());
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_outside_its_range_stays_within_the_bounds() {
        let sup = knobs();
        assert_eq!(backoff(2, &sup, -1.0), 50 * MS);
        assert_eq!(backoff(2, &sup, 7.0), 100 * MS);
    }

    #[test]
    fn a_failure_count_grows_until_a_stable_run_resets_it() {
        let t0 = Instant::now();
        let mut policy = Policy::new(
            Supervision {
                crash_loop_starts: 100,
                ..knobs()
            },
            t0,
        );
        policy.failed();
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(Duration::ZERO));
        policy.failed();
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(50 * MS));
        policy.failed();
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(100 * MS));
        // Up for a second short of a minute: not stable yet.
        policy.ran(t0, t0 + Duration::from_secs(59));
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(100 * MS));
        // Up for a minute: the next failure is the first again.
        policy.ran(t0, t0 + Duration::from_secs(60));
        policy.failed();
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(Duration::ZERO));
    }

    #[test]
    fn the_crash_loop_window_counts_only_recent_starts() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let mut policy = Policy::new(
            Supervision {
                crash_loop_starts: 3,
                crash_loop_window: window,
                ..knobs()
            },
            t0,
        );
        policy.started(t0 + Duration::from_secs(10));
        policy.started(t0 + Duration::from_secs(20));
        assert_eq!(
            policy.next(t0 + Duration::from_secs(30), 0.0),
            Next::Quarantine { starts: 3 }
        );
        // Exactly a window after the first start, it still counts.
        assert_eq!(
            policy.next(t0 + window, 0.0),
            Next::Quarantine { starts: 3 }
        );
        // Just past it, it is forgotten.
        assert_eq!(
            policy.next(t0 + window + MS, 0.0),
            Next::StartAfter(Duration::ZERO)
        );
        policy.started(t0 + window + MS);
        assert_eq!(
            policy.next(t0 + window + MS, 0.0),
            Next::Quarantine { starts: 3 }
        );
    }

    #[test]
    fn a_requested_restart_clears_the_count_and_skipping_a_backoff_keeps_it() {
        let t0 = Instant::now();
        let mut policy = Policy::new(
            Supervision {
                crash_loop_starts: 2,
                ..knobs()
            },
            t0,
        );
        policy.failed();
        policy.failed();
        policy.started(t0);
        policy.skip_backoff();
        assert_eq!(policy.next(t0, 0.0), Next::Quarantine { starts: 2 });
        policy.reset();
        assert_eq!(policy.next(t0, 0.0), Next::StartAfter(Duration::ZERO));
    }

    #[test]
    fn restart_policies_decide_which_exits_are_restarted() {
        use RestartPolicy::*;
        let table = [
            (Always, true, true),
            (Always, false, true),
            (OnFailure, true, false),
            (OnFailure, false, true),
            (Never, true, false),
            (Never, false, false),
        ];
        for (policy, success, restarted) in table {
            assert_eq!(
                restarts_after_exit(policy, success),
                restarted,
                "{policy:?}, success {success}"
            );
        }
    }

    #[test]
    fn health_misses_in_a_row_make_an_instance_unhealthy() {
        let mut health = Health::new(3);
        assert!(!health.missed());
        assert!(!health.missed());
        health.passed();
        assert!(!health.missed());
        assert!(!health.missed());
        assert!(health.missed());
        assert_eq!(health.misses(), 3);
    }
}
