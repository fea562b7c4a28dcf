//! The process's stop requests: SIGINT, SIGTERM and SIGHUP; and SIGUSR1
//! and SIGUSR2, which are logged and ignored.
//!
//! A command creates one [`Signals`] before it starts anything and hands it
//! (or, for a single stop, [`Signals::first`]) down to what it runs, so no
//! moment is left without a listener: a signal that comes while a plugin is
//! still starting, or between two steps, waits in the listener instead of
//! meeting the default action, which would kill `outboard` without stopping
//! its plugins.
//!
//! SIGHUP (the terminal went away) stops every command like SIGINT, with
//! the same status, 130; only `outboard up` takes it differently: it
//! reloads the config and goes on. SIGUSR1 and
//! SIGUSR2 mean nothing to Outboard yet: listened for, so that their
//! default action cannot kill the host without an orderly stop.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Which stop request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP.
    Hangup,
}

/// SIGINT, SIGTERM and SIGHUP, listened for from the moment this is made (an
/// `async fn` would register nothing until first polled). A signal that
/// arrives while nobody awaits [`Signals::recv`] is kept for the next call.
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGTERM, or `None` if it could not be registered (then its default
    /// action stays).
    term: Option<Signal>,
    /// SIGINT, likewise.
    int: Option<Signal>,
    /// SIGHUP, likewise.
    hup: Option<Signal>,
}

impl Signals {
    /// Starts listening; must run inside the tokio runtime.
    pub(crate) fn listen() -> Signals {
        ignore_user_signals();
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Completes at the next SIGINT, SIGTERM or SIGHUP, or at once if one
    /// came since the last call (or since [`Signals::listen`]).
    pub(crate) async fn recv(&mut self) {
        self.next().await;
    }

    /// From now on SIGHUP is no request at all: a daemon that is stopping
    /// has nothing to reload, and a hangup (logrotate, a reload racing the
    /// stop, one already pending) must not count as a second stop request
    /// that kills the plugins. Tokio keeps its handler, so the signal is
    /// still caught, then dropped.
    pub(crate) fn ignore_hangup(&mut self) {
        self.hup = None;
    }

    /// Like [`Signals::recv`], telling which request it was.
    pub(crate) async fn next(&mut self) -> Stop {
        tokio::select! {
            () = recv(self.term.as_mut()) => Stop::Stop,
            () = recv(self.int.as_mut()) => Stop::Stop,
            () = recv(self.hup.as_mut()) => Stop::Hangup,
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

/// Logs and otherwise ignores SIGUSR1 and SIGUSR2 for the life of the
/// process (their default action would kill it); listened for from now on.
fn ignore_user_signals() {
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        if let Ok(mut listener) = signal(kind) {
            tokio::spawn(async move {
                while listener.recv().await.is_some() {
                    eprintln!("outboard: {name} ignored");
                }
            });
        }
    }
}
