//! How a plugin is supervised: the restart policy and the knobs of health
//! checks, backoff and crash-loop quarantine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When to restart a plugin that exited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Whatever its exit status.
    #[default]
    Always,
    /// Unless it exited with status 0.
    OnFailure,
    /// Never: an exit leaves it failed.
    Never,
}

impl RestartPolicy {
    /// The policy as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

/// How a plugin is supervised. The defaults are the project's agreed ones
/// (docs/DECISIONS.md): restart always, health every 5 s with 3 misses,
/// backoff 100 ms doubling to 30 s reset after 60 s up, 5 starts in 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Supervision {
    /// When to restart after an exit.
    pub restart: RestartPolicy,
    /// How often to check health.
    pub health_interval: Duration,
    /// Consecutive health misses that trigger a restart.
    pub health_misses: u32,
    /// The delay before the second restart in a row.
    pub backoff_initial: Duration,
    /// The longest delay between restarts.
    pub backoff_max: Duration,
    /// Uptime after which a plugin counts as stable again.
    pub backoff_reset_after: Duration,
    /// Starts within `crash_loop_window` that make the next failure final.
    pub crash_loop_starts: u32,
    /// The crash-loop window.
    pub crash_loop_window: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            restart: RestartPolicy::Always,
            health_interval: Duration::from_secs(5),
            health_misses: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            backoff_reset_after: Duration::from_secs(60),
            crash_loop_starts: 5,
            crash_loop_window: Duration::from_secs(60),
        }
    }
}
