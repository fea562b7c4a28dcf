//! `outboard up`: the daemon. Every plugin under supervision, served on the
//! control socket (`outboard.control.v1`) until a signal. Each state
//! change is printed as the host tells of it (`Host::events`); nothing is
//! polled.
//!
//! The control socket is claimed before any plugin starts, so a second
//! daemon on the same socket refuses at once (naming the pid that holds
//! it), and served once every plugin has started. SIGHUP reloads the
//! config (logged with the plan, or the error; the daemon goes on either
//! way). SIGINT or SIGTERM: new work is refused, dispatches in flight get
//! up to the drain timeout, the plugins stop dependents first, the socket
//! and its lock are removed, exit 0; a second signal kills the plugins'
//! groups at once (exit 130).
//!
//! With `--http ADDR` (or `[http] listen`), an HTTP listener for
//! `/metrics` and the probes is bound before any plugin starts, said as
//! `outboard: http http://ADDR` with the port it got, and stopped after the
//! plugins.
//!
//! Under systemd (`NOTIFY_SOCKET` set) the service manager is told the same
//! moments: `READY=1` with the `ready:` line, `RELOADING=1` and `READY=1`
//! around each reload, `STOPPING=1` when the stop begins, and watchdog
//! pings if it asks for them (`outboard_daemon::systemd`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use outboard_daemon::control_socket::{Claim, Group};
use outboard_daemon::http::HttpState;
use outboard_daemon::logs::LogBook;
use outboard_daemon::server::{Daemon, Loader, Options, ReloadFailure};
use outboard_daemon::systemd::Notifier;
use outboard_host::{Escaped, HostEvent, ReloadPlan, Status};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{load_config, services, stop};
use crate::args::{Source, UpArgs};
use crate::exit::EXIT_INTERRUPTED;
use crate::logging::log_book;
use crate::render::state::state_line;
use crate::signals::{Signals, Stop};

/// Starts the plugins, serves the control socket and prints their states
/// until the first stop signal; then drains and stops them (exit 0), or
/// kills them on a second signal (exit 130).
pub(crate) async fn run(args: UpArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let config = load_config(&args.source)?;
    let path = outboard_daemon::socket::resolve(args.control_socket.as_deref())?;
    let group = match args.control_group.or(config.daemon.control_group.clone()) {
        Some(name) => Some(Group::lookup(&name).map_err(|why| {
            anyhow::anyhow!("the control group (--control-group or [daemon] control_group): {why}")
        })?),
        None => None,
    };
    let drain = args.drain_timeout.unwrap_or(config.daemon.drain_timeout);
    // Before any plugin starts: a second daemon refuses without starting
    // anything.
    let claim = Claim::take(&path, group)?;
    // Read before any plugin starts; plugins never inherit it.
    let notifier = Notifier::from_env();
    let logs = log_book().unwrap_or_default();
    // Bound before any plugin starts too: a taken port is said at once,
    // and a probe meanwhile hears "starting", not a refused connection.
    let http = Http::start(args.http.or(config.http.listen), &logs).await?;
    let services = services::open(
        args.state.state_dir.as_deref(),
        &config,
        services::scope(&args.source),
    )?;
    say!(
        "outboard: state directory {}",
        services.state_dir().display()
    );
    let host = tokio::select! {
        host = services::start(&config, &services) => Arc::new(host?),
        () = stop_request(&mut signals) => {
            say!("outboard: interrupted");
            return Ok(EXIT_INTERRUPTED);
        }
    };
    if let Some(http) = &http {
        http.state.attach(host.clone());
    }
    let mut options = options(&args.source, logs, notifier);
    options.events = Some(services.events().clone());
    let daemon = Daemon::new(host.clone(), options);
    let served = claim
        .bind()
        .map_err(anyhow::Error::from)
        .and_then(|socket| {
            let server = daemon
                .serve(&socket)
                .with_context(|| format!("cannot serve {}", socket.path().display()))?;
            Ok((socket, server))
        });
    let (socket, server) = match served {
        Ok(served) => served,
        Err(err) => {
            daemon.shutdown(drain).await;
            return Err(err);
        }
    };
    if socket.replaced_stale() {
        say!(
            "outboard: replaced the stale control socket {} (its daemon did not exit cleanly)",
            socket.path().display()
        );
    }
    say!("outboard: control socket {}", socket.path().display());
    let printer = Printer::new(args.json);
    tokio::select! {
        () = follow(&daemon, &printer) => {}
        () = until_stop(&daemon, &mut signals) => {}
    }
    say!(
        "outboard: stopping: no new work; dispatches in flight ({}) get up to {}, then every \
         plugin stops (signal again to stop them at once)",
        host.in_flight(),
        humantime::format_duration(drain)
    );
    signals.ignore_hangup();
    if let Some(http) = &http {
        http.state.close();
    }
    let groups = stop::Groups::of(&host);
    // Event delivery stops first, while the plugins still answer: a
    // delivery cut off by their stop would count as a failed attempt.
    services.events().shutdown().await;
    let killed = stop::stop_or_kill(daemon.shutdown(drain), &groups, &mut signals).await;
    services.shutdown().await;
    server.stop().await;
    if let Some(http) = http {
        // After a second signal, no scrape is waited for either.
        if killed {
            http.abandon().await;
        } else {
            http.stop().await;
        }
    }
    // The socket, then its lock.
    drop(socket);
    Ok(if killed { EXIT_INTERRUPTED } else { 0 })
}

