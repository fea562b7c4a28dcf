//! The host's say over one plugin's subscription to one phase, and the
//! opt-in retries of an idempotent one.

use std::time::Duration;

use serde::Serialize;

use super::phase::FailurePolicy;

/// The host's say over one plugin's subscription to one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubscriptionOverride {
    /// Replaces the priority from the plugin's manifest.
    pub priority: Option<i32>,
    /// Replaces the phase's (or the plugin's) call timeout.
    pub timeout: Option<Duration>,
    /// Replaces the phase's failure policy.
    pub failure_policy: Option<FailurePolicy>,
    /// `false` drops the subscription: the plugin is not invoked for it.
    pub enabled: bool,
    /// Retries after a crash, a timeout or a plugin that is not ready; only
    /// for subscriptions the manifest marks idempotent.
    pub retry: Option<Retry>,
}

/// Opt-in retries of an idempotent subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each one after.
    pub backoff: Duration,
}

impl Default for SubscriptionOverride {
    fn default() -> Self {
        SubscriptionOverride {
            priority: None,
            timeout: None,
            failure_policy: None,
            enabled: true,
            retry: None,
        }
    }
}
