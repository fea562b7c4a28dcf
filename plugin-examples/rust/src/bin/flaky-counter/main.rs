//! `flaky-counter`: counts, in the host's key-value store, how often each
//! command ran and failed, and reports a command as flaky when its recent
//! runs both passed and failed.
//!
//! In `post_container` (parallel, so it is an observer) it reads the
//! command's record from its own namespace (permission `kv`), counts the
//! run, and writes the record back with compare-and-set: two jobs of the
//! same command finishing at once both count, neither overwrites the
//! other. It records `/metadata/flaky_counter = {"runs", "failures",
//! "recent", "flaky"}`, and when the command is flaky logs a warning and
//! says so in its message. A record not updated for `forget_after` expires.
//!
//! Without host services (an older host, `outboard conformance`) it carries
//! on counting nothing, as PROTOCOL.md §17.1 asks of a plugin that can do
//! without them: one warning at `Configure`, and each run's message says
//! it was not counted. With host services but without the `kv` grant, its
//! `Configure` fails with `FAILED_PRECONDITION` naming the grant.

mod record;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use outboard_examples::{command_argv, exit_code};
use outboard_plugin::host::{Cas, Expected, Kv};
use outboard_plugin::{Config, HostServices, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::Deserialize;
use serde_json::json;

use record::{Record, key};

/// How many compare-and-set rounds a run may take before giving up: each
/// lost round means another job's count went in, so this is only reached
/// under a storm of jobs of one command.
const MAX_ROUNDS: usize = 64;

/// The config as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// How many of the latest runs decide whether a command is flaky.
    #[serde(default = "default_window")]
    window: usize,
    /// How long a command's record lives without a run, e.g. `"7d"`.
    #[serde(default = "default_forget_after")]
    forget_after: String,
}

fn default_window() -> usize {
    10
}

fn default_forget_after() -> String {
    "30d".to_owned()
}

/// The checked config and the host's services.
#[derive(Debug)]
struct Settings {
    window: usize,
    forget_after: Duration,
    /// `None` when the host offers no host services: nothing is counted.
    host: Option<HostServices>,
}

/// The plugin; configured once.
#[derive(Debug, Default)]
struct FlakyCounter {
    settings: OnceLock<Settings>,
}

impl Plugin for FlakyCounter {
    fn manifest(&self) -> Manifest {
        Manifest::new("flaky-counter", env!("CARGO_PKG_VERSION"))
            .describe("Counts runs and failures per command and reports flaky commands")
            .subscribe("post_container", 90)
            .permission("kv", "to keep each command's run and failure counts")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "window": {"type": "integer", "minimum": 2, "maximum": 1000},
                    "forget_after": {"type": "string"}
                }
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let raw: RawConfig = config.deserialize()?;
        if !(2..=1000).contains(&raw.window) {
            return Err(PluginError::invalid_config(format!(
                "window: {} is not between 2 and 1000",
                raw.window
            )));
        }
        let forget_after = humantime::parse_duration(&raw.forget_after).map_err(|e| {
            PluginError::invalid_config(format!("forget_after: {:?}: {e}", raw.forget_after))
        })?;
        let host = if config.host.is_offered() {
            config.require("kv")?;
            Some(config.host.clone())
        } else {
            tracing::warn!(
                "this host offers no host services (OUTBOARD_HOST_SOCKET is not set): \
                 counting nothing"
            );
            None
        };
        let settings = Settings {
            window: raw.window,
            forget_after,
            host,
        };
        // A second Configure keeps the first settings; the host sends one.
        let _ = self.settings.set(settings);
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let settings = self
            .settings
            .get()
            .ok_or_else(|| PluginError::failed_precondition("invoked before Configure"))?;
        // A dry run has no exit code: nothing ran, nothing to count.
        let Some(code) = exit_code(&invocation)? else {
            return Ok(Reply::ok());
        };
        let Some(host) = &settings.host else {
            return Ok(Reply::ok().with_message("not counted: this host offers no host services"));
        };
        let command = command_argv(&invocation)?;
        let record = count(&host.kv(), &command, code == 0, settings).await?;
        let shown = command.join(" ");
        let mut reply = Reply::ok().set(
            "/metadata/flaky_counter",
            json!({
                "runs": record.runs,
                "failures": record.failures,
                "recent": record.recent,
                "flaky": record.is_flaky(),
            }),
        );
        if record.is_flaky() {
            tracing::warn!(command = shown, recent = record.recent, "flaky command");
            reply = reply.with_message(format!(
                "flaky: `{shown}` passed and failed in its last {} runs ({})",
                record.recent.len(),
                record.recent
            ));
        }
        Ok(reply)
    }
}

/// Counts one run of `command` with compare-and-set, retrying from the
/// value the host reports when another job got there first.
async fn count(
    kv: &Kv,
    command: &[String],
    passed: bool,
    settings: &Settings,
) -> Result<Record, PluginError> {
    let key = key(command);
    let mut current = kv.get(&key).await?.map(|entry| entry.value);
    for _ in 0..MAX_ROUNDS {
        let old: Record = match &current {
            // A record this plugin cannot read (an older format) starts over.
            Some(bytes) => serde_json::from_slice(bytes).unwrap_or_default(),
            None => Record::default(),
        };
        let new = old.counted(command, passed, settings.window);
        let value = serde_json::to_vec(&new)
            .map_err(|e| PluginError::internal(format!("cannot encode the record: {e}")))?;
        let expected = current.map_or(Expected::Absent, Expected::Value);
        match kv
            .compare_and_set(&key, expected, value, Some(settings.forget_after))
            .await?
        {
            Cas::Swapped => return Ok(new),
            Cas::Mismatch { current: now } => current = now,
        }
    }
    Err(PluginError::unavailable(format!(
        "gave up counting after {MAX_ROUNDS} rounds: other jobs of the same command kept \
         writing its record"
    )))
}

fn main() -> ExitCode {
    outboard_plugin::run(FlakyCounter::default())
}