/// The HTTP listener, when one is asked for.
struct Http {
    /// What its handlers read; the host is attached once started.
    state: HttpState,
    /// Tells it to stop.
    stop: oneshot::Sender<()>,
    /// Its accept loop.
    task: JoinHandle<()>,
}

impl Http {
    /// Binds `addr` (if given) and serves on it; says where, with the port
    /// the system picked for port 0. The error names the address.
    async fn start(addr: Option<SocketAddr>, logs: &LogBook) -> anyhow::Result<Option<Http>> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for HTTP on {addr} (--http or [http] listen)")
        })?;
        let bound = listener
            .local_addr()
            .with_context(|| format!("the HTTP listener on {addr}"))?;
        let state = HttpState::new(logs.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(outboard_daemon::http::serve(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        say!("outboard: http http://{bound}");
        Ok(Some(Http { state, stop, task }))
    }

    /// Stops accepting; responses in flight are finished (each within a
    /// bound) before it returns.
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            say!("outboard: the HTTP listener failed: {err}");
        }
    }

    /// Stops at once: the listener and every connection closed, a
    /// response in flight cut off.
    async fn abandon(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// What the daemon serves besides the host: the config source a reload
/// reads again (the same loading as at start), the plugins' log book and
/// the service manager to notify.
fn options(source: &Source, logs: LogBook, notifier: Notifier) -> Options {
    let reread = Source {
        config: source.config.clone(),
        plugin_dir: source.plugin_dir.clone(),
    };
    let loader: Loader = Arc::new(move || load_config(&reread).map_err(|err| format!("{err:#}")));
    Options {
        config_source: describe(source),
        loader,
        logs,
        notifier,
        events: None,
    }
}

/// The config source, for people.
fn describe(source: &Source) -> String {
    let dirs: Vec<String> = source
        .plugin_dir
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    match (&source.config, dirs.is_empty()) {
        (Some(file), true) => file.display().to_string(),
        (Some(file), false) => format!(
            "{} and plugin directories {}",
            file.display(),
            dirs.join(", ")
        ),
        (None, false) => format!("plugin directories {}", dirs.join(", ")),
        (None, true) => "./outboard.toml or OUTBOARD_PLUGIN_DIR".to_owned(),
    }
}

/// The next SIGINT or SIGTERM, before the control socket is served; a
/// SIGHUP meanwhile has nothing to reload yet.
async fn stop_request(signals: &mut Signals) {
    while signals.next().await == Stop::Hangup {
        say!("outboard: SIGHUP while starting: nothing to reload yet; still starting");
    }
}

/// The next SIGINT or SIGTERM. Each SIGHUP before it asks for a reload,
/// run by one worker so that signals are heard meanwhile; SIGHUPs that come
/// while a reload runs are folded into one more reload after it.
async fn until_stop(daemon: &Daemon, signals: &mut Signals) {
    let asked = Arc::new(Notify::new());
    let worker = tokio::spawn(reloads(daemon.clone(), asked.clone()));
    while signals.next().await == Stop::Hangup {
        say!("outboard: SIGHUP: reloading the config");
        asked.notify_one();
    }
    worker.abort();
}

/// Reloads each time `asked` is notified, logging the plan or the error.
async fn reloads(daemon: Daemon, asked: Arc<Notify>) {
    loop {
        asked.notified().await;
        match daemon.reload(false).await {
            Ok((plan, _)) => say!("outboard: reload applied: {}", plan_line(&plan)),
            Err(ReloadFailure::ShuttingDown) => say!("outboard: reload skipped: shutting down"),
            // The failure says that nothing changed, and why; it may quote
            // the config and a plugin, so it reaches the terminal escaped.
            Err(err) => say!("outboard: {}", Escaped::block(&err.to_string())),
        }
    }
}

/// A reload plan on one line: what each plugin gets.
fn plan_line(plan: &ReloadPlan) -> String {
    let mut parts = Vec::new();
    let mut list = |what: &str, names: &[String]| {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    };
    list("added", &plan.added);
    list("removed", &plan.removed);
    let changed: Vec<String> = plan
        .changed
        .iter()
        .map(|c| format!("{} ({})", c.name, c.fields.join(", ")))
        .collect();
    list("changed", &changed);
    list("kept disabled", &plan.disabled);
    list("phases changed", &plan.phases_changed);
    // The unchanged are counted, not named: with many plugins the line
    // would bury what did change.
    let unchanged = format!("{} unchanged", plan.unchanged.len());
    if parts.is_empty() {
        format!("nothing changed ({unchanged})")
    } else {
        parts.push(unchanged);
        parts.join("; ")
    }
}

/// State lines on stdout; if stdout cannot be written, said once and then
/// no more.
struct Printer {
    json: bool,
    failed: std::cell::Cell<bool>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            failed: std::cell::Cell::new(false),
        }
    }

    fn print(&self, name: &str, status: &Status) {
        if self.failed.get() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(err) = state_line(&mut out, name, status, self.json).and_then(|()| out.flush()) {
            // Supervision goes on if nobody reads stdout any more (or the
            // disk is full): said once, then state lines stop.
            self.failed.set(true);
            say!(
                "outboard: cannot print state lines on stdout ({err}); plugins stay under \
                 supervision, state changes are no longer printed"
            );
        }
    }
}

