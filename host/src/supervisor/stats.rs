//! A supervised plugin's call statistics: how many calls ended how, and how
//! long the recent ones took.
//!
//! Recorded once per dispatch entry, on the dispatch's path: the counts are
//! atomics, the latencies a fixed ring behind a mutex held for one store.
//! Percentiles are computed only when someone asks ([`Stats::snapshot`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::dispatch::{Entry, FailureKind, Outcome};

/// How many of the latest calls the latency percentiles cover.
pub const LATENCY_WINDOW: usize = 1024;

/// Calls to one plugin by outcome, and the latency of the recent ones.
#[derive(Debug)]
pub struct Stats {
    ok: AtomicU64,
    vetoed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    crashed: AtomicU64,
    skipped: AtomicU64,
    /// The durations of the last [`LATENCY_WINDOW`] calls made.
    latencies: Mutex<Ring>,
}

/// The statistics at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatsSnapshot {
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
    /// The median latency of the calls in the window; `None` before any.
    pub latency_p50: Option<Duration>,
    /// The 99th percentile latency of the calls in the window.
    pub latency_p99: Option<Duration>,
    /// How many calls the window holds now (at most [`LATENCY_WINDOW`]).
    pub window: u32,
}

impl StatsSnapshot {
    /// Every call counted, skipped ones included.
    pub fn total(&self) -> u64 {
        self.ok + self.vetoed + self.failed + self.timed_out + self.crashed + self.skipped
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ok: AtomicU64::new(0),
            vetoed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            crashed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            latencies: Mutex::new(Ring::default()),
        }
    }
}

impl Stats {
    /// Counts one dispatch entry of this plugin; a call made (not skipped)
    /// also enters the latency window.
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
            self.latencies
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(entry.duration);
        }
    }

    /// The counts and the percentiles of the current window.
    pub fn snapshot(&self) -> StatsSnapshot {
        // Copied out under the lock, sorted outside it: a dispatch never
        // waits for a sort.
        let mut window = self
            .latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .durations();
        window.sort_unstable();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            ok: count(&self.ok),
            vetoed: count(&self.vetoed),
            failed: count(&self.failed),
            timed_out: count(&self.timed_out),
            crashed: count(&self.crashed),
            skipped: count(&self.skipped),
            latency_p50: percentile(&window, 50),
            latency_p99: percentile(&window, 99),
            window: u32::try_from(window.len()).unwrap_or(u32::MAX),
        }
    }
}

/// The `p`th percentile of `sorted` by the nearest-rank method: the
/// smallest value with at least `p`% of the values at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The last [`LATENCY_WINDOW`] durations, overwritten oldest first.
#[derive(Debug, Default)]
struct Ring {
    /// Filled up to [`LATENCY_WINDOW`], then overwritten in place.
    slots: Vec<Duration>,
    /// Where the next duration goes once the ring is full.
    next: usize,
}

impl Ring {
    fn push(&mut self, duration: Duration) {
        if self.slots.len() < LATENCY_WINDOW {
            self.slots.push(duration);
        } else {
            self.slots[self.next] = duration;
            self.next = (self.next + 1) % LATENCY_WINDOW;
        }
    }

