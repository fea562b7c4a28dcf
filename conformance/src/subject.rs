//! The plugin under test once it has shaken hands: the launch, its two
//! connections and the bound of the setup calls.

use std::time::Duration;

use outboard_host::launch::{Clients, Launched};
use outboard_host::{Error, ErrorKind};
use tonic::transport::Channel;

/// The launched plugin the checks after the handshake call.
#[derive(Debug)]
pub(crate) struct Subject<'a> {
    /// The plugin, launched as a host launches it.
    pub(crate) launched: &'a Launched,
    /// Its services through the host's authenticated client.
    pub(crate) clients: Clients,
    /// A plain channel to its socket: no token on its calls.
    pub(crate) raw: Channel,
    /// The bound of the setup calls (`Describe`, `Configure`, health).
    pub(crate) timeout: Duration,
}

impl<'a> Subject<'a> {
    /// Opens both connections to `launched`, each within `timeout`.
    pub(crate) async fn connect(
        launched: &'a Launched,
        timeout: Duration,
    ) -> Result<Subject<'a>, String> {
        // Through the launch, whose checks know the user the plugin runs
        // as (`sandbox.user`), not the host's.
        let raw = launched
            .dial(timeout)
            .await
            .map_err(|e| format!("cannot connect to the socket: {e}"))?;
        let clients = launched.connect(timeout).await.map_err(|e| match e.kind {
            ErrorKind::Connect { reason, .. } => format!("cannot connect: {reason}"),
            other => format!("cannot connect: {other}"),
        })?;
        Ok(Subject {
            launched,
            clients,
            raw,
            timeout,
        })
    }
}

/// A failed launch as a check's detail: what the host could not do, or
/// what the plugin did wrong.
pub(crate) fn launch_failure(error: &Error) -> String {
    match &error.kind {
        ErrorKind::RuntimeDir(_) | ErrorKind::Spawn { .. } => error.kind.to_string(),
        plugin_did => format!("the plugin {plugin_did}"),
    }
}
