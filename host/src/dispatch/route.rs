//! A phase's route: its subscribers resolved once per routing generation
//! (when the host starts, and each time its routes are rebuilt), in the
//! order they run, each with the counters its calls are recorded in.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{FailurePolicy, PhaseSpec, Retry};
use crate::figures::{CallCounters, PhaseCounters};
use crate::supervisor::Supervisor;

use super::Report;

/// A phase with its subscribers resolved: who runs, in which order, with
/// which timeout and policy. Built with the routes it belongs to, so a
/// dispatch does no sorting or lookups.
#[derive(Debug)]
pub struct Route {
    /// The phase's name.
    pub phase: Arc<str>,
    /// How the phase runs.
    pub spec: PhaseSpec,
    /// Its subscribers, in priority order (then by name).
    pub subscribers: Vec<Subscriber>,
    /// The phase's counters; `None` for a phase nobody declared or
    /// subscribed to, which keeps no figures.
    pub(crate) figures: Option<Arc<PhaseCounters>>,
}

/// One plugin's subscription to a phase, as the host resolved it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The plugin, under supervision.
    pub plugin: Arc<Supervisor>,
    /// Its name, shared with the reports.
    pub name: Arc<str>,
    /// Its priority: the manifest's, or the host's override.
    pub priority: i32,
    /// The per-call timeout.
    pub timeout: Duration,
    /// What its failure does to the phase.
    pub policy: FailurePolicy,
    /// Retries, for an idempotent subscription that opted in.
    pub retry: Option<Retry>,
    /// Its calls' counters for this phase, kept by plugin name.
    pub(crate) calls: Arc<CallCounters>,
}

impl Route {
    /// Resolves who among `plugins` runs `phase`, in which order, with
    /// which timeout and policy: each plugin's latest manifest says what it
    /// subscribes to, its spec what the operator overrides.
    pub(crate) fn resolve(
        phase: &str,
        spec: PhaseSpec,
        plugins: &[Arc<Supervisor>],
        figures: Option<Arc<PhaseCounters>>,
    ) -> Route {
        let mut subscribers: Vec<Subscriber> = plugins
            .iter()
            .filter_map(|plugin| subscriber(phase, spec, plugin))
            .collect();
        subscribers.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        Route {
            phase: phase.into(),
            spec,
            subscribers,
            figures,
        }
    }

    /// Counts a dispatch of this phase the host refused before calling
    /// anyone.
    pub(crate) fn refused(&self) {
        if let Some(figures) = &self.figures {
            figures.refused();
        }
    }

    /// Counts what a dispatch of this phase did: the phase's result and
    /// duration, and each subscriber's entry (the report lists them one
    /// each, in the route's order).
    pub(crate) fn record(&self, report: &Report) {
        if let Some(figures) = &self.figures {
            figures.record(report);
        }
        for (subscriber, entry) in self.subscribers.iter().zip(&report.entries) {
            subscriber.plugin.stats().record(&subscriber.calls, entry);
        }
    }
}

/// `plugin` as a subscriber of `phase`, if its manifest subscribes and the
/// operator did not turn the subscription off.
fn subscriber(phase: &str, spec: PhaseSpec, plugin: &Arc<Supervisor>) -> Option<Subscriber> {
    let manifest = plugin.manifest();
    let wanted = manifest.subscription(phase)?;
    let config = plugin
        .spec()
        .subscriptions
        .get(phase)
        .copied()
        .unwrap_or_default();
    if !config.enabled {
        return None;
    }
    Some(Subscriber {
        calls: plugin.stats().calls(phase),
        plugin: plugin.clone(),
        name: plugin.name().into(),
        priority: config.priority.unwrap_or(wanted.priority),
        timeout: config
            .timeout
            .or(spec.timeout)
            .unwrap_or(plugin.spec().call_timeout),
        policy: config.failure_policy.unwrap_or(spec.failure_policy),
        retry: match config.retry {
            Some(retry) if wanted.idempotent => Some(retry),
            Some(_) => {
                tracing::warn!(
                    plugin = plugin.name(),
                    "retries configured for phase {phase}, but its manifest does not mark \
                     that subscription idempotent; not retried"
                );
                None
            }
            None => None,
        },
    })
}