    /// The durations held, in no particular order.
    fn durations(&self) -> Vec<Duration> {
        self.slots.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::FailurePolicy;

    fn entry(outcome: Outcome, failure: Option<FailureKind>, millis: u64) -> Entry {
        Entry {
            plugin: Arc::from("p"),
            priority: 0,
            policy: FailurePolicy::FailClosed,
            outcome,
            failure,
            duration: Duration::from_millis(millis),
            attempts: u32::from(outcome != Outcome::Skipped),
            patch: Vec::new(),
            message: String::new(),
        }
    }

    #[test]
    fn each_call_counts_once_under_its_outcome() {
        let stats = Stats::default();
        let failed = |kind| entry(Outcome::Failed, Some(kind), 5);
        for e in [
            entry(Outcome::Ok, None, 1),
            entry(Outcome::Ok, None, 2),
            entry(Outcome::Vetoed, None, 3),
            entry(Outcome::Skipped, None, 0),
            failed(FailureKind::Timeout),
            failed(FailureKind::Crashed),
            failed(FailureKind::Crashed),
            failed(FailureKind::Unavailable),
            failed(FailureKind::Error),
            failed(FailureKind::Conflict),
            failed(FailureKind::InvalidPatch),
        ] {
            stats.record(&e);
        }
        let s = stats.snapshot();
        assert_eq!(
            (s.ok, s.vetoed, s.failed, s.timed_out, s.crashed, s.skipped),
            (2, 1, 4, 1, 2, 1)
        );
        assert_eq!(s.total(), 11);
        // The skipped call was never made: it has no latency.
        assert_eq!(s.window, 10);
    }

    #[test]
    fn nothing_recorded_has_no_percentiles() {
        let s = Stats::default().snapshot();
        assert_eq!(s, StatsSnapshot::default());
        assert_eq!((s.latency_p50, s.latency_p99), (None, None));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = Duration::from_millis;
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50), Some(ms(50)));
        assert_eq!(percentile(&sorted, 99), Some(ms(99)));
        assert_eq!(percentile(&[ms(7)], 50), Some(ms(7)));
        assert_eq!(percentile(&[ms(7)], 99), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(9)], 50), Some(ms(1)));
        assert_eq!(percentile(&[ms(1), ms(9)], 99), Some(ms(9)));
    }

    #[test]
    fn the_window_holds_only_the_latest_calls() {
        let stats = Stats::default();
        // A slow start, then a full window of fast calls: the slow ones
        // leave the window.
        for _ in 0..100 {
            stats.record(&entry(Outcome::Ok, None, 1000));
        }
        for i in 0..LATENCY_WINDOW as u64 {
            stats.record(&entry(Outcome::Ok, None, 1 + i % 10));
        }
        let s = stats.snapshot();
        assert_eq!(s.window as usize, LATENCY_WINDOW);
        assert_eq!(s.ok, 100 + LATENCY_WINDOW as u64);
        assert_eq!(s.latency_p50, Some(Duration::from_millis(5)));
        assert_eq!(s.latency_p99, Some(Duration::from_millis(10)));
    }

    /// Every entry of a real dispatch lands in its own plugin's stats:
    /// fake plugins `ok`, `veto`, `after` (skipped) on a sequential phase,
    /// then a second dispatch where `ok` crashes (fail closed: the others
    /// are skipped).
    #[tokio::test(start_paused = true)]
    async fn each_dispatch_entry_lands_in_its_plugins_stats() {
        use crate::config::{HostConfig, PhaseSpec, PluginSpec};
        use crate::host::Host;
        use crate::instance::Reply;
        use crate::supervisor::fake::{FakeCall, FakeLauncher};

        let launcher = FakeLauncher::new();
        let mut specs = Vec::new();
        let mut fakes = Vec::new();
        for (priority, name) in ["ok", "veto", "after"].into_iter().enumerate() {
            let priority = i32::try_from(priority).unwrap_or_default();
            fakes.push(launcher.plugin(name, &[("x", priority, false)]));
            specs.push(PluginSpec::new(name, format!("/fake/{name}")));
        }
        let continuing = || {
            FakeCall::Reply(Reply::Continue {
                patch: Vec::new(),
                message: String::new(),
            })
        };
        fakes[0].script_calls([continuing(), FakeCall::Crash]);
        fakes[1].script_calls([FakeCall::Reply(Reply::Abort {
            message: "no".into(),
        })]);
        let config = HostConfig {
            plugins: specs,
            phases: [("x".to_owned(), PhaseSpec::default())].into(),
            ..HostConfig::default()
        };
        let host = Host::start_with(&config, launcher)
            .await
            .expect("fake plugins start");
        host.dispatch("x", serde_json::Map::new()).await;
        host.dispatch("x", serde_json::Map::new()).await;

        let stats = |name: &str| {
            host.plugin(name)
                .map(|p| p.stats().snapshot())
                .unwrap_or_default()
        };
        let counts = |s: StatsSnapshot| (s.ok, s.vetoed, s.crashed, s.skipped, s.window);
        assert_eq!(counts(stats("ok")), (1, 0, 1, 0, 2));
        assert_eq!(counts(stats("veto")), (0, 1, 0, 1, 1));
        assert_eq!(counts(stats("after")), (0, 0, 0, 2, 0));
        assert_eq!(stats("after").latency_p50, None);
        host.stop().await;
    }

    #[test]
    fn concurrent_recording_loses_no_count() {
        let stats = Arc::new(Stats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        stats.record(&entry(Outcome::Ok, None, 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recording thread");
        }
        let s = stats.snapshot();
        assert_eq!(s.ok, 40_000);
        assert_eq!(s.window as usize, LATENCY_WINDOW);
    }
}
