//! What the health service reports (the `health` key), and when that
//! changes: at `Configure`, or from the N-th invocation on.

use outboard_plugin::{Health, PluginError};
use serde_json::Value;

/// What the health service reports: the SDK's [`Health`] state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthState {
    /// SERVING or NOT_SERVING.
    pub(crate) serving: bool,
    /// `true` while health checks go unanswered.
    pub(crate) stalled: bool,
}

impl HealthState {
    /// Healthy and answering.
    pub(crate) const SERVING: HealthState = HealthState {
        serving: true,
        stalled: false,
    };

    /// Sets `health` to this state.
    pub(crate) fn apply(self, health: &Health) {
        health.set_serving(self.serving);
        health.set_stalled(self.stalled);
    }
}

/// The `health` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum HealthMode {
    /// SERVING throughout.
    #[default]
    Serving,
    /// NOT_SERVING from `Configure` on.
    NotServing,
    /// NOT_SERVING from the N-th invocation on.
    NotServingAfter(u64),
    /// Health checks unanswered from `Configure` on.
    StopAnswering,
    /// Health checks unanswered from the N-th invocation on.
    StopAnsweringAfter(u64),
}

impl HealthMode {
    /// What `Configure` sets.
    pub(crate) fn at_configure(self) -> HealthState {
        match self {
            HealthMode::NotServing => HealthState {
                serving: false,
                stalled: false,
            },
            HealthMode::StopAnswering => HealthState {
                serving: true,
                stalled: true,
            },
            HealthMode::Serving
            | HealthMode::NotServingAfter(_)
            | HealthMode::StopAnsweringAfter(_) => HealthState::SERVING,
        }
    }

    /// What the `count`-th invocation sets, if anything.
    pub(crate) fn after_invocation(self, count: u64) -> Option<HealthState> {
        match self {
            HealthMode::NotServingAfter(n) if count >= n => Some(HealthState {
                serving: false,
                stalled: false,
            }),
            HealthMode::StopAnsweringAfter(n) if count >= n => Some(HealthState {
                serving: true,
                stalled: true,
            }),
            _ => None,
        }
    }
}

/// The `health` key.
pub(crate) fn health_mode(value: &Value) -> Result<HealthMode, PluginError> {
    let refuse = || {
        PluginError::invalid_config(format!(
            "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
             \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got {value}"
        ))
    };
    let s = value.as_str().ok_or_else(refuse)?;
    let after = |prefix: &str| {
        s.strip_prefix(prefix)
            .map(|n| n.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(refuse))
    };
    Ok(match s {
        "serving" => HealthMode::Serving,
        "not_serving" => HealthMode::NotServing,
        "stop_answering" => HealthMode::StopAnswering,
        _ => {
            if let Some(n) = after("not_serving_after:") {
                HealthMode::NotServingAfter(n?)
            } else if let Some(n) = after("stop_answering_after:") {
                HealthMode::StopAnsweringAfter(n?)
            } else {
                return Err(refuse());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_transitions() {
        assert_eq!(HealthMode::Serving.at_configure(), HealthState::SERVING);
        assert_eq!(HealthMode::NotServingAfter(2).after_invocation(1), None);
        assert_eq!(
            HealthMode::NotServingAfter(2).after_invocation(2),
            Some(HealthState {
                serving: false,
                stalled: false
            })
        );
        assert_eq!(
            HealthMode::StopAnsweringAfter(1).after_invocation(5),
            Some(HealthState {
                serving: true,
                stalled: true
            })
        );
        assert_eq!(HealthMode::NotServing.after_invocation(9), None);
    }
}
