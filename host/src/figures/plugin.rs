//! One plugin's figures, kept under its name for as long as the host
//! lives: its calls per phase (counted by outcome, timed in a histogram),
//! the latency of its recent calls, its restarts by reason, and how long
//! its latest start took.
//!
//! The host keeps one [`Stats`] per plugin name and hands the same one to
//! every supervisor of that name, so a restart or a blue/green reload
//! never resets a count. A dispatch records with atomic adds into the
//! (plugin, phase) counters its route resolved, plus one store into the
//! latency ring behind a mutex held for that store; percentiles are
//! computed only when someone asks ([`Stats::snapshot`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::calls::{CallCounters, CallFigures, Outcomes};
use super::locked;
use super::restarts::{RestartReason, Restarts};
use crate::dispatch::{Entry, Outcome};

/// How many of the latest calls the latency percentiles cover.
pub const LATENCY_WINDOW: usize = 1024;

/// One plugin's figures: calls per phase by outcome and duration, the
/// latency of the recent calls, restarts by reason, the latest start's
/// duration.
#[derive(Debug, Default)]
pub struct Stats {
    /// Per phase it was ever routed for; looked up when routes are built,
    /// not per call.
    calls: Mutex<BTreeMap<String, Arc<CallCounters>>>,
    /// The durations of the last [`LATENCY_WINDOW`] calls made.
    latencies: Mutex<Ring>,
    /// Starts after the first, by why they happened.
    restarts: Restarts,
    /// Spawn to ready, of the latest start that got there.
    last_start: Mutex<Option<Duration>>,
}

/// The call statistics at one moment, over every phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatsSnapshot {
    /// Calls by outcome, over every phase.
    #[serde(flatten)]
    pub outcomes: Outcomes,
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
        self.outcomes.total()
    }
}

/// One plugin's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginFigures {
    /// The plugin's name.
    pub name: String,
    /// Starts after the first, by reason (every reason of
    /// [`RestartReason::ALL`], zeros included).
    pub restarts: BTreeMap<String, u64>,
    /// Why it was last started again; `None` before any restart.
    pub last_restart: Option<RestartReason>,
    /// Spawn to ready of the latest start that got there (waiting for the
    /// plugins it depends on included); `None` before any.
    pub last_start_duration: Option<Duration>,
    /// One per phase it was ever routed for, by phase name.
    pub calls: Vec<CallFigures>,
}

impl PluginFigures {
    /// Its calls summed over every phase.
    pub fn outcomes(&self) -> Outcomes {
        let mut sum = Outcomes::default();
        for calls in &self.calls {
            sum.add(&calls.outcomes);
        }
        sum
    }

    /// Its restarts, every reason summed.
    pub fn restarts_total(&self) -> u64 {
        self.restarts.values().sum()
    }
}

impl Stats {
    /// The counters of its calls for `phase`, made on first use. Called
    /// when routes are built, so that a dispatch needs no lookup.
    pub(crate) fn calls(&self, phase: &str) -> Arc<CallCounters> {
        locked(&self.calls)
            .entry(phase.to_owned())
            .or_default()
            .clone()
    }

    /// Counts one dispatch entry into `calls` (this plugin's counters for
    /// the entry's phase); a call made (not skipped) also enters the
    /// latency window.
    pub(crate) fn record(&self, calls: &CallCounters, entry: &Entry) {
        calls.record(entry);
        if entry.outcome != Outcome::Skipped {
            locked(&self.latencies).push(entry.duration);
        }
    }

    /// Counts a start after the first, for `reason`.
    pub(crate) fn restarted(&self, reason: RestartReason) {
        self.restarts.record(reason);
    }

    /// Records how long the latest start took from spawn to ready.
    pub(crate) fn started_in(&self, duration: Duration) {
        *locked(&self.last_start) = Some(duration);
    }

    /// The counts over every phase and the percentiles of the current
    /// window.
    pub fn snapshot(&self) -> StatsSnapshot {
        // Copied out under the lock, sorted outside it: a dispatch never
        // waits for a sort.
        let mut window = locked(&self.latencies).durations();
        window.sort_unstable();
        let mut outcomes = Outcomes::default();
        for calls in locked(&self.calls).values() {
            outcomes.add(&calls.outcomes());
        }
        StatsSnapshot {
            outcomes,
            latency_p50: percentile(&window, 50),
            latency_p99: percentile(&window, 99),
            window: u32::try_from(window.len()).unwrap_or(u32::MAX),
        }
    }

    /// Every figure of the plugin `name` now.
    pub fn figures(&self, name: &str) -> PluginFigures {
        let calls = locked(&self.calls)
            .iter()
            .map(|(phase, calls)| calls.snapshot(phase))
            .collect();
        PluginFigures {
            name: name.to_owned(),
            restarts: self.restarts.snapshot(),
            last_restart: self.restarts.last(),
            last_start_duration: *locked(&self.last_start),
            calls,
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
    use crate::dispatch::FailureKind;

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
        let calls = stats.calls("x");
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
            stats.record(&calls, &e);
        }
        let s = stats.snapshot();
        assert_eq!(
            {
                let o = s.outcomes;
                (o.ok, o.vetoed, o.failed, o.timed_out, o.crashed, o.skipped)
            },
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
        let calls = stats.calls("x");
        // A slow start, then a full window of fast calls: the slow ones
        // leave the window.
        for _ in 0..100 {
            stats.record(&calls, &entry(Outcome::Ok, None, 1000));
        }
        for i in 0..LATENCY_WINDOW as u64 {
            stats.record(&calls, &entry(Outcome::Ok, None, 1 + i % 10));
        }
        let s = stats.snapshot();
        assert_eq!(s.window as usize, LATENCY_WINDOW);
        assert_eq!(s.outcomes.ok, 100 + LATENCY_WINDOW as u64);
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
        let counts = |s: StatsSnapshot| {
            let o = s.outcomes;
            (o.ok, o.vetoed, o.crashed, o.skipped, s.window)
        };
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
                    let calls = stats.calls("x");
                    for _ in 0..10_000 {
                        stats.record(&calls, &entry(Outcome::Ok, None, 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recording thread");
        }
        let s = stats.snapshot();
        assert_eq!(s.outcomes.ok, 40_000);
        assert_eq!(s.window as usize, LATENCY_WINDOW);
    }
}
