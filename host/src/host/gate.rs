//! The host's gate: it counts the dispatches in flight, so that a shutdown
//! can refuse new ones and wait for the rest, without polling.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts dispatches in flight so that shutdown can wait for them.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// True once the host refuses new dispatches.
    closed: AtomicBool,
    /// Dispatches that entered and have not finished.
    in_flight: AtomicUsize,
    /// Woken whenever the count drops to zero.
    drained: Notify,
}

/// Marks one dispatch in flight while it lives.
pub(super) struct Pass<'g>(&'g Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Gate {
    /// Lets one dispatch in, unless the gate is closed.
    pub(super) fn enter(&self) -> Option<Pass<'_>> {
        // Counted before the check: a shutdown that closes the gate between
        // the two still waits for this dispatch, or sees it refused.
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let pass = Pass(self);
        (!self.is_closed()).then_some(pass)
    }

    /// True once new dispatches are refused.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Dispatches in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Refuses new dispatches from now on.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Waits until no dispatch is in flight.
    pub(super) async fn drained(&self) {
        loop {
            // Registered before the count is read: a drop in between still
            // wakes this wait.
            let drained = self.drained.notified();
            if self.in_flight() == 0 {
                return;
            }
            drained.await;
        }
    }
}
