//! Whether the daemon is ready, as a pure judgement over its plugins'
//! states: every plugin that is not optional, and that an operator has not
//! disabled, must be ready.

use outboard_host::State;
use serde::Serialize;

use super::metrics::collector::state_name;

/// One plugin, as the judgement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Its name.
    pub(crate) name: String,
    /// Its state.
    pub(crate) state: State,
    /// Whether it is optional (`optional = true`): its state does not
    /// count.
    pub(crate) optional: bool,
}

/// The judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Readiness {
    /// Whether the daemon is ready.
    pub(crate) ready: bool,
    /// Why not, when it is not for a reason other than its plugins
    /// (starting, stopping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
    /// Each required plugin that is not ready, with its state, by name.
    pub(crate) not_ready: Vec<NotReady>,
}

/// A required plugin that is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NotReady {
    /// Its name.
    pub(crate) plugin: String,
    /// Its state's name.
    pub(crate) state: &'static str,
}

/// Why the daemon is where it is, besides its plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its plugins are still starting (no host yet).
    Starting,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Running, but its host did not give its plugins' states in time.
    Unanswered,
}

/// Whether a daemon in `phase` with `members` is ready.
pub(crate) fn judge(phase: Phase, members: &[Member]) -> Readiness {
    let mut not_ready: Vec<NotReady> = members
        .iter()
        .filter(|m| !m.optional && m.state != State::Disabled && m.state != State::Ready)
        .map(|m| NotReady {
            plugin: m.name.clone(),
            state: state_name(m.state),
        })
        .collect();
    not_ready.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    let reason = match phase {
        Phase::Starting => Some("starting: the plugins have not all started yet"),
        Phase::Stopping => Some("stopping"),
        Phase::Unanswered => Some("the host did not give its plugins' states in time"),
        Phase::Running => None,
    };
    Readiness {
        ready: reason.is_none() && not_ready.is_empty(),
        reason,
        not_ready,
    }
}

impl Readiness {
    /// The judgement as plain text: `ok`, or what is not ready, a line
    /// each.
    pub(crate) fn text(&self) -> String {
        if self.ready {
            return "ok\n".to_owned();
        }
        let mut out = String::from("not ready\n");
        if let Some(reason) = self.reason {
            out.push_str(reason);
            out.push('\n');
        }
        for p in &self.not_ready {
            out.push_str(&format!("{}: {}\n", p.plugin, p.state));
        }
        out
    }
}
