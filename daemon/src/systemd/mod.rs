//! Telling systemd (or any service manager speaking `sd_notify(3)`) how
//! the daemon is doing, when `NOTIFY_SOCKET` says where to.
//!
//! - `READY=1` once every plugin has started and the control socket is
//!   served, and again when a reload ends (applied or not);
//! - `RELOADING=1` (with `MONOTONIC_USEC=`) when a reload starts;
//! - `STOPPING=1` when the graceful stop begins; no `READY=1` follows it,
//!   even from a reload that was under way;
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC`, while the host answers.
//!
//! Without `NOTIFY_SOCKET` every call does nothing. A notification that
//! cannot be sent is logged once (the first failure) and never stops the
//! daemon: systemd's own timeouts then say what went wrong.
//!
//! The variables are read once, at start; plugins never see them (the
//! launcher passes plugins an allowlisted environment only).
//!
//! # Layout
//!
//! - this file: [`Notifier`].
//! - `message`: the datagrams, built without I/O.
//! - `address`: `NOTIFY_SOCKET` resolved (paths and `@abstract` names) and
//!   a datagram sent there without blocking.
//! - [`watchdog`]: the ping loop and its interval.

mod address;
mod message;
pub mod watchdog;

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use address::Address;

/// Where the service manager listens, or nowhere. Cheap to clone; every
/// clone shares the "logged once" and "stopping" marks.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `None` when `NOTIFY_SOCKET` was not set (or not usable).
    target: Option<Arc<Target>>,
}

/// A service manager to notify.
#[derive(Debug)]
struct Target {
    /// Its socket.
    address: Address,
    /// How often to ping its watchdog, if it keeps one for us.
    watchdog: Option<Duration>,
    /// True once a failure was logged: later ones are not.
    complained: AtomicBool,
    /// True once `STOPPING=1` was sent: `READY=1` is not sent any more.
    /// A lock, held while either is sent, so that a `READY=1` that found
    /// it false cannot reach the manager after the `STOPPING=1` (a reload
    /// ending on another thread as the stop begins).
    stopping: Mutex<bool>,
}

impl Notifier {
    /// The service manager named by the environment: `NOTIFY_SOCKET`, and
    /// `WATCHDOG_USEC` with `WATCHDOG_PID` for the watchdog. A socket
    /// address that cannot be used is logged and notifies nothing.
    pub fn from_env() -> Notifier {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        let var = |name| std::env::var(name).ok();
        let watchdog = watchdog::interval(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Notifier::to(&socket, watchdog).unwrap_or_else(|err| {
            tracing::warn!("systemd will not be notified: {err}");
            Notifier::default()
        })
    }

    /// A notifier for the socket `socket` (`/path` or `@abstract`), pinging
    /// a watchdog every `watchdog` if given.
    pub fn to(socket: &OsStr, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let address = Address::parse(socket)?;
        Ok(Notifier {
            target: Some(Arc::new(Target {
                address,
                watchdog,
                complained: AtomicBool::new(false),
                stopping: Mutex::new(false),
            })),
        })
    }

    /// True if a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the watchdog wants a ping (half its timeout), if it does.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.target.as_ref().and_then(|t| t.watchdog)
    }

    /// `READY=1` with `status`: startup, or a reload, is finished. Not sent
    /// once the stop began.
    pub fn ready(&self, status: &str) {
        if let Some(target) = &self.target {
            let stopping = lock(&target.stopping);
            if !*stopping {
                self.send(&message::ready(status, std::process::id()));
            }
        }
    }

    /// `RELOADING=1` with `status`: a reload starts; [`Notifier::ready`]
    /// must follow when it ends, whatever its result.
    pub fn reloading(&self, status: &str) {
        if self.target.is_none() {
            return;
        }
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(sd_notify::NotifyState::MonotonicUsec(now)) => {
                self.send(&message::reloading(status, now));
            }
            Ok(_) => {}
            Err(err) => self.complain(&format!("cannot read the monotonic clock: {err}")),
        }
    }

    /// `STOPPING=1` with `status`: the graceful stop began.
    pub fn stopping(&self, status: &str) {
        if let Some(target) = &self.target {
            let mut stopping = lock(&target.stopping);
            *stopping = true;
            self.send(&message::stopping(status));
        }
    }

    /// `WATCHDOG=1`.
    fn watchdog_ping(&self) {
        self.send(&message::watchdog());
    }

    /// Sends `message`, logging the first failure.
    fn send(&self, message: &str) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(err) = target.address.send(message) {
            let what = message.lines().next().unwrap_or_default();
            self.complain(&format!(
                "cannot send {what} to NOTIFY_SOCKET {}: {err}",
                target.address.shown()
            ));
        }
    }

    /// Logs `why` if nothing was logged before.
    fn complain(&self, why: &str) {
        if let Some(target) = &self.target
            && !target.complained.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                "systemd notification failed: {why} (the daemon runs on; later failures are \
                 not logged)"
            );
        }
    }
}

/// `mutex` locked; a poisoned one still holds a plain flag.
fn lock(mutex: &Mutex<bool>) -> MutexGuard<'_, bool> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// A manager's socket in a temporary directory, and a notifier to it.
    fn manager() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        let notifier = Notifier::to(path.as_os_str(), None).unwrap();
        (dir, socket, notifier)
    }

    /// Every datagram waiting on `socket`, first line of each.
    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            out.push(text.lines().next().unwrap_or_default().to_owned());
        }
        out
    }

    #[test]
    fn a_reload_is_bracketed_and_nothing_is_ready_after_stopping() {
        let (_dir, socket, notifier) = manager();
        notifier.ready("ready");
        notifier.reloading("reloading");
        notifier.stopping("stopping");
        // The reload that was under way ends after the stop began.
        notifier.ready("reload applied");
        assert_eq!(received(&socket), ["READY=1", "RELOADING=1", "STOPPING=1"]);
    }

    /// One race: `ready` called over and over on another thread while
    /// `stopping` is sent; what the manager got, in order, or `None` if
    /// its queue was full when `STOPPING=1` came (sends never wait).
    fn race_ready_against_stopping() -> Option<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(path.as_os_str(), None).unwrap();
        let (first_ready, readies) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let first = text.lines().next().unwrap_or_default().to_owned();
                if first == "DONE" {
                    break;
                }
                if first == "READY=1" {
                    let _ = first_ready.send(());
                }
                lines.push(first);
            }
            lines
        });
        let stopped = Arc::new(AtomicBool::new(false));
        let reloads = {
            let (notifier, stopped) = (notifier.clone(), stopped.clone());
            std::thread::spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    notifier.ready("reload applied");
                }
                notifier.ready("reload applied");
            })
        };
        // The stop begins while the READYs flow.
        readies
            .recv_timeout(Duration::from_secs(10))
            .expect("a first READY=1");
        notifier.stopping("stopping");
        stopped.store(true, Ordering::SeqCst);
        reloads.join().unwrap();
        // Blocking, unlike the notifier's: the end marker always arrives.
        let done = UnixDatagram::unbound().unwrap();
        done.send_to(b"DONE\n", &path).unwrap();
        let lines = reader.join().unwrap();
        lines.iter().any(|l| l == "STOPPING=1").then_some(lines)
    }

    #[test]
    fn a_ready_racing_the_stop_never_reaches_the_manager_after_it() {
        let mut seen = 0;
        for _ in 0..20 {
            let Some(lines) = race_ready_against_stopping() else {
                continue;
            };
            seen += 1;
            let stop = lines.iter().position(|l| l == "STOPPING=1").unwrap();
            assert!(
                lines[stop + 1..].iter().all(|l| l != "READY=1"),
                "READY=1 after STOPPING=1: {:?}",
                &lines[stop..]
            );
        }
        assert!(seen > 0, "STOPPING=1 never reached the manager");
    }

    #[test]
    fn reloading_carries_a_monotonic_reading() {
        let (_dir, socket, notifier) = manager();
        notifier.reloading("reloading");
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        let usec: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .expect("MONOTONIC_USEC")
            .parse()
            .unwrap();
        assert!(usec > 0);
    }

    #[test]
    fn a_failure_is_harmless_and_a_disabled_notifier_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Notifier::to(dir.path().join("gone").as_os_str(), None).unwrap();
        gone.ready("ready");
        gone.stopping("stopping");
        assert!(
            gone.target
                .as_ref()
                .unwrap()
                .complained
                .load(Ordering::SeqCst)
        );
        let off = Notifier::default();
        assert!(!off.is_enabled());
        off.ready("ready");
        assert!(off.watchdog_every().is_none());
    }
}
