//! What an event must be to be stored: its name (PROTOCOL.md §17.4), the
//! host's reserved prefixes, the payload's size and depth, the
//! idempotency key; and how a state failure reads on the wire.

use outboard_proto::json::check_value;
use outboard_proto::names::{invalid_event_name, is_valid_event_name};
use outboard_state::StateError;
use tonic::Status;

/// Name prefixes only the host publishes under.
pub const RESERVED_PREFIXES: [&str; 4] = ["plugin.", "job.", "reload.", "host."];

/// The largest payload, as JSON text (§17.5 `event payload size`).
pub const MAX_PAYLOAD_BYTES: usize = 262_144;

/// The most a plugin instance may keep in the outbox (§17.5 `event outbox
/// per plugin`): payloads plus `EVENT_OVERHEAD_BYTES` each, until pruned
/// after the retention. Bounds a plugin that publishes until the disk is
/// full.
pub const MAX_PLUGIN_OUTBOX_BYTES: u64 = 256 << 20;

/// The longest idempotency key.
pub(super) const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// Where the payload sits in an event delivery's context
/// (`context.event.payload`): the level of its parent message, for the
/// nesting limit of §8.1.
const PAYLOAD_LEVEL: usize = 4;

/// `Ok` if `name` may be published by a plugin or an operator: a valid
/// event name outside the host's prefixes. Else `INVALID_ARGUMENT` naming
/// `name`.
pub(super) fn check_name(name: &str) -> Result<(), Status> {
    if !is_valid_event_name(name) {
        return Err(Status::invalid_argument(format!(
            "name: {}",
            invalid_event_name(name)
        )));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(Status::invalid_argument(format!(
            "name: {name:?} starts with {prefix:?}, which is reserved for the host's own events \
             (plugin., job., reload., host.); choose another name"
        )));
    }
    Ok(())
}

/// The payload as the JSON text stored, or `INVALID_ARGUMENT` (too deep)
/// / `RESOURCE_EXHAUSTED` (too large) naming it.
pub(super) fn payload_text(payload: &serde_json::Value) -> Result<String, Status> {
    check_value(payload, PAYLOAD_LEVEL).map_err(|e| {
        Status::invalid_argument(format!(
            "payload: nested too deeply to be delivered in an event's context ({e:?})"
        ))
    })?;
    let text = payload.to_string();
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(Status::resource_exhausted(format!(
            "event payload size: {} bytes > limit {MAX_PAYLOAD_BYTES}; nothing was stored",
            text.len()
        )));
    }
    Ok(text)
}

/// The idempotency key, `None` when empty; `INVALID_ARGUMENT` naming it
/// when too long.
pub(super) fn idempotency_key(key: &str) -> Result<Option<&str>, Status> {
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "idempotency_key: {} bytes, at most {MAX_IDEMPOTENCY_KEY_BYTES}",
            key.len()
        )));
    }
    Ok((!key.is_empty()).then_some(key))
}

/// A state failure as `UNAVAILABLE`, naming what failed (a retry may
/// succeed: the disk may have room again).
pub(super) fn unavailable(error: &StateError) -> Status {
    Status::unavailable(format!("the events outbox failed: {error}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tonic::Code;

    use super::*;

    #[test]
    fn names_follow_the_event_rules_outside_the_host_prefixes() {
        for good in [
            "build.flaky",
            "deploy-done",
            "0",
            "jobs.finished",
            "hosting.x",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Build",
            "build flaky",
            "build:x",
            ".x",
            &"x".repeat(129),
        ] {
            let err = check_name(bad).expect_err(bad);
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.message().starts_with("name: "), "{}", err.message());
        }
        for reserved in ["job.finished", "plugin.ready", "reload.finished", "host.x"] {
            let err = check_name(reserved).expect_err(reserved);
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.message().contains("reserved"), "{}", err.message());
        }
    }

    #[test]
    fn payloads_are_bounded_in_size_and_depth() {
        assert_eq!(
            payload_text(&json!({"a": [1, 2]})).expect("small"),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(
            payload_text(&serde_json::Value::Null).expect("null"),
            "null"
        );
        let big = json!("x".repeat(MAX_PAYLOAD_BYTES));
        let err = payload_text(&big).expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(
            err.message().starts_with("event payload size: "),
            "{}",
            err.message()
        );
        let mut deep = json!(1);
        for _ in 0..60 {
            deep = json!([deep]);
        }
        assert_eq!(
            payload_text(&deep).expect_err("deep").code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn idempotency_keys_are_optional_and_bounded() {
        assert_eq!(idempotency_key("").expect("empty"), None);
        assert_eq!(idempotency_key("k-1").expect("short"), Some("k-1"));
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        assert_eq!(
            idempotency_key(&long).expect_err("long").code(),
            Code::InvalidArgument
        );
    }
}
