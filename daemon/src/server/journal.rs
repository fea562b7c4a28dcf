//! The daemon's journal of events for `Watch`: the host's events
//! ([`HostEvent`]) as wire messages, the most recent kept in a small ring
//! and each broadcast to the watchers that follow. A watcher reads the ring
//! and subscribes under one lock, so it sees every event exactly once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use outboard_host::{Host, HostEvent};
use outboard_proto::control::v1 as wire;
use tokio::sync::broadcast::{self, error::RecvError};

use super::status::event_status;
use crate::logs::LogBook;
use crate::wire::{dispatch_event, plan_names, plan_to_proto, timestamp};

/// How many recent events the journal keeps for a new watcher.
pub(crate) const RECENT_EVENTS: usize = 256;

/// Events a following watcher may fall behind by before it misses some.
const FOLLOW_BUFFERED: usize = 1024;

/// The recent events and the live feed.
#[derive(Debug)]
pub(crate) struct Journal {
    /// The last [`RECENT_EVENTS`] events, oldest first.
    recent: Mutex<VecDeque<Arc<wire::WatchResponse>>>,
    /// Each event as it is recorded.
    live: broadcast::Sender<Arc<wire::WatchResponse>>,
}

impl Journal {
    /// An empty journal.
    pub(crate) fn new() -> Journal {
        Journal {
            recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
            live: broadcast::channel(FOLLOW_BUFFERED).0,
        }
    }

    /// Keeps `event` among the recent ones and sends it to the watchers.
    pub(crate) fn record(&self, event: wire::watch_response::Event) {
        let event = Arc::new(wire::WatchResponse {
            time: Some(timestamp(SystemTime::now())),
            event: Some(event),
        });
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // Sent under the lock, so a watcher that copies the ring and
        // subscribes meanwhile sees this event once, in one place or the
        // other. Nobody following is fine.
        let _ = self.live.send(event);
    }

    /// The recent events, and every later one.
    pub(crate) fn read_and_follow(
        &self,
    ) -> (
        Vec<Arc<wire::WatchResponse>>,
        broadcast::Receiver<Arc<wire::WatchResponse>>,
    ) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }

    /// Records `host`'s events (from `events`, taken from it) until its
    /// channel closes; a plugin's status carries its log counts from
    /// `logs`.
    pub(crate) async fn record_from(
        &self,
        host: &Host,
        logs: &LogBook,
        mut events: broadcast::Receiver<HostEvent>,
    ) {
        loop {
            match events.recv().await {
                Ok(event) => self.record(event_to_proto(host, logs, &event)),
                // The journal fell behind the host: its watchers are told.
                Err(RecvError::Lagged(missed)) => {
                    self.record(wire::watch_response::Event::Missed(missed));
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// A host event as the wire's.
fn event_to_proto(host: &Host, logs: &LogBook, event: &HostEvent) -> wire::watch_response::Event {
    use wire::watch_response::Event;
    match event {
        HostEvent::Plugin { name, status } => {
            Event::PluginStatus(event_status(host, logs, name, status))
        }
        HostEvent::Dispatch(report) => Event::Dispatch(dispatch_event(report)),
        HostEvent::Reload { plan, error } => Event::Reload(wire::ReloadEvent {
            plan: Some(plan_to_proto(plan)),
            error: error.clone().unwrap_or_default(),
        }),
    }
}

/// A reload that failed before the host saw it: its config could not be
/// read.
pub(crate) fn reload_failed(error: &str) -> wire::watch_response::Event {
    wire::watch_response::Event::Reload(wire::ReloadEvent {
        plan: None,
        error: error.to_owned(),
    })
}

/// True if `event` concerns `plugin`: its status, a dispatch it took part
/// in, a reload that names it, or a count of missed events (which may).
pub(crate) fn concerns(event: &wire::WatchResponse, plugin: &str) -> bool {
    use wire::watch_response::Event;
    match &event.event {
        Some(Event::PluginStatus(status)) => status.name == plugin,
        Some(Event::Dispatch(dispatch)) => dispatch.entries.iter().any(|e| e.plugin == plugin),
        Some(Event::Reload(reload)) => reload.plan.as_ref().is_none_or(|p| plan_names(p, plugin)),
        Some(Event::Missed(_)) | None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missed(n: u64) -> wire::watch_response::Event {
        wire::watch_response::Event::Missed(n)
    }

    fn count(event: &wire::WatchResponse) -> u64 {
        match event.event {
            Some(wire::watch_response::Event::Missed(n)) => n,
            _ => panic!("not a test event: {event:?}"),
        }
    }

    #[test]
    fn the_ring_keeps_the_latest_events_and_a_follower_sees_each_once() {
        let journal = Journal::new();
        for n in 0..(RECENT_EVENTS as u64 + 10) {
            journal.record(missed(n));
        }
        let (recent, mut live) = journal.read_and_follow();
        assert_eq!(recent.len(), RECENT_EVENTS);
        assert_eq!(count(&recent[0]), 10, "the oldest were dropped");
        journal.record(missed(999));
        let next = live.try_recv().expect("the new event");
        assert_eq!(count(&next), 999);
        assert!(live.try_recv().is_err(), "nothing twice");
    }

    #[test]
    fn a_follower_that_falls_behind_learns_how_many_it_missed() {
        let journal = Journal::new();
        let (_, mut live) = journal.read_and_follow();
        for n in 0..(FOLLOW_BUFFERED as u64 + 5) {
            journal.record(missed(n));
        }
        match live.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 5),
            other => panic!("expected a lag, got {other:?}"),
        }
    }

    #[test]
    fn a_plugins_watcher_sees_its_statuses_its_dispatches_and_reloads_naming_it() {
        use wire::watch_response::Event;
        let at = |event| wire::WatchResponse {
            time: None,
            event: Some(event),
        };
        let status = at(Event::PluginStatus(wire::PluginStatus {
            name: "a".into(),
            ..Default::default()
        }));
        assert!(concerns(&status, "a") && !concerns(&status, "b"));
        let dispatch = at(Event::Dispatch(wire::DispatchEvent {
            entries: vec![wire::EntrySummary {
                plugin: "b".into(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        assert!(concerns(&dispatch, "b") && !concerns(&dispatch, "a"));
        let reload = at(Event::Reload(wire::ReloadEvent {
            plan: Some(wire::ReloadPlan {
                added: vec!["c".into()],
                ..Default::default()
            }),
            error: String::new(),
        }));
        assert!(concerns(&reload, "c") && !concerns(&reload, "a"));
        assert!(
            concerns(&at(reload_failed("bad toml")), "a"),
            "a config error concerns all"
        );
    }
}
