//! The latest health check of a supervised plugin, as the supervising task
//! saw it: kept for whoever asks (the daemon's `/plugins/<name>/health`),
//! one slot overwritten at each check, so it costs nothing to keep, and
//! emptied when the instance that answered it is gone.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// When it ended. Serialized as RFC 3339 (UTC, milliseconds).
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// Whether the plugin answered `SERVING` in time.
    pub passed: bool,
    /// Why it missed (an error, a timeout, `NOT_SERVING`); `None` when it
    /// passed.
    pub message: Option<String>,
    /// Checks missed in a row, this one included (0 when it passed).
    pub misses: u32,
}

/// `time` as an RFC 3339 string.
fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// The slot the supervising task writes and the [`super::Supervisor`]
/// reads. Cheap to clone: the clones share it.
#[derive(Debug, Clone, Default)]
pub(super) struct LastCheck(Arc<Mutex<Option<HealthCheck>>>);

impl LastCheck {
    /// Records a check that just ended.
    pub(super) fn record(&self, passed: Result<(), &str>, misses: u32) {
        let check = HealthCheck {
            at: SystemTime::now(),
            passed: passed.is_ok(),
            message: passed.err().map(str::to_owned),
            misses,
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(check);
    }

    /// Forgets the check: the instance that answered it is gone.
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The latest check, if any ran.
    pub(super) fn get(&self) -> Option<HealthCheck> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