/// Prints every plugin's state, says the host is ready (on stderr and to
/// the service manager), then prints each change as the host tells of it
/// (plugins a reload adds included); never returns.
async fn follow(daemon: &Daemon, printer: &Printer) {
    let host = daemon.host();
    // Subscribed before the first states are read: no change falls between.
    let mut events = host.events();
    let mut last = HashMap::new();
    let show = |name: &str, status: &Status, last: &mut HashMap<String, _>| {
        if last.insert(name.to_owned(), (status.state, status.pid))
            != Some((status.state, status.pid))
        {
            printer.print(name, status);
        }
    };
    for plugin in host.plugins() {
        show(plugin.name(), &plugin.status(), &mut last);
    }
    // The moment a wrapper, a probe or a benchmark can rely on: every
    // plugin has started (Host::start returns only then) and the control
    // socket is served.
    let count = host.plugins().len();
    let supervised = format!(
        "{count} plugin{} under supervision",
        if count == 1 { "" } else { "s" }
    );
    say!(
        "outboard: ready: {supervised} (pid {}); SIGINT or SIGTERM stops {}, SIGHUP reloads",
        std::process::id(),
        if count == 1 { "it" } else { "them" },
    );
    daemon.ready(&supervised);
    loop {
        match events.recv().await {
            Ok(HostEvent::Plugin { name, status }) => show(&name, &status, &mut last),
            Ok(_) => {}
            // Fell behind: the current states are what matter.
            Err(RecvError::Lagged(_)) => {
                for plugin in host.plugins() {
                    show(plugin.name(), &plugin.status(), &mut last);
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use outboard_host::PluginChange;

    #[test]
    fn a_plan_line_names_what_changes_and_counts_the_rest() {
        let plan = ReloadPlan {
            unchanged: vec!["a".into(), "b".into()],
            added: vec!["c".into()],
            changed: vec![PluginChange {
                name: "d".into(),
                fields: vec!["config".into(), "env".into()],
            }],
            ..ReloadPlan::default()
        };
        assert_eq!(
            plan_line(&plan),
            "added c; changed d (config, env); 2 unchanged"
        );
        let quiet = ReloadPlan {
            unchanged: vec!["a".into()],
            ..ReloadPlan::default()
        };
        assert_eq!(plan_line(&quiet), "nothing changed (1 unchanged)");
    }
}
