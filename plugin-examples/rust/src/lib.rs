//! Example Outboard plugins written with the Rust SDK, one binary each.
//!
//! # Layout
//!
//! - `src/bin/env-injector.rs`: sets `BUILD_ID` and `BUILD_TIMESTAMP` in
//!   the job's environment before the container starts.
//! - `src/bin/job-timer.rs`: notes when a job starts and logs (and records)
//!   how long it took once the container is done.
//! - `src/bin/resource-limiter.rs`: checks memory and CPU limits in its
//!   config and hands them to the container phase.
//! - this file: the small helpers they share (time formats, reading the
//!   job context's `env`).
//!
//! Each plugin reads the clock through a [`Clock`] so that its unit tests,
//! written with `outboard_plugin::testing::Harness`, are deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use outboard_plugin::{Invocation, PluginError};
use serde_json::{Map, Value};

/// Where a plugin reads the time: [`SystemTime::now`] in production, a fixed
/// instant in tests.
pub type Clock = fn() -> SystemTime;

/// Milliseconds since the Unix epoch (0 for instants before it).
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 in UTC to the second, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// RFC 3339 in UTC to the millisecond, e.g. `2024-05-01T12:00:00.250Z`.
pub fn rfc3339_millis(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// The job's environment (`/env`): `None` if the context has none, an
/// `INVALID_ARGUMENT` error if it is not an object.
pub fn env_object(invocation: &Invocation) -> Result<Option<&Map<String, Value>>, PluginError> {
    match invocation.context.get("env") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(env)) => Ok(Some(env)),
        Some(other) => Err(PluginError::invalid_context(format!(
            "/env is {other}, expected an object of strings"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn time_formats() {
        let at = UNIX_EPOCH + Duration::from_millis(1_714_564_800_250);
        assert_eq!(unix_ms(at), 1_714_564_800_250);
        assert_eq!(rfc3339(at), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_millis(at), "2024-05-01T12:00:00.250Z");
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn env_must_be_an_object() {
        let inv = Invocation::new("p", json!({"env": {"A": "1"}}));
        assert_eq!(
            env_object(&inv).expect("object").and_then(|e| e.get("A")),
            Some(&json!("1"))
        );
        assert_eq!(env_object(&Invocation::new("p", json!({}))), Ok(None));
        let err = env_object(&Invocation::new("p", json!({"env": ["A=1"]}))).expect_err("array");
        assert_eq!(
            err.to_string(),
            "invalid context: /env is [\"A=1\"], expected an object of strings"
        );
    }
}
