//! The upper limits of a config file for a spec built in code: a program
//! embedding the host can hand it any `Duration`, and a value past them
//! would overflow the clock arithmetic that uses it (a panic). The lower
//! limits stay the config file's: a program may want what an operator
//! should not (a benchmark that restarts at once, a test with fast health
//! checks).

use std::time::Duration;

use super::limits::{
    BACKOFF, DurationBounds, HEALTH_INTERVAL, RETRY_BACKOFF, STOP_GRACE, TIMEOUT, WINDOW,
};
use super::spec::PluginSpec;

impl PluginSpec {
    /// Checks every duration against the upper limit a config file is held
    /// to (docs/CONFIG.md §2), and the config's nesting against what a
    /// plugin can decode; says which field is too large and why. (Counts
    /// overflow nothing: a program may turn quarantine off with `u32::MAX`.)
    pub fn check(&self) -> Result<(), String> {
        let sup = &self.supervision;
        let durations = [
            ("handshake_timeout", self.handshake_timeout, TIMEOUT),
            ("call_timeout", self.call_timeout, TIMEOUT),
            ("stop_grace", self.stop_grace, STOP_GRACE),
            ("health_interval", sup.health_interval, HEALTH_INTERVAL),
            ("backoff_initial", sup.backoff_initial, BACKOFF),
            ("backoff_max", sup.backoff_max, BACKOFF),
            ("backoff_reset_after", sup.backoff_reset_after, WINDOW),
            ("crash_loop_window", sup.crash_loop_window, WINDOW),
        ];
        for (field, value, bounds) in durations {
            within(field, value, bounds)?;
        }
        for (phase, over) in &self.subscriptions {
            if let Some(timeout) = over.timeout {
                within(&format!("subscriptions.{phase}.timeout"), timeout, TIMEOUT)?;
            }
            if let Some(retry) = &over.retry {
                let at = format!("subscriptions.{phase}.retry_backoff");
                within(&at, retry.backoff, RETRY_BACKOFF)?;
            }
        }
        outboard_proto::json::check_struct(&self.config).map_err(|deep| format!("config {deep}"))
    }
}

fn within(field: &str, value: Duration, bounds: DurationBounds) -> Result<(), String> {
    if value > bounds.max {
        return Err(format!(
            "{field} {value:?} is longer than the maximum, {:?}",
            bounds.max
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_built_in_code_is_held_to_the_file_limits() {
        let mut spec = PluginSpec::new("a", "/bin/true");
        assert_eq!(spec.check(), Ok(()));
        spec.call_timeout = Duration::from_secs(300_000_000_000 * 365 * 86_400 / 1_000_000);
        let err = spec.check().expect_err("a huge timeout");
        assert!(err.starts_with("call_timeout "), "{err}");
        spec.call_timeout = Duration::from_secs(2);
        // What only an operator is kept from: a window under a second, no
        // quarantine at all.
        spec.supervision.crash_loop_starts = u32::MAX;
        spec.supervision.backoff_reset_after = Duration::from_millis(1);
        assert_eq!(spec.check(), Ok(()));
        let mut deep = serde_json::json!(1);
        for _ in 0..40 {
            deep = serde_json::json!({ "a": deep });
        }
        spec.config = serde_json::Map::from_iter([("x".to_owned(), deep)]);
        let err = spec.check().expect_err("too deep");
        assert!(err.starts_with("config /x/a/a"), "{err}");
    }
}
