//! The config: which faults to commit, each key checked by hand so that
//! every error names its key, and the JSON Schema that describes it.

use std::time::Duration;

use outboard_plugin::{Config, PluginError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::health::{HealthMode, health_mode};

/// Bounds on the config's numbers, so a typo cannot fork-bomb the machine
/// or ask for a 1 TB line.
const MAX_GRANDCHILDREN: u64 = 64;
const MAX_LINES_PER_SEC: u64 = 1_000_000;
const MAX_LINE_BYTES: u64 = 16 << 20;
const MAX_NEWLINE_FREE_BYTES: u64 = 1 << 30;
const MAX_DELAY_MS: u64 = 24 * 3600 * 1000;

/// The config as written; each key is checked by hand so that every error
/// names its key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    crash_after: Option<Value>,
    hang_invoke: Option<Value>,
    invoke_delay_ms: Option<Value>,
    panic_on_invoke: Option<Value>,
    health: Option<Value>,
    flood_stderr: Option<Value>,
    flood_stdout: Option<Value>,
    newline_free_bytes: Option<Value>,
    fork_grandchildren: Option<Value>,
    orphan_grandchildren: Option<Value>,
    ignore_shutdown: Option<Value>,
}

/// One of `flood_stderr` and `flood_stdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flood {
    /// Lines a second.
    pub(crate) lines_per_sec: u64,
    /// Bytes a line, without the newline.
    pub(crate) line_bytes: usize,
}

/// The checked config: which faults to commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    pub(crate) crash_after: Option<u64>,
    pub(crate) hang_invoke: bool,
    pub(crate) invoke_delay: Option<Duration>,
    pub(crate) panic_on_invoke: bool,
    pub(crate) health: HealthMode,
    pub(crate) flood_stderr: Option<Flood>,
    pub(crate) flood_stdout: Option<Flood>,
    pub(crate) newline_free_bytes: u64,
    pub(crate) fork_grandchildren: u64,
    pub(crate) orphan_grandchildren: u64,
    pub(crate) ignore_shutdown: bool,
}

impl Faults {
    /// Checks `config`; every error names its key.
    pub(crate) fn from_config(config: &Config) -> Result<Faults, PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let mut faults = Faults::default();
        if let Some(v) = &raw.crash_after {
            faults.crash_after = Some(number("crash_after", v, 1, u64::MAX)?);
        }
        if let Some(v) = &raw.hang_invoke {
            faults.hang_invoke = flag("hang_invoke", v)?;
        }
        if let Some(v) = &raw.invoke_delay_ms {
            let ms = number("invoke_delay_ms", v, 0, MAX_DELAY_MS)?;
            faults.invoke_delay = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(v) = &raw.panic_on_invoke {
            faults.panic_on_invoke = flag("panic_on_invoke", v)?;
        }
        if let Some(v) = &raw.health {
            faults.health = health_mode(v)?;
        }
        if let Some(v) = &raw.flood_stderr {
            faults.flood_stderr = Some(flood("flood_stderr", v)?);
        }
        if let Some(v) = &raw.flood_stdout {
            faults.flood_stdout = Some(flood("flood_stdout", v)?);
        }
        if let Some(v) = &raw.newline_free_bytes {
            faults.newline_free_bytes = number("newline_free_bytes", v, 0, MAX_NEWLINE_FREE_BYTES)?;
        }
        if let Some(v) = &raw.fork_grandchildren {
            faults.fork_grandchildren = number("fork_grandchildren", v, 0, MAX_GRANDCHILDREN)?;
        }
        if let Some(v) = &raw.orphan_grandchildren {
            faults.orphan_grandchildren = number("orphan_grandchildren", v, 0, MAX_GRANDCHILDREN)?;
        }
        if let Some(v) = &raw.ignore_shutdown {
            faults.ignore_shutdown = flag("ignore_shutdown", v)?;
        }
        Ok(faults)
    }

    /// `true` if `Configure` has something to start (threads, processes,
    /// output).
    pub(crate) fn has_side_effects(&self) -> bool {
        self.flood_stderr.is_some()
            || self.flood_stdout.is_some()
            || self.newline_free_bytes > 0
            || self.fork_grandchildren > 0
            || self.orphan_grandchildren > 0
    }

    /// What the `count`-th invocation does.
    pub(crate) fn step(&self, count: u64) -> Step {
        if self.crash_after.is_some_and(|n| count >= n) {
            Step::Crash
        } else if self.panic_on_invoke {
            Step::Panic
        } else if self.hang_invoke {
            Step::Hang
        } else {
            Step::Answer
        }
    }
}

/// What one invocation does after any `invoke_delay_ms` (crash and panic
/// come before the delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Exit 101.
    Crash,
    /// Panic.
    Panic,
    /// Never answer.
    Hang,
    /// Answer with the count.
    Answer,
}

/// A whole number from `min` to `max`.
fn number(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, PluginError> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            let range = if max == u64::MAX {
                format!("{min} or more")
            } else {
                format!("from {min} to {max}")
            };
            PluginError::invalid_config(format!(
                "{key}: expected a whole number {range}, got {value}"
            ))
        })
}

/// `true` or `false`.
fn flag(key: &str, value: &Value) -> Result<bool, PluginError> {
    value.as_bool().ok_or_else(|| {
        PluginError::invalid_config(format!("{key}: expected true or false, got {value}"))
    })
}

