//! What the daemon tells its service manager (see [`crate::systemd`]):
//! ready once served, reloading and ready again around every applied
//! reload (SIGHUP and the control API's `Reload` alike), stopping when the
//! shutdown begins; and the watchdog, whose every ping waits for a
//! snapshot of every plugin's status read through the host's locks.

use std::sync::Arc;
use std::time::Duration;

use outboard_host::{Host, ReloadPlan};

use super::{Daemon, ReloadFailure, status};
use crate::logs::LogBook;
use crate::systemd::watchdog;

impl Daemon {
    /// Tells the service manager the daemon is ready (`READY=1` with
    /// `status`) and, if it keeps a watchdog for the daemon, starts pinging
    /// it until the shutdown begins. Call once every plugin has started
    /// and the control socket is served.
    pub fn ready(&self, status: &str) {
        let notifier = &self.inner.options.notifier;
        notifier.ready(&format!("ready: {status}"));
        let Some(every) = notifier.watchdog_every() else {
            return;
        };
        let host = self.inner.host.clone();
        let logs = self.inner.options.logs.clone();
        let probe: watchdog::Probe = Arc::new(move || answers(&host, &logs));
        let pings = watchdog::run(notifier.clone(), every, probe);
        let mut closing = self.inner.closing.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                () = pings => {}
                // systemd stops watching once the stop began.
                _ = closing.wait_for(|c| *c) => {}
            }
        });
    }

    /// `RELOADING=1`: an applied reload starts.
    pub(super) fn notify_reloading(&self) {
        let source = &self.inner.options.config_source;
        self.inner
            .options
            .notifier
            .reloading(&format!("reloading the config from {source}"));
    }

    /// `READY=1` again when that reload ended, saying how.
    pub(super) fn notify_reloaded(&self, result: &Result<(ReloadPlan, bool), ReloadFailure>) {
        let plugins = plugins(self.inner.host.plugins().len());
        let status = match result {
            Ok(_) => format!("ready: reload applied; {plugins} under supervision"),
            Err(err) => format!("ready: reload failed, {plugins} run on unchanged: {err}"),
        };
        self.inner.options.notifier.ready(&status);
    }

    /// `STOPPING=1`: the shutdown begins.
    pub(super) fn notify_stopping(&self, drain: Duration) {
        self.inner.options.notifier.stopping(&format!(
            "stopping: no new work; dispatches in flight ({}) get up to {drain:?}, then every \
             plugin stops",
            self.inner.host.in_flight(),
        ));
    }
}

/// The watchdog's probe: every plugin's status as `GetStatus` builds it
/// (supervisor state, manifest, figures, log counts; no `/proc` reads,
/// which would shift `GetStatus`'s CPU sampling window). Returns once the
/// host's locks and the log book's let it through; a wedged host never
/// returns.
fn answers(host: &Host, logs: &LogBook) {
    for plugin in host.plugins() {
        let snapshot = status::status_of(&plugin, &plugin.status(), None, logs);
        std::hint::black_box(snapshot);
    }
}

/// "1 plugin", "2 plugins".
fn plugins(count: usize) -> String {
    format!("{count} plugin{}", if count == 1 { "" } else { "s" })
}
