//! The host's own events from its event channel (§17.6): `plugin.ready`,
//! `plugin.restarted`, `plugin.failed`, `reload.finished`, each stored
//! durably with source `host`. (`job.*` come from whoever runs jobs:
//! `outboard run` and the daemon's `RecordJob`.)

use std::collections::HashMap;
use std::sync::Arc;

use outboard_host::{HostEvent, HostHandle, State, Status};
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::Events;

/// What was last seen of one plugin.
#[derive(Debug, Default)]
struct Seen {
    /// Its state.
    state: Option<State>,
    /// Why it last failed, for `plugin.restarted`.
    reason: Option<String>,
}

/// Publishes the host's events until delivery stops or the host is gone.
pub(super) async fn run(
    events: Arc<Events>,
    mut channel: broadcast::Receiver<HostEvent>,
    host: HostHandle,
) {
    let mut stop = events.stop.subscribe();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // The plugins ready before this began: their first `plugin.ready`.
    for plugin in host.plugins() {
        let status = plugin.status();
        for (name, payload) in changes(
            seen.entry(plugin.name().to_owned()).or_default(),
            plugin.name(),
            &status,
        ) {
            events.publish_host(name, payload).await;
        }
    }
    loop {
        let event = tokio::select! {
            event = channel.recv() => event,
            _ = stop.changed() => return,
        };
        match event {
            Ok(HostEvent::Plugin { name, status }) => {
                let entry = seen.entry(name.to_string()).or_default();
                for (event, payload) in changes(entry, &name, &status) {
                    events.publish_host(event, payload).await;
                }
            }
            Ok(HostEvent::Reload { plan, error }) => {
                let restarted: Vec<&str> = plan.changed.iter().map(|c| c.name.as_str()).collect();
                let payload = json!({
                    "ok": error.is_none(),
                    "added": plan.added,
                    "removed": plan.removed,
                    "restarted": restarted,
                });
                events.publish_host("reload.finished", payload).await;
            }
            Ok(HostEvent::Dispatch(_)) => {}
            Err(RecvError::Lagged(missed)) => tracing::warn!(
                missed,
                "the host's event channel ran ahead of event publishing; {missed} host events \
                 (plugin state changes, reloads) were not published"
            ),
            Err(RecvError::Closed) => return,
        }
    }
}

/// The events a plugin's new `status` makes, given what was `seen`.
fn changes(seen: &mut Seen, plugin: &str, status: &Status) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let before = seen.state.replace(status.state);
    if status.reason.is_some() {
        seen.reason.clone_from(&status.reason);
    }
    if before == Some(status.state) {
        return out;
    }
    match status.state {
        State::Ready => {
            out.push(("plugin.ready", json!({"plugin": plugin, "pid": status.pid})));
            if status.starts > 1 {
                out.push((
                    "plugin.restarted",
                    json!({
                        "plugin": plugin,
                        "restarts": status.starts - 1,
                        "reason": seen.reason.clone().unwrap_or_default(),
                    }),
                ));
            }
        }
        State::Failed => out.push((
            "plugin.failed",
            json!({"plugin": plugin, "reason": status.reason.clone().unwrap_or_default()}),
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: State, starts: u32, reason: Option<&str>) -> Status {
        Status {
            state,
            pid: (state == State::Ready).then_some(42),
            starts,
            reason: reason.map(str::to_owned),
            stderr: Vec::new(),
            since: None,
            optional: false,
            invoke_path: None,
        }
    }

    #[test]
    fn ready_restarted_and_failed_follow_the_state() {
        let mut seen = Seen::default();
        let first = changes(&mut seen, "p", &status(State::Ready, 1, None));
        assert_eq!(first, [("plugin.ready", json!({"plugin": "p", "pid": 42}))]);
        assert!(changes(&mut seen, "p", &status(State::Ready, 1, None)).is_empty());
        assert!(
            changes(
                &mut seen,
                "p",
                &status(State::Restarting, 1, Some("exited with status 3"))
            )
            .is_empty()
        );
        let again = changes(&mut seen, "p", &status(State::Ready, 2, None));
        assert_eq!(again.len(), 2);
        assert_eq!(
            again[1],
            (
                "plugin.restarted",
                json!({"plugin": "p", "restarts": 1, "reason": "exited with status 3"})
            )
        );
        let failed = changes(
            &mut seen,
            "p",
            &status(State::Failed, 2, Some("crash loop")),
        );
        assert_eq!(
            failed,
            [(
                "plugin.failed",
                json!({"plugin": "p", "reason": "crash loop"})
            )]
        );
    }
}
