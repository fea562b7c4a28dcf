//! The process's stop requests: SIGINT and SIGTERM.
//!
//! A command creates one [`Signals`] before it starts anything and hands it
//! (or, for a single stop, [`Signals::first`]) down to what it runs, so no
//! moment is left without a listener: a signal that comes while a plugin is
//! still starting, or between two steps, waits in the listener instead of
//! meeting the default action, which would kill `outboard` without stopping
//! its plugins.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, listened for from the moment this is made (an
/// `async fn` would register nothing until first polled). A signal that
/// arrives while nobody awaits [`Signals::recv`] is kept for the next call.
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGTERM, or `None` if it could not be registered (then its default
    /// action stays).
    term: Option<Signal>,
    /// SIGINT, likewise.
    int: Option<Signal>,
}

impl Signals {
    /// Starts listening; must run inside the tokio runtime.
    pub(crate) fn listen() -> Signals {
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Completes at the next SIGINT or SIGTERM, or at once if one came
    /// since the last call (or since [`Signals::listen`]).
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            () = recv(self.term.as_mut()) => {}
            () = recv(self.int.as_mut()) => {}
        }
    }

    /// The first stop request, for commands that stop once. The listener
    /// exists already, so this future misses nothing before its first poll.
    pub(crate) async fn first(mut self) {
        self.recv().await;
    }
}

/// The next delivery of `signal`; never, if it is not listened for.
async fn recv(signal: Option<&mut Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
