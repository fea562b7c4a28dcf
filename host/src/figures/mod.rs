//! Every figure the host keeps, in one store: what `outboard status` shows
//! and what the daemon's `/metrics` encodes, read from the same counters so
//! the two never disagree.
//!
//! - per plugin ([`PluginFigures`]): restarts by reason, the latest start's
//!   duration, and per phase ([`CallFigures`]) calls by outcome and a
//!   duration histogram;
//! - per phase ([`PhaseFigures`]): a dispatch duration histogram, results
//!   (passed, vetoed, failed, refused) and conflicts;
//! - jobs by result ([`JobCounts`]).
//!
//! Figures are kept by plugin and phase name for the host's whole life: a
//! restart or a blue/green reload hands the new supervisor the same
//! counters, so a count never goes backwards (Prometheus counters must
//! not). A plugin a reload removed keeps its figures (it may come back);
//! the names are the operator's configuration, so the set stays bounded.
//!
//! The call path does no lookup: each route holds its phase's counters and
//! each subscriber its (plugin, phase) counters, resolved when the routes
//! are built (see `crate::host::generation`). The library knows nothing of
//! Prometheus: [`Figures`] is plain data, the daemon encodes it.
//!
//! # Layout
//!
//! - this file: [`Ledger`], the store, and [`Figures`], a reading of it.
//! - `histogram`: [`Histogram`] and its fixed [`BUCKET_BOUNDS`].
//! - `calls`: one (plugin, phase)'s counters; [`Outcomes`].
//! - `plugin`: [`Stats`], one plugin's figures, and its latency window.
//! - `phase`: one phase's counters.
//! - `restarts`: [`RestartReason`].
//! - `jobs`: [`JobResult`] and [`JobCounts`].

mod calls;
mod histogram;
mod jobs;
mod phase;
mod plugin;
mod restarts;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

pub use calls::{CallFigures, Outcomes};
pub use histogram::{BUCKET_BOUNDS, Histogram};
pub use jobs::{JobCounts, JobResult, UnknownJobResult};
pub use phase::PhaseFigures;
pub use plugin::{LATENCY_WINDOW, PluginFigures, Stats, StatsSnapshot};
pub use restarts::RestartReason;

pub(crate) use calls::CallCounters;
pub(crate) use phase::PhaseCounters;

/// Every figure the host keeps, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Every plugin configured since the host started, by name.
    pub plugins: Vec<PluginFigures>,
    /// Every phase routed since the host started, by name.
    pub phases: Vec<PhaseFigures>,
    /// Jobs by result.
    pub jobs: JobCounts,
}

impl Figures {
    /// The figures of the plugin `name`, if it was ever configured.
    pub fn plugin(&self, name: &str) -> Option<&PluginFigures> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The figures of the phase `name`, if it was ever routed.
    pub fn phase(&self, name: &str) -> Option<&PhaseFigures> {
        self.phases.iter().find(|p| p.phase == name)
    }
}

/// The store: counters by plugin and phase name, made on first use and
/// kept for the host's life.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Each plugin's figures, by name.
    plugins: Mutex<BTreeMap<String, Arc<Stats>>>,
    /// Each phase's figures, by name.
    phases: Mutex<BTreeMap<String, Arc<PhaseCounters>>>,
    /// Jobs by result.
    jobs: jobs::JobCounters,
}

/// A lock whose holder cannot leave its value half-changed (every update
/// is one insert or one store), so a poisoned one is still consistent.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// The figures of the plugin `name`: the same for every supervisor of
    /// that name.
    pub(crate) fn plugin(&self, name: &str) -> Arc<Stats> {
        locked(&self.plugins)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// The counters of the phase `name`.
    pub(crate) fn phase(&self, name: &str) -> Arc<PhaseCounters> {
        locked(&self.phases)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Counts a job that ended with `result`.
    pub(crate) fn job_ended(&self, result: JobResult) {
        self.jobs.record(result);
    }

    /// Everything, now. The maps are copied out under their locks (held
    /// only for the copy); the counters are read outside them.
    pub(crate) fn figures(&self) -> Figures {
        let plugins: Vec<(String, Arc<Stats>)> = locked(&self.plugins)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let phases: Vec<(String, Arc<PhaseCounters>)> = locked(&self.phases)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Figures {
            plugins: plugins
                .iter()
                .map(|(name, stats)| stats.figures(name))
                .collect(),
            phases: phases
                .iter()
                .map(|(name, counters)| counters.snapshot(name))
                .collect(),
            jobs: self.jobs.snapshot(),
        }
    }
}
