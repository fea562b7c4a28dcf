//! `outboard up`: every plugin under supervision until a signal. Each
//! supervisor tells of its state changes as they happen
//! (`Supervisor::subscribe`); nothing is polled.

use std::collections::HashMap;
use std::io::Write;

use outboard_host::{Host, Status};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{load_config, stop};
use crate::args::UpArgs;
use crate::exit::EXIT_INTERRUPTED;
use crate::render::state::state_line;
use crate::signals::{Signals, Stop};

/// Starts the plugins and prints their states until the first signal; then
/// stops them the graceful way (exit 0), or at once on a second signal
/// (exit 130).
pub(crate) async fn run(args: UpArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let config = load_config(&args.source)?;
    let host = tokio::select! {
        host = Host::start(&config) => host?,
        () = stop_request(&mut signals) => {
            say!("outboard: interrupted");
            return Ok(EXIT_INTERRUPTED);
        }
    };
    let failed = std::cell::Cell::new(false);
    let print = |name: &str, status: &Status| {
        if failed.get() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(err) = state_line(&mut out, name, status, args.json).and_then(|()| out.flush()) {
            // Supervision goes on if nobody reads stdout any more (or the
            // disk is full): said once, then state lines stop.
            failed.set(true);
            say!(
                "outboard: cannot print state lines on stdout ({err}); plugins stay under \
                 supervision, state changes are no longer printed"
            );
        }
    };
    tokio::select! {
        () = follow(&host, print) => {}
        () = stop_request(&mut signals) => {}
    }
    say!("outboard: stopping every plugin (signal again to stop them at once)");
    let groups = stop::groups_of(&host);
    if stop::stop_or_kill(host.shutdown(), &groups, &mut signals).await {
        Ok(EXIT_INTERRUPTED)
    } else {
        Ok(0)
    }
}

/// The next SIGINT or SIGTERM. SIGHUP will ask for a reload; until reload
/// exists it is logged and `up` goes on as it was.
async fn stop_request(signals: &mut Signals) {
    while signals.next().await == Stop::Hangup {
        say!("outboard: SIGHUP: reload is not implemented yet; still running");
    }
}

/// Prints every plugin's state, says the host is ready, then prints each
/// change as it happens; never returns.
async fn follow(host: &Host, print: impl Fn(&str, &Status)) {
    // Subscribed before the first states are read: no change falls between.
    let mut changes = subscribe_all(host);
    let mut last = HashMap::new();
    for plugin in host.plugins() {
        let status = plugin.status();
        print(plugin.name(), &status);
        last.insert(plugin.name().to_owned(), (status.state, status.pid));
    }
    // The moment a wrapper, a probe or a benchmark can rely on: every
    // plugin has started (Host::start returns only then).
    let count = host.plugins().len();
    say!(
        "outboard: ready: {count} plugin{} under supervision (pid {}); SIGINT or SIGTERM stops them",
        if count == 1 { "" } else { "s" },
        std::process::id()
    );
    while let Some((name, status)) = changes.recv().await {
        if last.insert(name.clone(), (status.state, status.pid)) != Some((status.state, status.pid))
        {
            print(&name, &status);
        }
    }
    std::future::pending::<()>().await;
}

/// Every plugin's state changes, named, on one channel.
fn subscribe_all(host: &Host) -> mpsc::UnboundedReceiver<(String, Status)> {
    let (changes_tx, changes) = mpsc::unbounded_channel();
    for plugin in host.plugins() {
        let mut sub = plugin.subscribe();
        let name = plugin.name().to_owned();
        let tx = changes_tx.clone();
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(status) => {
                        if tx.send((name.clone(), status)).is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    changes
}
