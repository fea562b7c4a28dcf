//! The trait a plugin implements.

use std::future::Future;

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

    /// Releases resources before the process exits, after in-flight calls
    /// have finished or been cancelled at the end of the grace. Keep it
    /// short: the host sends SIGTERM, then SIGKILL, once the grace is over.
    /// The default does nothing.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
