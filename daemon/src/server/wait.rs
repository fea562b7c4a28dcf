//! Waiting for a plugin an operator restarted or started to settle: ready
//! again after a new start, or down (failed, stopped, disabled) after some
//! change, or the caller's wait ran out. Told by the supervisor's state
//! changes, not polled.

use std::time::Duration;

use outboard_host::{State, Status, Supervisor};
use tokio::sync::broadcast::{self, error::RecvError};

/// How long to wait when the request does not say.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The caller's wait, or the default; bounded so that a huge one cannot
/// overflow a deadline.
pub(crate) fn wait_of(wait: Option<&prost_types::Duration>) -> Duration {
    const MAX_WAIT: Duration = Duration::from_secs(3600);
    match wait {
        Some(d) if d.seconds > 0 || d.nanos > 0 => {
            let secs = u64::try_from(d.seconds).unwrap_or(0);
            let nanos = u32::try_from(d.nanos).unwrap_or(0);
            Duration::new(secs, 0)
                .saturating_add(Duration::from_nanos(u64::from(nanos)))
                .min(MAX_WAIT)
        }
        _ => DEFAULT_WAIT,
    }
}

/// True once `status` ends the wait for a plugin that had made
/// `starts_before` starts; `changed` says whether any state change was seen
/// since the request.
pub(crate) fn settled(status: &Status, starts_before: u32, changed: bool) -> bool {
    match status.state {
        State::Ready => status.starts > starts_before,
        State::Failed | State::Stopped | State::Disabled => changed,
        State::Starting | State::Unhealthy | State::Restarting | State::Stopping => false,
    }
}

/// Waits up to `wait` for `plugin` to settle (see [`settled`]); `changes`
/// was subscribed before the request was made, so no change is missed.
/// Returns the last status seen.
pub(crate) async fn until_settled(
    plugin: &Supervisor,
    mut changes: broadcast::Receiver<Status>,
    starts_before: u32,
    wait: Duration,
) -> Status {
    let mut status = plugin.status();
    let mut changed = false;
    let deadline = tokio::time::Instant::now() + wait;
    while !settled(&status, starts_before, changed) {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Err(_) => break,
            Ok(Ok(next)) => {
                status = next;
                changed = true;
            }
            // Missed some: the current status is what matters.
            Ok(Err(RecvError::Lagged(_))) => {
                status = plugin.status();
                changed = true;
            }
            Ok(Err(RecvError::Closed)) => {
                status = plugin.status();
                break;
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: State, starts: u32) -> Status {
        Status {
            state,
            pid: None,
            starts,
            reason: None,
            stderr: Vec::new(),
            since: None,
            optional: false,
            invoke_path: None,
        }
    }

    #[test]
    fn ready_counts_only_after_a_new_start_and_down_only_after_a_change() {
        assert!(!settled(&status(State::Ready, 1), 1, false));
        assert!(settled(&status(State::Ready, 2), 1, true));
        assert!(!settled(&status(State::Failed, 3), 3, false));
        assert!(settled(&status(State::Failed, 3), 3, true));
        assert!(!settled(&status(State::Restarting, 2), 1, true));
    }

    #[test]
    fn the_wait_defaults_and_is_bounded() {
        assert_eq!(wait_of(None), DEFAULT_WAIT);
        let zero = prost_types::Duration::default();
        assert_eq!(wait_of(Some(&zero)), DEFAULT_WAIT);
        let huge = prost_types::Duration {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(wait_of(Some(&huge)), Duration::from_secs(3600));
        let short = prost_types::Duration {
            seconds: 1,
            nanos: 500_000_000,
        };
        assert_eq!(wait_of(Some(&short)), Duration::from_millis(1500));
    }
}
