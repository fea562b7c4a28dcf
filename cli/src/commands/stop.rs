//! Stopping plugins while a signal can still cut the stop short: the one
//! rule every command follows once its plugins are stopping. A graceful
//! stop can take each plugin's whole grace and more (a plugin that answers
//! `Shutdown` but never exits, then ignores SIGTERM); a stop request that
//! comes meanwhile kills every remaining process group at once.

use std::future::Future;
use std::time::Duration;

use outboard_host::Host;
use outboard_host::launch::process::signal_group;

use crate::signals::Signals;

/// How long the stop may still take once its plugins were killed: reaping
/// them and removing their runtime directories is quick, but is bounded
/// all the same.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Runs `stop`, the graceful stop of the plugins of `groups`, unless a stop request comes first; then every group gets
/// SIGKILL at once and `stop`, left with nothing to wait for, is given
/// [`AFTER_KILL`] to tidy up. True if a signal cut the stop short.
pub(crate) async fn stop_or_kill(
    stop: impl Future<Output = ()>,
    groups: &Groups<'_>,
    signals: &mut Signals,
) -> bool {
    let mut stop = std::pin::pin!(stop);
    tokio::select! {
        () = &mut stop => return false,
        () = signals.recv() => {}
    }
    say!("outboard: interrupted while plugins stopped; killing them");
    kill_then_stop(stop, groups, signals).await;
    true
}

/// SIGKILL to every group of `groups` at once, then `stop` (a stop of the
/// same plugins, left with nothing to wait for) for at most
/// [`AFTER_KILL`], or until the next signal.
pub(crate) async fn kill_then_stop(
    stop: impl Future<Output = ()>,
    groups: &Groups<'_>,
    signals: &mut Signals,
) {
    kill_groups(&groups.now());
    let mut stop = std::pin::pin!(stop);
    let tidy = async {
        tokio::select! {
            () = &mut stop => {}
            () = signals.recv() => {}
        }
    };
    let _ = tokio::time::timeout(AFTER_KILL, tidy).await;
}

/// SIGKILL to every group in `groups`; one already gone is fine.
fn kill_groups(groups: &[u32]) {
    for &group in groups {
        if let Err(err) = signal_group(group, libc::SIGKILL) {
            tracing::warn!("cannot kill process group {group}: {err}");
        }
    }
}

/// The process groups to kill when a stop is cut short: those of the
/// plugins running when the stop began (read then, since a plugin whose
/// process exited, or was stopped, no longer shows its pid) and, read again
/// at the kill, those started since (a reload left to finish, a restart
/// under way).
#[derive(Debug)]
pub(crate) struct Groups<'h> {
    /// Read when the stop began.
    before: Vec<u32>,
    /// Read again at the kill.
    host: Option<&'h Host>,
}

impl<'h> Groups<'h> {
    /// The groups of `host`'s plugins, now and at the kill.
    pub(crate) fn of(host: &'h Host) -> Groups<'h> {
        Groups {
            before: running(host),
            host: Some(host),
        }
    }

    /// Exactly `groups`: plugins that nothing can restart or add to.
    pub(crate) fn fixed(groups: Vec<u32>) -> Groups<'static> {
        Groups {
            before: groups,
            host: None,
        }
    }

    /// Every group to kill now.
    fn now(&self) -> Vec<u32> {
        let mut all = self.before.clone();
        for group in self.host.map(running).unwrap_or_default() {
            if !all.contains(&group) {
                all.push(group);
            }
        }
        all
    }
}

/// The process groups of `host`'s running plugins (each plugin leads its
/// own).
fn running(host: &Host) -> Vec<u32> {
    host.plugins()
        .iter()
        .filter_map(|p| p.status().pid)
        .collect()
}
