//! What a config may ask for: every duration and count has a lower and an
//! upper bound, checked when the file is loaded. Too large a value would
//! overflow the clock arithmetic that uses it (a panic, not an error); too
//! small a one makes a healthy plugin look dead (`health_interval = "1ns"`)
//! or turns supervision off by accident. docs/CONFIG.md §2 lists them.

use std::time::Duration;

/// The durations a key accepts, both ends included.
#[derive(Debug, Clone, Copy)]
pub(super) struct DurationBounds {
    /// The shortest; zero only where "at once" means something.
    pub(super) min: Duration,
    /// The longest.
    pub(super) max: Duration,
}

/// The counts a key accepts, both ends included.
#[derive(Debug, Clone, Copy)]
pub(super) struct CountBounds {
    /// The smallest (at least 1 everywhere).
    pub(super) min: u32,
    /// The largest.
    pub(super) max: u32,
    /// Said after "must be at least MIN" to explain the count.
    pub(super) meaning: &'static str,
}

const MS: Duration = Duration::from_millis(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// `handshake_timeout`, `call_timeout`, a phase's and a subscription's
/// `timeout`: a wait for a plugin's answer.
pub(super) const TIMEOUT: DurationBounds = DurationBounds { min: MS, max: HOUR };

/// `stop_grace`: zero sends SIGTERM right after `Shutdown`.
pub(super) const STOP_GRACE: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: HOUR,
};

/// `[daemon] drain_timeout`: zero stops the plugins without waiting for
/// the dispatches in flight.
pub(super) const DRAIN_TIMEOUT: DurationBounds = STOP_GRACE;

/// The longest `[daemon] drain_timeout`, and `outboard up --drain-timeout`.
pub const MAX_DRAIN_TIMEOUT: Duration = DRAIN_TIMEOUT.max;

/// `health_interval`: shorter than a loaded machine's scheduling hiccup
/// and health checks miss for no fault of the plugin.
pub(super) const HEALTH_INTERVAL: DurationBounds = DurationBounds {
    min: Duration::from_millis(100),
    max: HOUR,
};

/// `backoff_initial` and `backoff_max`.
pub(super) const BACKOFF: DurationBounds = DurationBounds { min: MS, max: HOUR };

/// `backoff_reset_after` and `crash_loop_window`: shorter than a second,
/// and a plugin that crashes at once would never count as crash-looping.
pub(super) const WINDOW: DurationBounds = DurationBounds {
    min: Duration::from_secs(1),
    max: DAY,
};

/// A subscription's `retry_backoff`: zero retries at once.
pub(super) const RETRY_BACKOFF: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: MINUTE,
};

/// A secret's `cache`: zero reads the source on every request; a day at
/// most, so that a rotated secret is picked up.
pub(super) const SECRET_CACHE: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: DAY,
};

/// A secret's `timeout`: how long its command may run.
pub(super) const SECRET_TIMEOUT: DurationBounds = DurationBounds {
    min: MS,
    max: Duration::from_secs(10 * 60),
};

/// `health_misses`.
pub(super) const HEALTH_MISSES: CountBounds = CountBounds {
    min: 1,
    max: 100,
    meaning: "",
};

/// `crash_loop_starts`.
pub(super) const CRASH_LOOP_STARTS: CountBounds = CountBounds {
    min: 1,
    max: 100,
    meaning: "",
};

/// A subscription's `retry_attempts`: each attempt gets the whole timeout.
pub(super) const RETRY_ATTEMPTS: CountBounds = CountBounds {
    min: 1,
    max: 10,
    meaning: " (attempts in all, the first included)",
};

/// `[services] kv_value_size`: a value must fit a gRPC message (4 MiB)
/// with room to spare.
pub(super) const KV_VALUE_SIZE: CountBounds = CountBounds {
    min: 1,
    max: 1024 * 1024,
    meaning: " byte (a value is at most this many bytes)",
};

/// `[services] kv_namespace_total`.
pub(super) const KV_NAMESPACE_TOTAL: CountBounds = CountBounds {
    min: 1024,
    max: u32::MAX,
    meaning: " bytes (of keys plus values in one namespace)",
};

/// `[services] max_concurrent_calls`.
pub(super) const MAX_CONCURRENT_CALLS: CountBounds = CountBounds {
    min: 1,
    max: 1024,
    meaning: " (calls in flight per plugin instance)",
};

/// `[events] max_attempts`: deliveries of one event to one plugin, the
/// first included.
pub(super) const EVENT_ATTEMPTS: CountBounds = CountBounds {
    min: 1,
    max: 100,
    meaning: " (attempts in all, the first included)",
};

/// `[events] backoff_initial` and `backoff_max`.
pub(super) const EVENT_BACKOFF: DurationBounds = DurationBounds { min: MS, max: DAY };

/// `[events] retention` and `dead_retention`: how long a delivered event
/// (and its idempotency key) or a dead letter is kept.
pub(super) const EVENT_RETENTION: DurationBounds = DurationBounds {
    min: MINUTE,
    max: Duration::from_secs(365 * 24 * 3600),
};

/// The largest config file (`outboard.toml`, `plugin.toml`) read: far more
/// than thousands of plugins need, and a `/dev/zero` or a runaway generator
/// is refused before it fills the memory.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 << 20;

/// `sandbox.pids`: a plugin needs a few threads (its runtime's workers);
/// the kernel's own ceiling is 4 million.
pub(super) const SANDBOX_PIDS: CountBounds = CountBounds {
    min: 1,
    max: 4 << 20,
    meaning: " (processes and threads at once)",
};

/// `sandbox.open_files`: below 16 a plugin cannot even serve its socket
/// and log.
pub(super) const SANDBOX_OPEN_FILES: CountBounds = CountBounds {
    min: 16,
    max: 1 << 20,
    meaning: " (descriptors per process)",
};