/// `{"lines_per_sec": N, "line_bytes": M}`.
fn flood(key: &str, value: &Value) -> Result<Flood, PluginError> {
    let Value::Object(fields) = value else {
        return Err(PluginError::invalid_config(format!(
            "{key}: expected an object {{\"lines_per_sec\": N, \"line_bytes\": M}}, got {value}"
        )));
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "lines_per_sec" | "line_bytes"))
    {
        return Err(PluginError::invalid_config(format!(
            "{key}.{other}: unknown key (expected lines_per_sec and line_bytes)"
        )));
    }
    let field = |name: &str, max: u64| {
        let path = format!("{key}.{name}");
        match fields.get(name) {
            Some(v) => number(&path, v, 1, max),
            None => Err(PluginError::invalid_config(format!(
                "{path}: missing (expected a whole number from 1 to {max})"
            ))),
        }
    };
    let lines_per_sec = field("lines_per_sec", MAX_LINES_PER_SEC)?;
    let line_bytes = field("line_bytes", MAX_LINE_BYTES)?;
    Ok(Flood {
        lines_per_sec,
        line_bytes: usize::try_from(line_bytes).unwrap_or(usize::MAX),
    })
}

/// The config's JSON Schema.
pub(crate) fn schema() -> Value {
    let whole = |min: u64, max: u64, what: &str| json!({"description": what, "type": "integer", "minimum": min, "maximum": max});
    let flood = |stream: &str| {
        json!({
            "description": format!("Write lines to {stream} continuously"),
            "type": "object",
            "properties": {
                "lines_per_sec": whole(1, MAX_LINES_PER_SEC, "Lines a second"),
                "line_bytes": whole(1, MAX_LINE_BYTES, "Bytes a line, without the newline")
            },
            "required": ["lines_per_sec", "line_bytes"],
            "additionalProperties": false
        })
    };
    let flag = |what: &str| json!({"description": what, "type": "boolean", "default": false});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "crash_after": {
                "description": "Exit 101 inside the N-th Invoke since the process started",
                "type": "integer",
                "minimum": 1
            },
            "hang_invoke": flag("Invoke never returns (until its deadline)"),
            "invoke_delay_ms": whole(0, MAX_DELAY_MS, "Sleep this long in each Invoke before answering"),
            "panic_on_invoke": flag("Panic inside Invoke"),
            "health": {
                "description": "What the health service reports",
                "type": "string",
                "pattern": "^(serving|not_serving|stop_answering|(not_serving|stop_answering)_after:[1-9][0-9]*)$",
                "default": "serving"
            },
            "flood_stderr": flood("stderr"),
            "flood_stdout": flood("stdout"),
            "newline_free_bytes": whole(0, MAX_NEWLINE_FREE_BYTES, "Write this many bytes to stderr at Configure, without a newline"),
            "fork_grandchildren": whole(0, MAX_GRANDCHILDREN, "Spawn this many `sleep 3600` in the plugin's process group at Configure"),
            "orphan_grandchildren": whole(0, MAX_GRANDCHILDREN, "Spawn this many `sleep 3600` in sessions of their own (escaping the process group) at Configure"),
            "ignore_shutdown": flag("Answer Shutdown but do not exit")
        },
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_keys_are_parsed() {
        let faults = Faults::from_config(&Config::new(json!({
            "crash_after": 3,
            "hang_invoke": true,
            "invoke_delay_ms": 250,
            "panic_on_invoke": false,
            "health": "not_serving_after:2",
            "flood_stderr": {"lines_per_sec": 1000, "line_bytes": 200},
            "flood_stdout": {"line_bytes": 40000, "lines_per_sec": 10},
            "newline_free_bytes": 100000,
            "fork_grandchildren": 2,
            "orphan_grandchildren": 1,
            "ignore_shutdown": true,
        })))
        .unwrap();
        assert_eq!(
            faults,
            Faults {
                crash_after: Some(3),
                hang_invoke: true,
                invoke_delay: Some(Duration::from_millis(250)),
                panic_on_invoke: false,
                health: HealthMode::NotServingAfter(2),
                flood_stderr: Some(Flood {
                    lines_per_sec: 1000,
                    line_bytes: 200
                }),
                flood_stdout: Some(Flood {
                    lines_per_sec: 10,
                    line_bytes: 40000
                }),
                newline_free_bytes: 100_000,
                fork_grandchildren: 2,
                orphan_grandchildren: 1,
                ignore_shutdown: true,
            }
        );
        assert!(faults.has_side_effects());
        let empty = Faults::from_config(&Config::new(json!({}))).unwrap();
        assert_eq!(empty, Faults::default());
        assert!(!empty.has_side_effects());
        for (given, want) in [
            ("serving", HealthMode::Serving),
            ("not_serving", HealthMode::NotServing),
            ("stop_answering", HealthMode::StopAnswering),
            ("stop_answering_after:7", HealthMode::StopAnsweringAfter(7)),
        ] {
            let f = Faults::from_config(&Config::new(json!({ "health": given }))).unwrap();
            assert_eq!(f.health, want, "{given}");
        }
    }

    #[test]
    fn each_invocation_steps_by_its_count() {
        let crash = Faults {
            crash_after: Some(3),
            hang_invoke: true,
            ..Faults::default()
        };
        assert_eq!(crash.step(1), Step::Hang);
        assert_eq!(crash.step(2), Step::Hang);
        assert_eq!(crash.step(3), Step::Crash);
        assert_eq!(crash.step(4), Step::Crash);
        let panics = Faults {
            panic_on_invoke: true,
            hang_invoke: true,
            ..Faults::default()
        };
        assert_eq!(panics.step(1), Step::Panic);
        assert_eq!(Faults::default().step(1_000_000), Step::Answer);
    }
}
