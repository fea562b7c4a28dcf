//! The trait a plugin implements.

use std::future::Future;

use crate::host::Event;
use crate::{Config, Invocation, Manifest, PluginError, Reply};

/// An Outboard plugin. Implement it with `async fn` for the async methods;
/// only [`Plugin::manifest`] and [`Plugin::invoke`] are required.
///
/// The SDK calls `manifest` once at start, `configure` once before the first
/// invocation, `invoke` for every phase the plugin subscribed to (possibly
/// concurrently, hence `&self`: keep mutable state behind a lock), and
/// `shutdown` once when stopping. An `invoke` still running at its deadline
/// is dropped, so it must not rely on running to completion.
pub trait Plugin: Send + Sync + 'static {
    /// What the plugin is and what it subscribes to.
    fn manifest(&self) -> Manifest;

    /// Receives the configuration; return [`PluginError::invalid_config`] to
    /// refuse it. The default accepts anything.
    fn configure(&self, config: Config) -> impl Future<Output = Result<(), PluginError>> + Send {
        let _ = config;
        async { Ok(()) }
    }

    /// Runs one phase and says how the context should change.
    fn invoke(
        &self,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Reply, PluginError>> + Send;

    /// Handles one event the plugin subscribed to with
    /// [`Manifest::subscribe_event`] (PROTOCOL.md §17.6). `Ok` counts as
    /// delivered; an error is retried by the host with backoff and, after
    /// its last attempt, dead-lettered. Delivery is at least once:
    /// deduplicate on [`Event::id`] when it matters.
    ///
    /// The default answers `UNIMPLEMENTED`, so that an event nobody handles
    /// is retried and dead-lettered, never silently counted as delivered.
    fn on_event(&self, event: Event) -> impl Future<Output = Result<(), PluginError>> + Send {
        let message = format!(
            "the plugin subscribes to event {:?} but does not implement Plugin::on_event",
            event.name
        );
        async move { Err(PluginError::unimplemented(message)) }
    }

    /// Releases resources before the process exits, after in-flight calls
    /// have finished or been cancelled at the end of the grace. Keep it
    /// short: the host sends SIGTERM, then SIGKILL, once the grace is over.
    /// The default does nothing.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs one invocation the way the host's call reaches the plugin: an
/// `event:<name>` phase goes to [`Plugin::on_event`] when the manifest
/// subscribes to the event (else `UNIMPLEMENTED`), any other phase to
/// [`Plugin::invoke`]. The server and the test harness both call it.
pub(crate) async fn dispatch<P: Plugin>(
    plugin: &P,
    event_patterns: &[String],
    invocation: Invocation,
) -> Result<Reply, PluginError> {
    let Some(event) = Event::from_invocation(&invocation) else {
        return plugin.invoke(invocation).await;
    };
    let event = event?;
    if !event_patterns
        .iter()
        .any(|p| crate::host::glob_matches(p, &event.name))
    {
        return Err(PluginError::unimplemented(format!(
            "the plugin does not subscribe to event {:?} (its patterns: {event_patterns:?})",
            event.name
        )));
    }
    plugin.on_event(event).await.map(|()| Reply::ok())
}
