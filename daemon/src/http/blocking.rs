//! Reads that may block (the host's locks, `/proc`), run on the blocking
//! pool and bounded twice: each caller waits at most its own time, and at
//! most [`SLOTS`] such reads run at once. A host wedged on a lock leaves
//! every read of it blocked for good; without the second bound each probe
//! and scrape (any client's, as often as it likes) would leave one more
//! thread stuck, up to the whole blocking pool, which the rest of the
//! daemon needs too. With it, a wedge costs [`SLOTS`] threads, and later
//! callers are answered "no answer in time" without starting another.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Blocking reads of the HTTP handlers running at once.
pub(crate) const SLOTS: usize = 4;

/// Why a read gave no value.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// Not done (or not even started, every slot being taken) in time.
    TimedOut,
    /// The read panicked.
    Failed(tokio::task::JoinError),
}

/// The bound on blocking reads, shared by every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Blocking {
    slots: Arc<Semaphore>,
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking::with_slots(SLOTS)
    }
}

impl Blocking {
    /// At most `slots` reads at once.
    pub(crate) fn with_slots(slots: usize) -> Blocking {
        Blocking {
            slots: Arc::new(Semaphore::new(slots)),
        }
    }

    /// `read`'s value, if a slot frees and `read` returns within `within`.
    /// The slot stays taken until `read` returns, even after the caller
    /// gave up on it.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        within: Duration,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Unanswered> {
        let slots = self.slots.clone();
        let answered = tokio::time::timeout(within, async move {
            // The semaphore is never closed.
            let Ok(slot) = slots.acquire_owned().await else {
                return Err(Unanswered::TimedOut);
            };
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                read()
            })
            .await
            .map_err(Unanswered::Failed)
        })
        .await;
        answered.unwrap_or(Err(Unanswered::TimedOut))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    /// A lock the test holds: reads block on it until it opens.
    #[derive(Default)]
    struct Wedge {
        closed: Mutex<bool>,
        opened: Condvar,
        entered: AtomicUsize,
    }

    impl Wedge {
        fn read(&self) -> u32 {
            self.entered.fetch_add(1, Ordering::SeqCst);
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
            7
        }

        fn open(&self) {
            *self.closed.lock().unwrap() = false;
            self.opened.notify_all();
        }
    }

    #[tokio::test]
    async fn a_wedged_read_holds_at_most_its_slots_and_later_callers_get_no_answer() {
        let wedge = Arc::new(Wedge::default());
        *wedge.closed.lock().unwrap() = true;
        let blocking = Blocking::with_slots(2);
        for _ in 0..8 {
            let wedge = wedge.clone();
            let got = blocking
                .run(Duration::from_millis(20), move || wedge.read())
                .await;
            assert!(matches!(got, Err(Unanswered::TimedOut)), "{got:?}");
        }
        // Eight callers gave up; at most two reads ever started.
        assert!(wedge.entered.load(Ordering::SeqCst) <= 2);

        wedge.open();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let w = wedge.clone();
            match blocking.run(Duration::from_secs(1), move || w.read()).await {
                Ok(value) => {
                    assert_eq!(value, 7);
                    break;
                }
                Err(err) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "no answer once the wedge opened: {err:?}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_read_is_a_failure_and_frees_its_slot() {
        let blocking = Blocking::with_slots(1);
        let got = blocking
            .run(Duration::from_secs(10), || -> u32 { panic!("boom") })
            .await;
        assert!(matches!(got, Err(Unanswered::Failed(_))), "{got:?}");
        let got = blocking.run(Duration::from_secs(10), || 1).await;
        assert_eq!(got.unwrap(), 1);
    }
}
