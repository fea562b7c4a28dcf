//! What one scrape reads, as plain values: every plugin's state and
//! figures, every phase's, the jobs', the plugins' log counts and process
//! groups, and the daemon's own process. The collector encodes exactly
//! this; a test builds one by hand.

use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) use outboard_host::Histogram;
use outboard_host::State;

use crate::logs::LogCounts;
use crate::usage::GroupUsage;

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Scrape {
    /// Every plugin the daemon has or had figures for, by name.
    pub(crate) plugins: Vec<PluginScrape>,
    /// Every phase dispatched or routed, by name.
    pub(crate) phases: Vec<PhaseScrape>,
    /// Jobs by result (`succeeded`, `vetoed`, ...).
    pub(crate) jobs: BTreeMap<String, u64>,
    /// The daemon's own process, if `/proc` could be read.
    pub(crate) process: Option<ProcessScrape>,
}

/// One plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PluginScrape {
    /// Its name (the `plugin` label).
    pub(crate) name: String,
    /// Its supervisor's state; `None` for a plugin a reload removed whose
    /// counters stay (counters never go backwards while the daemon lives).
    pub(crate) state: Option<State>,
    /// Whether the daemon's readiness leaves it out (`optional = true`).
    pub(crate) optional: bool,
    /// Restarts by reason (`crashed`, `health`, `operator`, ...).
    pub(crate) restarts: BTreeMap<String, u64>,
    /// Spawn to ready of its latest start.
    pub(crate) last_start_duration: Option<Duration>,
    /// Its calls, per phase.
    pub(crate) calls: Vec<CallScrape>,
    /// Its log lines, and those dropped from the log ring.
    pub(crate) log: LogCounts,
    /// Its process group's memory and CPU, when it runs.
    pub(crate) usage: Option<GroupUsage>,
}

/// One plugin's calls for one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CallScrape {
    /// The phase (the `phase` label).
    pub(crate) phase: String,
    /// Calls by outcome: `ok`, `vetoed`, `failed`, `timed_out`,
    /// `crashed`, `skipped`, each always present.
    pub(crate) outcomes: [(&'static str, u64); 6],
    /// The duration of the calls made (skipped ones aside).
    pub(crate) duration: Histogram,
}

/// One phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PhaseScrape {
    /// The phase (the `phase` label).
    pub(crate) phase: String,
    /// How long its dispatches took, fan-out and merge included.
    pub(crate) duration: Histogram,
    /// Dispatches by result (`passed`, `vetoed`, `failed`, `refused`).
    pub(crate) results: BTreeMap<String, u64>,
    /// Patches that could not be merged (two plugins wrote the same path).
    pub(crate) conflicts: u64,
}

/// A histogram's buckets as the encoder takes them: each bucket's own
/// count (the host's are cumulative), ending with `+Inf` for what exceeds
/// the last bound.
pub(crate) fn per_bucket(h: &Histogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut out: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let own = cumulative.saturating_sub(below);
            below = below.max(cumulative);
            (bound, own)
        })
        .collect();
    out.push((f64::INFINITY, h.count.saturating_sub(below)));
    out
}

/// The daemon's own process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessScrape {
    /// User and system CPU time.
    pub(crate) cpu_seconds: f64,
    /// Resident memory.
    pub(crate) resident_bytes: u64,
    /// Virtual memory.
    pub(crate) virtual_bytes: u64,
    /// Open file descriptors.
    pub(crate) open_fds: u64,
    /// The soft limit on open file descriptors; `None` when unlimited.
    pub(crate) max_fds: Option<u64>,
    /// When it started, in seconds since the Unix epoch.
    pub(crate) start_time_seconds: f64,
    /// Its threads.
    pub(crate) threads: u64,
}
