//! `job-timer`: times a job from `pre_validation` to `post_container`.
//!
//! In `pre_validation` it records the start under `/metadata/job_timer`
//! (`started_at`, RFC 3339, and `started_at_unix_ms`); the metadata travels
//! with the job to later phases. In `post_container` it reads the start
//! back, logs the duration (a JSON line on stderr, which the host turns into
//! a log record) and records it as `/metadata/job_timer/duration_ms`.

use std::process::ExitCode;
use std::time::SystemTime;

use outboard_examples::{Clock, rfc3339_millis, unix_ms};
use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply};
use serde_json::Value;

/// Where the start time lives in the context.
const STARTED_AT_UNIX_MS: &str = "/metadata/job_timer/started_at_unix_ms";

/// The plugin: it only needs a clock.
struct JobTimer {
    /// Where the start and end times come from.
    clock: Clock,
}

impl Plugin for JobTimer {
    fn manifest(&self) -> Manifest {
        Manifest::new("job-timer", env!("CARGO_PKG_VERSION"))
            .describe("Logs and records how long a job took")
            // First in, last out: time as much of the job as possible.
            .subscribe_idempotent("pre_validation", -100)
            .subscribe_idempotent("post_container", 100)
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let now = (self.clock)();
        match invocation.phase.as_str() {
            "pre_validation" => Ok(Reply::ok()
                .set("/metadata/job_timer/started_at", rfc3339_millis(now))
                .set(STARTED_AT_UNIX_MS, unix_ms(now))),
            "post_container" => {
                let started = started_at(&invocation)?;
                let duration_ms = unix_ms(now).saturating_sub(started);
                let exit_code = invocation.get("/exit_code").and_then(Value::as_i64);
                tracing::info!(
                    duration_ms,
                    exit_code,
                    invocation_id = invocation.invocation_id,
                    "job finished in {duration_ms} ms"
                );
                Ok(Reply::ok()
                    .set("/metadata/job_timer/duration_ms", duration_ms)
                    .with_message(format!("job took {duration_ms} ms")))
            }
            other => Err(PluginError::failed(format!(
                "job-timer does not handle phase {other:?}"
            ))),
        }
    }
}

/// The start time `pre_validation` recorded, in ms since the Unix epoch.
fn started_at(invocation: &Invocation) -> Result<u64, PluginError> {
    let value = invocation.get(STARTED_AT_UNIX_MS).ok_or_else(|| {
        PluginError::invalid_context(format!(
            "{STARTED_AT_UNIX_MS} is missing: pre_validation did not run, so there is no start \
             time to measure from"
        ))
    })?;
    // Context numbers travel as doubles; an integral one comes back as an
    // integer, but accept a float too.
    value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| ms as u64)
        })
        .ok_or_else(|| {
            PluginError::invalid_context(format!(
                "{STARTED_AT_UNIX_MS} is {value}, expected milliseconds since the Unix epoch"
            ))
        })
}

fn main() -> ExitCode {
    outboard_plugin::run(JobTimer {
        clock: SystemTime::now,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2024-05-01T12:00:00.250Z.
    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_714_564_800_250)
    }

    /// 1.5 s after [`start`].
    fn end() -> SystemTime {
        start() + Duration::from_millis(1500)
    }

    #[tokio::test]
    async fn start_then_duration_across_phases() {
        let context = json!({"command": ["make"], "env": {}, "metadata": {}});
        let started = Harness::new(JobTimer { clock: start })
            .invoke("pre_validation", context)
            .await
            .unwrap();
        assert_eq!(
            started.get("/metadata/job_timer"),
            Some(&json!({
                "started_at": "2024-05-01T12:00:00.250Z",
                "started_at_unix_ms": 1_714_564_800_250u64,
            }))
        );

        // The host carries the metadata on; post_container adds exit_code.
        let mut later = started.context;
        later["exit_code"] = json!(0);
        let finished = Harness::new(JobTimer { clock: end })
            .invoke("post_container", later)
            .await
            .unwrap();
        assert_eq!(
            finished.get("/metadata/job_timer/duration_ms"),
            Some(&json!(1500))
        );
        assert_eq!(
            finished.get("/metadata/job_timer/started_at"),
            Some(&json!("2024-05-01T12:00:00.250Z")),
            "the start is left in place"
        );
        assert_eq!(finished.reply.message(), "job took 1500 ms");
    }

    #[tokio::test]
    async fn missing_start_says_pre_validation_did_not_run() {
        let h = Harness::new(JobTimer { clock: end });
        let err = h
            .invoke("post_container", json!({"metadata": {}, "exit_code": 1}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "/metadata/job_timer/started_at_unix_ms is missing: pre_validation did not run, so \
             there is no start time to measure from"
        );

        let err = h
            .invoke(
                "post_container",
                json!({"metadata": {"job_timer": {"started_at_unix_ms": "soon"}}}),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "/metadata/job_timer/started_at_unix_ms is \"soon\", expected milliseconds since the \
             Unix epoch"
        );
    }

    #[tokio::test]
    async fn a_clock_going_backwards_is_zero_not_a_wrap() {
        let h = Harness::new(JobTimer { clock: start });
        let ctx = json!({"metadata": {"job_timer": {"started_at_unix_ms": unix_ms(end())}}});
        let out = h.invoke("post_container", ctx).await.unwrap();
        assert_eq!(out.get("/metadata/job_timer/duration_ms"), Some(&json!(0)));
    }
}
