//! The fast path's listener: accepts connections until the plugin stops,
//! each served by its own task, and says when the last one has closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::connection::{self, Shared};
use crate::Plugin;
use crate::server::SocketFile;
use crate::service::{PluginServer, StopRequest};

/// How long to wait before accepting again after `accept` failed (e.g.
/// out of descriptors), rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The fast path being served. Dropping it cancels every connection and
/// call and removes the socket file.
#[derive(Debug)]
pub(crate) struct FastPath {
    /// Accepts connections and owns their tasks.
    accepting: JoinHandle<()>,
    /// Becomes `true` when the listener is closed and every connection
    /// has ended.
    drained: watch::Receiver<bool>,
    /// The bound socket's file.
    socket: Option<SocketFile>,
}

impl FastPath {
    /// Serves `server`'s `Invoke` on `listener` (bound at `socket`) until
    /// `stop` says the plugin is stopping; connections must open with a
    /// HELLO carrying `token`.
    pub(crate) fn start<P: Plugin>(
        listener: UnixListener,
        socket: SocketFile,
        server: Arc<PluginServer<P>>,
        token: &str,
        stop: watch::Receiver<Option<StopRequest>>,
    ) -> FastPath {
        let shared = Arc::new(Shared {
            server,
            token: Arc::from(token),
            stop,
        });
        let (drained_tx, drained) = watch::channel(false);
        let accepting = tokio::spawn(accept(listener, shared, drained_tx));
        FastPath {
            accepting,
            drained,
            socket: Some(socket),
        }
    }

    /// Waits until the listener is closed (the plugin is stopping) and
    /// every connection has answered its calls and closed. Cancel-safe.
    pub(crate) async fn drained(&mut self) {
        // An error means the accepting task is gone: nothing is left either.
        let _ = self.drained.wait_for(|done| *done).await;
    }

    /// Removes the socket file (dropping does too; this names the moment).
    pub(crate) fn remove_socket(&mut self) {
        drop(self.socket.take());
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        // The connections' tasks are in the accepting task's JoinSet: they
        // go with it, and each cancels its calls as it goes.
        self.accepting.abort();
    }
}

/// Accepts until the stop, then waits for the connections to end.
async fn accept<P: Plugin>(
    listener: UnixListener,
    shared: Arc<Shared<P>>,
    drained: watch::Sender<bool>,
) {
    let mut connections = JoinSet::new();
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection::serve(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fast path: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = super::stop_begun(&mut stop) => break,
        }
    }
    // No new connections; those open finish their calls and close.
    drop(listener);
    while connections.join_next().await.is_some() {}
    drained.send_replace(true);
}
