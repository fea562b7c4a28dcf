//! The watchdog: `WATCHDOG=1` every half of `WATCHDOG_USEC`, each sent only
//! after a probe of the host answered within that half.
//!
//! The pings come from a task on the daemon's runtime (so a runtime that
//! no longer schedules tasks or fires timers stops them), and each waits
//! for a probe run off the async threads that reads every plugin's status
//! through the host's own locks. A host wedged on a lock leaves its probe
//! unanswered: pings stop, and systemd restarts the daemon once
//! `WatchdogSec` passes. A probe that does not answer is waited for again
//! at the next tick rather than started anew, so a wedge costs one thread,
//! not one per tick.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::Notifier;

/// A check that the host answers; it blocks until it does.
pub type Probe = Arc<dyn Fn() + Send + Sync>;

/// The shortest time between pings, whatever `WATCHDOG_USEC` says: a
/// timeout of a microsecond would otherwise ask for a busy loop.
const FLOOR: Duration = Duration::from_millis(1);

/// How often to ping, from `WATCHDOG_USEC` and `WATCHDOG_PID` as systemd
/// sets them and the daemon's pid `me`: half the timeout, as
/// `sd_watchdog_enabled(3)` advises; `None` if there is no timeout, it is
/// zero or unreadable, or the watchdog is meant for another process (a
/// wrapper that started the daemon).
pub fn interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some((Duration::from_micros(usec) / 2).max(FLOOR))
}

/// Pings `notifier`'s watchdog every `every` while `probe` answers within
/// `every`; runs until dropped (or aborted).
pub async fn run(notifier: Notifier, every: Duration, probe: Probe) {
    let mut ticks = tokio::time::interval(every);
    // After a stall, one ping at once, then the regular beat again.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The probe still waited for, if the last one did not answer.
    let mut pending: Option<JoinHandle<()>> = None;
    loop {
        ticks.tick().await;
        let mut check = pending.take().unwrap_or_else(|| {
            let probe = probe.clone();
            tokio::task::spawn_blocking(move || probe())
        });
        match tokio::time::timeout(every, &mut check).await {
            Ok(Ok(())) => notifier.watchdog_ping(),
            Ok(Err(err)) => {
                tracing::error!("the watchdog's status probe failed ({err}); no ping this time");
            }
            Err(_) => {
                tracing::error!(
                    "the host did not answer the watchdog's status probe within {every:?}; \
                     pings withheld until it does (systemd restarts the daemon when WatchdogSec \
                     passes without one)"
                );
                pending = Some(check);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};

    #[test]
    fn the_interval_is_half_the_timeout_for_this_process_only() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(interval(Some("200000"), None, 7), half);
        assert_eq!(interval(Some("200000"), Some("7"), 7), half);
        assert_eq!(interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(interval(Some("200000"), Some("x"), 7), None);
        assert_eq!(interval(Some("0"), None, 7), None);
        assert_eq!(interval(Some("soon"), None, 7), None);
        assert_eq!(interval(None, Some("7"), 7), None);
        assert_eq!(interval(Some("1"), None, 7), Some(FLOOR));
    }

    /// A host the test can wedge: the probe blocks while the gate is
    /// closed, and counts the probes that came to it.
    #[derive(Default)]
    struct Gate {
        /// (closed, probes that found it closed).
        state: Mutex<(bool, usize)>,
        opened: Condvar,
    }

    impl Gate {
        fn probe(&self) {
            let mut state = self.state.lock().unwrap();
            if state.0 {
                state.1 += 1;
            }
            while state.0 {
                state = self.opened.wait(state).unwrap();
            }
        }

        fn set_closed(&self, closed: bool) {
            self.state.lock().unwrap().0 = closed;
            self.opened.notify_all();
        }

        fn blocked(&self) -> usize {
            self.state.lock().unwrap().1
        }
    }

    /// Waits (in real time, bounded) for the next datagram on `socket`.
    async fn next_ping(socket: &tokio::net::UnixDatagram) -> String {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
            .await
            .expect("a ping")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_wedged_host_stops_the_pings_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(path.as_os_str(), None).unwrap();
        let gate = Arc::new(Gate::default());
        let probed = gate.clone();
        let probe: Probe = Arc::new(move || probed.probe());
        let every = Duration::from_millis(20);
        let task = tokio::spawn(run(notifier, every, probe));
        assert_eq!(next_ping(&socket).await, "WATCHDOG=1\n");
        assert_eq!(next_ping(&socket).await, "WATCHDOG=1\n");

        gate.set_closed(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while gate.blocked() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no probe came");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A ping is sent before the next probe starts: every ping of an
        // answered probe is in the socket by now.
        let mut buf = [0u8; 64];
        while socket.try_recv(&mut buf).is_ok() {}
        // Ten beats of a wedged host: no ping, and no second probe piled
        // on the one that hangs.
        let quiet = tokio::time::timeout(every * 10, socket.recv(&mut buf)).await;
        assert!(quiet.is_err(), "a wedged host still got a ping");
        assert_eq!(
            gate.blocked(),
            1,
            "a new probe was started beside the hung one"
        );

        gate.set_closed(false);
        assert_eq!(next_ping(&socket).await, "WATCHDOG=1\n");
        task.abort();
    }
}
