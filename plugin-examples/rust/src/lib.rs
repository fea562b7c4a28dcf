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
//! - `src/bin/policy-gate.rs`: vetoes a job whose command matches a deny
//!   pattern, before the container starts.
//! - `src/bin/audit-log.rs`: appends one JSON line per job to a file.
//! - `src/bin/notifier/`: sends a signed `job.finished` event to a file
//!   or to a webhook on this machine.
//! - `src/bin/payload-transformer.rs`: normalizes a submitted job
//!   description (image, argv, labels, resource caps).
//! - `src/bin/flaky-counter/`: counts runs and failures per command in
//!   the host's key-value store (compare-and-set, so concurrent jobs lose
//!   no count) and reports commands that recently both passed and failed.
//! - `src/bin/stress/`: misbehaves as its config and `STRESS_*`
//!   variables say (crashes, hangs, floods its output, reports NOT_SERVING,
//!   leaves processes behind), for the host's supervision tests.
//! - `src/append.rs`: appending a line to an output file that no one else
//!   can redirect (no symbolic link followed, new files 0600).
//! - this file: the small helpers they share (time formats, reading the
//!   job context's `env`, `command`, `job_id` and `exit_code`).
//!
//! Each plugin reads the clock through a [`Clock`] so that its unit tests,
//! written with `outboard_plugin::testing::Harness`, are deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use outboard_plugin::{Invocation, PluginError};
use serde_json::{Map, Value};

mod append;

pub use append::{NEW_FILE_MODE, append_line, link_refused, testing};

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

/// The job's argv (`/command`): an array of strings, else an
/// `INVALID_ARGUMENT` error naming what is wrong.
pub fn command_argv(invocation: &Invocation) -> Result<Vec<String>, PluginError> {
    let items = match invocation.context.get("command") {
        None => {
            return Err(PluginError::invalid_context(
                "/command is missing, expected the job's argv (an array of strings)",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(PluginError::invalid_context(format!(
                "/command is {other}, expected the job's argv (an array of strings)"
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str().map(str::to_owned).ok_or_else(|| {
                PluginError::invalid_context(format!("/command/{i} is {item}, expected a string"))
            })
        })
        .collect()
}

/// The job's id (`/job_id`), the same in every phase of one job.
pub fn job_id(invocation: &Invocation) -> Result<&str, PluginError> {
    match invocation.context.get("job_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        None => Err(PluginError::invalid_context(
            "/job_id is missing, expected the job's id (a string)",
        )),
        Some(other) => Err(PluginError::invalid_context(format!(
            "/job_id is {other}, expected the job's id (a non-empty string)"
        ))),
    }
}

/// The command's exit status (`/exit_code`): `None` if the command did not
/// run (the key is absent or `null`), an `INVALID_ARGUMENT` error if it is
/// not an integer.
pub fn exit_code(invocation: &Invocation) -> Result<Option<i64>, PluginError> {
    match invocation.context.get("exit_code") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_integer(value).map(Some).ok_or_else(|| {
            PluginError::invalid_context(format!("/exit_code is {value}, expected an integer"))
        }),
    }
}

/// An integral JSON number. Context numbers travel as doubles; an integral
/// one comes back as an integer, but accept an integral float too.
pub fn as_integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            .map(|f| f as i64)
    })
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

    #[test]
    fn command_must_be_an_argv() {
        let argv = |ctx| command_argv(&Invocation::new("p", ctx));
        assert_eq!(
            argv(json!({"command": ["make", "test"]})),
            Ok(vec!["make".to_owned(), "test".to_owned()])
        );
        let cases = [
            (
                json!({}),
                "/command is missing, expected the job's argv (an array of strings)",
            ),
            (
                json!({"command": "make test"}),
                "/command is \"make test\", expected the job's argv (an array of strings)",
            ),
            (
                json!({"command": ["make", 3]}),
                "/command/1 is 3, expected a string",
            ),
        ];
        for (ctx, want) in cases {
            let err = argv(ctx).expect_err("invalid");
            assert_eq!(err.code(), outboard_plugin::Code::InvalidArgument);
            assert_eq!(err.message(), want);
        }
    }

    #[test]
    fn job_id_and_exit_code() {
        let inv = Invocation::new("p", json!({"job_id": "j-1", "exit_code": 3}));
        assert_eq!(job_id(&inv), Ok("j-1"));
        assert_eq!(exit_code(&inv), Ok(Some(3)));
        let inv = Invocation::new("p", json!({"job_id": "", "exit_code": null}));
        assert!(job_id(&inv).is_err());
        assert_eq!(exit_code(&inv), Ok(None));
        assert_eq!(exit_code(&Invocation::new("p", json!({}))), Ok(None));
        let inv = Invocation::new("p", json!({"exit_code": 1.0}));
        assert_eq!(exit_code(&inv), Ok(Some(1)));
        let err = exit_code(&Invocation::new("p", json!({"exit_code": 1.5}))).expect_err("1.5");
        assert_eq!(err.message(), "/exit_code is 1.5, expected an integer");
        let err = job_id(&Invocation::new("p", json!({}))).expect_err("missing");
        assert_eq!(
            err.message(),
            "/job_id is missing, expected the job's id (a string)"
        );
    }
}
