//! [`ServicesOptions`]: where the state lives and the bounds on every
//! plugin's calls.

use std::path::PathBuf;
use std::time::Duration;

use outboard_host::{EventsSpec, ServicesSpec};
use outboard_state::KvLimits;

/// The default bound on one host-service call, on the host's side.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The default number of calls one plugin instance may have in flight.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 16;

/// The default wait of a call that arrives before its instance's
/// `Describe` (the default handshake timeout).
pub const DEFAULT_DESCRIBE_WAIT: Duration = Duration::from_secs(10);

/// The events scope of a host that names none.
pub const DEFAULT_SCOPE: &str = "default";

/// How [`crate::Services`] are set up; one per host process.
#[derive(Debug, Clone)]
pub struct ServicesOptions {
    /// The state directory (`[state] dir`, `--state-dir`): the database
    /// lives there.
    pub state_dir: PathBuf,
    /// The key-value limits (docs/PROTOCOL.md §17.5).
    pub kv_limits: KvLimits,
    /// The host's bound on one call: past it the call fails `UNAVAILABLE`.
    pub call_timeout: Duration,
    /// Calls one instance may have in flight; more wait (within the call's
    /// bound), so that one plugin cannot starve the others.
    pub max_concurrent_calls: usize,
    /// How long a call arriving before its instance's `Describe` waits for
    /// it before `UNAVAILABLE`.
    pub describe_wait: Duration,
    /// Who this host is, for events: its config file's canonical path (or
    /// another name). Events carry the scope of the host that published
    /// them and are delivered only by a host of the same scope, so that
    /// hosts with different configurations may share a state directory.
    pub scope: String,
    /// How events are delivered (`[events]`).
    pub events: EventsSpec,
}

impl ServicesOptions {
    /// The defaults, with the state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> ServicesOptions {
        ServicesOptions {
            state_dir: state_dir.into(),
            kv_limits: KvLimits::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            describe_wait: DEFAULT_DESCRIBE_WAIT,
            scope: DEFAULT_SCOPE.to_owned(),
            events: EventsSpec::default(),
        }
    }

    /// The options for `state_dir` with the limits of a config's
    /// `[services]` section.
    pub fn from_spec(state_dir: impl Into<PathBuf>, spec: &ServicesSpec) -> ServicesOptions {
        ServicesOptions {
            kv_limits: KvLimits {
                value_size: spec.kv_value_size as usize,
                namespace_total: u64::from(spec.kv_namespace_total),
            },
            call_timeout: spec.call_timeout,
            max_concurrent_calls: spec.max_concurrent_calls as usize,
            ..ServicesOptions::new(state_dir)
        }
    }
}
