//! What `Invoke` hands a plugin: one phase of one job.

use std::collections::HashMap;
use std::time::SystemTime;

use outboard_proto::patch::Pointer;
use serde_json::{Map, Value};

use crate::host::{Events, HostServices, Kv, Secrets};

/// One call for one phase: which phase, which attempt, until when, and the
/// phase context.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Invocation {
    /// The phase being run, e.g. `pre_container`.
    pub phase: String,
    /// Unique per dispatch of a phase; the same across retries.
    pub invocation_id: String,
    /// 1 for the first try, 2 for the first retry, and so on.
    pub attempt: u32,
    /// When the host gives up on this call, if it said. The SDK also cancels
    /// the call at this instant.
    pub deadline: Option<SystemTime>,
    /// W3C trace context (`traceparent`, `tracestate`), when the host has one.
    pub trace_context: HashMap<String, String>,
    /// The phase context: for the job phases `command`, `env`, `metadata`,
    /// and later `exit_code` and `error`.
    pub context: Map<String, Value>,
    /// The host's services, for calls back ([`Invocation::kv`], ...).
    host: HostServices,
}

impl Invocation {
    /// An invocation of `phase` with `context` (a JSON object; anything else
    /// counts as empty), attempt 1, no deadline, an empty invocation id.
    pub fn new(phase: impl Into<String>, context: Value) -> Invocation {
        Invocation {
            phase: phase.into(),
            invocation_id: String::new(),
            attempt: 1,
            deadline: None,
            trace_context: HashMap::new(),
            context: match context {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            host: HostServices::default(),
        }
    }

    /// Sets the host services the plugin may call (the server and the
    /// [test harness](crate::testing::Harness) do).
    pub fn with_host(mut self, host: HostServices) -> Invocation {
        self.host = host;
        self
    }

    /// The host's services (PROTOCOL.md §17).
    pub fn host(&self) -> &HostServices {
        &self.host
    }

    /// The key-value store, in the plugin's own namespace
    /// ([`Kv::shared`] for a shared one).
    pub fn kv(&self) -> Kv {
        self.host.kv()
    }

    /// The secrets granted to the plugin.
    pub fn secrets(&self) -> Secrets {
        self.host.secrets()
    }

    /// Publishing events.
    pub fn events(&self) -> Events {
        self.host.events()
    }

    /// Sets the invocation id.
    pub fn with_invocation_id(mut self, id: impl Into<String>) -> Invocation {
        self.invocation_id = id.into();
        self
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Invocation {
        self.attempt = attempt;
        self
    }

    /// Sets the deadline.
    pub fn with_deadline(mut self, deadline: SystemTime) -> Invocation {
        self.deadline = Some(deadline);
        self
    }

    /// The value at an RFC 6901 JSON Pointer into the context, e.g.
    /// `/metadata/job_timer/started_at`; `None` if absent or if `pointer`
    /// is not a pointer (the whole context is [`Invocation::context`]).
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        let pointer = Pointer::parse(pointer).ok()?;
        let (first, rest) = pointer.tokens().split_first()?;
        let mut at = self.context.get(first)?;
        for token in rest {
            at = match at {
                Value::Object(map) => map.get(token)?,
                Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// The variable `key` of the job's environment (`/env/<key>`), if it is
    /// set to a string.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.context.get("env")?.get(key)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_env_read_the_context() {
        let inv = Invocation::new(
            "pre_container",
            json!({
                "env": {"HOME": "/root", "N": 3},
                "metadata": {"a/b": {"c": [10, 20]}},
                "exit_code": 0,
            }),
        )
        .with_invocation_id("inv-1")
        .with_attempt(2);
        assert_eq!(inv.env("HOME"), Some("/root"));
        assert_eq!(inv.env("N"), None, "not a string");
        assert_eq!(inv.env("MISSING"), None);
        assert_eq!(inv.get("/exit_code"), Some(&json!(0)));
        assert_eq!(inv.get("/metadata/a~1b/c/1"), Some(&json!(20)));
        assert_eq!(inv.get("/metadata/nope"), None);
        assert_eq!(inv.get("metadata"), None, "not a pointer");
        assert_eq!(inv.get(""), None);
        assert_eq!((inv.invocation_id.as_str(), inv.attempt), ("inv-1", 2));
    }
}
