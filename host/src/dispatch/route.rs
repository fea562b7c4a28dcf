//! A phase's route: its subscribers resolved once, when the host starts,
//! in the order they run.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{FailurePolicy, PhaseSpec, Retry};
use crate::supervisor::Supervisor;

/// A phase with its subscribers resolved: who runs, in which order, with
/// which timeout and policy. Built once when the host starts, so a dispatch
/// does no sorting or lookups.
#[derive(Debug)]
pub struct Route {
    /// The phase's name.
    pub phase: Arc<str>,
    /// How the phase runs.
    pub spec: PhaseSpec,
    /// Its subscribers, in priority order (then by name).
    pub subscribers: Vec<Subscriber>,
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
}
