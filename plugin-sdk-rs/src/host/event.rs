//! [`Event`]: an event delivered to the plugin (PROTOCOL.md §17.6), read
//! from an `event:<name>` invocation's context.

use std::time::SystemTime;

use serde_json::Value;

use super::{Events, HostServices, Kv, Secrets};
use crate::{Invocation, PluginError};

/// The phase prefix of an event delivery: `event:job.finished`.
pub(crate) const PHASE_PREFIX: &str = "event:";

/// One event, as the host delivers it: subscribed to with
/// [`Manifest::subscribe_event`](crate::Manifest::subscribe_event),
/// handled by [`Plugin::on_event`](crate::Plugin::on_event).
///
/// Delivery is at least once: the same `id` may arrive again (on a retry,
/// or after a host restart); deduplicate on it when that matters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// Unique per host state directory; the same on every retry.
    pub id: String,
    /// The event's name, e.g. `job.finished`.
    pub name: String,
    /// Who published it: `host`, or `plugin:<instance name>`.
    pub source: String,
    /// When it was published.
    pub time: SystemTime,
    /// The payload, any JSON value.
    pub payload: Value,
    /// 1 for the first delivery, then 2, ... across retries.
    pub attempt: u32,
    /// The host's services, for the handler's calls.
    host: HostServices,
}

impl Event {
    /// An event for tests: id `event-1`, source `host`, published now.
    pub fn new(name: impl Into<String>, payload: Value) -> Event {
        Event {
            id: "event-1".to_owned(),
            name: name.into(),
            source: "host".to_owned(),
            time: SystemTime::now(),
            payload,
            attempt: 1,
            host: HostServices::default(),
        }
    }

    /// `true` if the host published it (not a plugin).
    pub fn from_host(&self) -> bool {
        self.source == "host"
    }

    /// The value at an RFC 6901 JSON Pointer into the payload, e.g.
    /// `/exit_code`.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.payload.pointer(pointer)
    }

    /// The key-value store (see [`HostServices::kv`]).
    pub fn kv(&self) -> Kv {
        self.host.kv()
    }

    /// The granted secrets (see [`HostServices::secrets`]).
    pub fn secrets(&self) -> Secrets {
        self.host.secrets()
    }

    /// Publishing events (see [`HostServices::events`]).
    pub fn events(&self) -> Events {
        self.host.events()
    }

    /// The event an `event:<name>` invocation delivers, or `None` if the
    /// phase is not an event's. A context without the `event` object the
    /// protocol describes is the host's mistake: `INVALID_ARGUMENT`.
    pub(crate) fn from_invocation(invocation: &Invocation) -> Option<Result<Event, PluginError>> {
        let name = invocation.phase.strip_prefix(PHASE_PREFIX)?;
        Some(Event::read(name, invocation))
    }

    fn read(name: &str, invocation: &Invocation) -> Result<Event, PluginError> {
        let field = |field: &str| {
            invocation
                .get(&format!("/event/{field}"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    PluginError::invalid_context(format!(
                        "/event/{field} is missing or not a string in the delivery of event \
                         {name:?}"
                    ))
                })
        };
        let time = field("time")?;
        let time = humantime::parse_rfc3339_weak(time).map_err(|e| {
            PluginError::invalid_context(format!(
                "/event/time {time:?} is not an RFC 3339 time: {e}"
            ))
        })?;
        Ok(Event {
            id: field("id")?.to_owned(),
            name: name.to_owned(),
            source: field("source")?.to_owned(),
            time,
            payload: invocation
                .get("/event/payload")
                .cloned()
                .unwrap_or(Value::Null),
            attempt: invocation.attempt,
            host: invocation.host().clone(),
        })
    }

    /// The context the host sends for this event (for the test harness).
    pub(crate) fn to_context(&self) -> Value {
        serde_json::json!({"event": {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "payload": self.payload,
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn reads_the_delivery_context() {
        let inv = Invocation::new(
            "event:job.finished",
            json!({"event": {"id": "ev-7", "name": "job.finished", "source": "host",
                "time": "2026-12-05T07:00:00.250Z", "payload": {"exit_code": 1}}}),
        )
        .with_attempt(3);
        let event = Event::from_invocation(&inv).expect("event").expect("valid");
        assert_eq!(event.id, "ev-7");
        assert_eq!(event.name, "job.finished");
        assert!(event.from_host());
        assert_eq!(event.attempt, 3);
        assert_eq!(event.get("/exit_code"), Some(&json!(1)));
        assert_eq!(
            event.time,
            UNIX_EPOCH + Duration::from_millis(1_796_454_000_250)
        );
        assert_eq!(
            Event::from_invocation(&Invocation::new("event:x", event.to_context()))
                .expect("event")
                .expect("valid")
                .time,
            event.time,
            "the harness's context reads back"
        );
    }

    #[test]
    fn a_phase_is_not_an_event_and_a_bad_context_is_named() {
        assert!(Event::from_invocation(&Invocation::new("pre_container", json!({}))).is_none());
        let err = Event::from_invocation(&Invocation::new("event:a", json!({"event": {}})))
            .expect("event")
            .expect_err("no fields");
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(err.message().contains("/event/time"), "{err}");
    }
}
