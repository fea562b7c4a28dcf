//! The host's events, broadcast to whoever listens ([`Host::events`]):
//! every supervised plugin's status changes (those a reload adds
//! included), every completed dispatch, every reload.
//!
//! A listener that falls more than [`EVENTS_BUFFERED`] events behind
//! misses the oldest and is told how many (`RecvError::Lagged`). A
//! dispatch's report is summarized for the event only while someone
//! listens, and never with its context or patches.
//!
//! [`Host::events`]: super::Host::events

use std::sync::{Arc, Weak};

use tokio::sync::broadcast::{self, error::RecvError};

use super::Shared;
use super::plan::ReloadPlan;
use crate::dispatch::{Entry, Report};
use crate::supervisor::{State, Status, Supervisor};

/// Events a listener may fall behind by before it misses some.
pub(super) const EVENTS_BUFFERED: usize = 1024;

/// Something that happened in the host.
#[derive(Debug, Clone)]
pub enum HostEvent {
    /// A supervised plugin's status changed (or, for a plugin a reload
    /// added, its first status).
    Plugin {
        /// The plugin.
        name: Arc<str>,
        /// Its new status.
        status: Status,
    },
    /// A dispatch completed (refused ones included): its report without
    /// the context and the patches, which belong to the caller (a job's
    /// context holds its whole environment) and would cost a copy per
    /// dispatch.
    Dispatch(Arc<Report>),
    /// A reload was applied, or failed and changed nothing.
    Reload {
        /// What it did, or would have done.
        plan: ReloadPlan,
        /// Why it failed (the cause only: the event itself says that it
        /// failed); `None` if it was applied.
        error: Option<String>,
    },
}

/// The host's event channel.
pub(super) fn channel() -> broadcast::Sender<HostEvent> {
    broadcast::channel(EVENTS_BUFFERED).0
}

/// Sends `report`, without its context and patches, as an event, only if
/// someone listens.
pub(super) fn dispatched(events: &broadcast::Sender<HostEvent>, report: &Report) {
    if events.receiver_count() > 0 {
        // Nobody listening any more is fine.
        let _ = events.send(HostEvent::Dispatch(Arc::new(summary(report))));
    }
}

/// `report` without what belongs to the caller: the context and each
/// entry's patch.
fn summary(report: &Report) -> Report {
    let entries = report
        .entries
        .iter()
        .map(|e| Entry {
            plugin: e.plugin.clone(),
            priority: e.priority,
            policy: e.policy,
            outcome: e.outcome,
            failure: e.failure,
            duration: e.duration,
            attempts: e.attempts,
            patch: Vec::new(),
            message: e.message.clone(),
        })
        .collect();
    Report {
        phase: report.phase.clone(),
        mode: report.mode,
        invocation_id: report.invocation_id.clone(),
        verdict: report.verdict.clone(),
        entries,
        context: serde_json::Value::Null,
        duration: report.duration,
    }
}

/// Forwards `plugin`'s status changes to the host's events for as long as
/// the supervisor runs, and has the host reroute when a restart brought a
/// manifest whose routes differ. Holds neither the host nor the plugin: it
/// ends when the supervisor does.
pub(super) fn follow(shared: &Arc<Shared>, plugin: &Arc<Supervisor>) {
    let mut changes = plugin.subscribe();
    let host = Arc::downgrade(shared);
    let me = Arc::downgrade(plugin);
    let name: Arc<str> = plugin.name().into();
    tokio::spawn(async move {
        loop {
            let status = match changes.recv().await {
                Ok(status) => Some(status),
                // Missed some: the latest status is what matters.
                Err(RecvError::Lagged(_)) => me.upgrade().map(|p| p.status()),
                Err(RecvError::Closed) => return,
            };
            let Some(host) = host.upgrade() else { return };
            if let Some(status) = status {
                forward(&host, &me, &name, status);
            }
        }
    });
}

/// Reroutes if `status` says the plugin is ready on a manifest with other
/// routes, then tells listeners; a replaced supervisor's own stop (the old
/// instance of a changed plugin) is not news about the plugin.
fn forward(host: &Shared, me: &Weak<Supervisor>, name: &Arc<str>, status: Status) {
    if !host.speaks_for(name, me) {
        return;
    }
    if status.state == State::Ready
        && let Some(plugin) = me.upgrade()
    {
        host.reroute_if_outdated(&plugin);
    }
    let _ = host.events.send(HostEvent::Plugin {
        name: name.clone(),
        status,
    });
}
