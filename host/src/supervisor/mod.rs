//! A supervisor per plugin: it keeps the plugin ready, restarts it when it
//! dies or stops answering its health checks, and quarantines it when it
//! keeps failing.
//!
//! States: starting → ready → (unhealthy) → restarting → ready, or →
//! failed (quarantined, with the reason and the last stderr lines, until
//! [`Supervisor::restart`] is called) → stopping → stopped. From any state
//! but stopped, an operator's disable stops the plugin and holds it
//! disabled until it is enabled again (the host does both, see
//! `crate::host`); a restart does not bring a disabled plugin back.
//!
//! - **Exit** is noticed the moment the process exits, not at the next
//!   health check. Calls in flight fail at once (see `crate::instance`).
//! - **Health**: checked every `health_interval`; `health_misses`
//!   consecutive misses (an error, a timeout or `NOT_SERVING`) and the
//!   plugin is killed and restarted.
//! - **Backoff**: the first restart after a stable run is immediate, then
//!   `backoff_initial` doubling up to `backoff_max`, each with jitter
//!   (between half and all of it). A plugin up for `backoff_reset_after`
//!   starts afresh.
//! - **Crash loop**: `crash_loop_starts` starts within `crash_loop_window`
//!   and the next failure quarantines the plugin instead of starting it
//!   again.
//! - **Callers** ask [`Supervisor::ready`] for the plugin; while it is
//!   starting or restarting they wait, up to their own deadline.
//! - **Manifest**: each start's manifest replaces the last
//!   ([`Supervisor::manifest`]), so a binary upgraded in place and
//!   restarted is described as it now is; the host rebuilds its routes
//!   when the routes it depends on differ.
//!
//! # Layout
//!
//! - this file: [`Supervisor`], the handle callers hold, and its [`Status`].
//! - `instance`: the seam, [`Launcher`] and [`Instance`], and the real pair
//!   over a plugin process.
//! - `policy`: the decisions (backoff, stable runs, the crash-loop window,
//!   health misses, restart policies) as pure functions.
//! - `run`: the supervising task, a thin loop around the policy.
//!
//! Its figures (calls, restarts by reason, the latest start's duration)
//! live in a [`Stats`] the host keeps by plugin name (see
//! `crate::figures`), handed to every supervisor of that name.
//! - `fake` (tests, or the `test-util` feature): an in-memory launcher.

#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
pub mod fake;
mod health;
mod instance;
mod policy;
mod run;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::PluginSpec;
use crate::error::CallError;
use crate::figures::Stats;
use crate::instance::Plugin;
use crate::manifest::Manifest;
use crate::sandbox::Wall;

pub use health::HealthCheck;
pub use instance::{Instance, Launcher, PluginLauncher};

/// Where a supervised plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A start is under way (the first is before supervision begins).
    Starting,
    /// Running and answering; calls go to it.
    Ready,
    /// It missed too many health checks and is being killed.
    Unhealthy,
    /// It was lost and waits out its backoff before the next start.
    Restarting,
    /// Down until [`Supervisor::restart`]: quarantined after a crash loop,
    /// or an exit its restart policy does not restart.
    Failed,
    /// Being stopped for good.
    Stopping,
    /// Stopped for good.
    Stopped,
    /// Stopped by an operator, and kept stopped (across reloads too) until
    /// enabled again.
    Disabled,
}

/// A supervised plugin's status, as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Its state.
    pub state: State,
    /// The running process, when ready.
    pub pid: Option<u32>,
    /// Starts so far, the first included.
    pub starts: u32,
    /// Why it last failed, or why it is quarantined.
    pub reason: Option<String>,
    /// Its last stderr lines when it last failed.
    pub stderr: Vec<String>,
    /// When the running instance became ready; `None` when none runs.
    /// Serialized as RFC 3339 (UTC, milliseconds), like every time the
    /// host and the CLI print.
    #[serde(serialize_with = "rfc3339_opt")]
    pub since: Option<SystemTime>,
    /// True if the plugin is optional (`optional = true`): a readiness
    /// check does not wait for it.
    pub optional: bool,
    /// How `Invoke` reaches the running instance: `"fastpath"` (docs/PROTOCOL.md §18)
    /// or `"grpc"`; `None` when none runs.
    pub invoke_path: Option<&'static str>,
}

/// `Some(time)` as an RFC 3339 string, `None` as null.
fn rfc3339_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
        None => s.serialize_none(),
    }
}

/// What the supervisor publishes: the status and the running instance.
/// Only the supervisor and [`Supervisor::ready`] hold the instance, so
/// nothing outside keeps a stopped plugin's directory alive.
#[derive(Debug, Clone)]
struct Current {
    /// Where it is.
    state: State,
    /// The ready instance, if any.
    plugin: Option<Arc<dyn Instance>>,
    /// The process being stopped, while stopping (it is no longer the
    /// ready instance, but is still there).
    stopping: Option<u32>,
    /// Starts so far, the first included.
    starts: u32,
    /// Why it last failed.
    reason: Option<String>,
    /// Its last stderr lines when it last failed.
    stderr: Vec<String>,
    /// The latest start's manifest (the first start's until another
    /// succeeds).
    manifest: Arc<Manifest>,
    /// The walls around the latest start's process (none before a start).
    sandbox: Arc<[Wall]>,
    /// When the ready instance became ready.
    since: Option<SystemTime>,
}

/// What a caller can ask of a supervisor.
#[derive(Debug)]
enum Command {
    /// Restart now; for a quarantined plugin, start afresh.
    Restart,
    /// Stop the plugin and the supervisor; answer when done.
    Stop(oneshot::Sender<()>),
    /// Stop the plugin and hold it disabled; answer once it is stopped.
    Disable(oneshot::Sender<()>),
    /// Start a disabled plugin again (ignored otherwise).
    Enable,
}

/// One plugin under supervision.
#[derive(Debug)]
pub struct Supervisor {
    name: Arc<str>,
    spec: PluginSpec,
    status: watch::Receiver<Current>,
    /// Every state change, for [`Supervisor::subscribe`].
    changes: broadcast::Sender<Status>,
    commands: mpsc::UnboundedSender<Command>,
    /// Set once its stop is coming (the host is shutting down): a lost
    /// process is then not restarted, only reported, until the stop.
    ending: Arc<AtomicBool>,
    /// Its figures, shared with every supervisor of the same name.
    stats: Arc<Stats>,
    /// True if it is optional; a reload may change it without a restart.
    optional: Arc<AtomicBool>,
    /// Its latest health check, written by the supervising task.
    last_check: health::LastCheck,
}

/// State changes a subscriber may fall behind by before it misses some
/// (it then learns how many it missed).
const CHANGES_BUFFERED: usize = 64;

impl Supervisor {
    /// Takes over a plugin that completed its first start; restarts go
    /// through [`Plugin::start`].
    pub fn adopt(plugin: Plugin) -> Arc<Supervisor> {
        Supervisor::supervise(Arc::new(plugin), Arc::new(PluginLauncher::default()))
    }

    /// Takes over `instance`, which completed its first start; restarts go
    /// through `launcher`.
    pub fn supervise(instance: Arc<dyn Instance>, launcher: Arc<dyn Launcher>) -> Arc<Supervisor> {
        Supervisor::counted(instance, launcher, Arc::default())
    }

    /// [`Supervisor::supervise`], counting into `stats` (the host's figures
    /// for this plugin name, which outlive this supervisor).
    pub(crate) fn counted(
        instance: Arc<dyn Instance>,
        launcher: Arc<dyn Launcher>,
        stats: Arc<Stats>,
    ) -> Arc<Supervisor> {
        stats.started_in(instance.ready_after());
        let manifest = Arc::new(instance.manifest().clone());
        let sandbox = Arc::from(instance.sandbox());
        let spec = instance.spec().clone();
        let current = Current {
            state: State::Ready,
            plugin: Some(instance.clone()),
            stopping: None,
            starts: 1,
            reason: None,
            stderr: Vec::new(),
            manifest,
            sandbox,
            since: Some(SystemTime::now()),
        };
        Supervisor::spawn(
            instance.name().into(),
            spec,
            current,
            (launcher, stats),
            run::Begin::Ready(instance),
        )
    }

    /// A supervisor for an optional plugin whose first start failed with
    /// `why`: it shows as restarting (or, once its crash loop is reached,
    /// failed) and is started again as its policy says. Until a start
    /// succeeds its manifest is [`Manifest::unknown`]: no phase is routed
    /// to it.
    pub(crate) fn unstarted(
        spec: PluginSpec,
        why: String,
        launcher: Arc<dyn Launcher>,
        stats: Arc<Stats>,
    ) -> Arc<Supervisor> {
        let current = Current {
            starts: 1,
            reason: Some(why.clone()),
            ..Current::idle(State::Restarting, Arc::new(Manifest::unknown(&spec.name)))
        };
        Supervisor::spawn(
            spec.name.as_str().into(),
            spec,
            current,
            (launcher, stats),
            run::Begin::Failed(why),
        )
    }

    /// A supervisor for a plugin an operator disabled, to run from `spec`
    /// once enabled; `manifest` is the last one it was known by.
    pub(crate) fn disabled(
        spec: PluginSpec,
        manifest: Arc<Manifest>,
        launcher: Arc<dyn Launcher>,
        stats: Arc<Stats>,
    ) -> Arc<Supervisor> {
        let current = Current::idle(State::Disabled, manifest);
        Supervisor::spawn(
            spec.name.as_str().into(),
            spec,
            current,
            (launcher, stats),
            run::Begin::Disabled,
        )
    }

    /// Publishes `current` and starts the supervising task of the plugin
    /// `name`, from `first`; it restarts through the launcher and counts
    /// into the stats.
    fn spawn(
        name: Arc<str>,
        spec: PluginSpec,
        current: Current,
        (launcher, stats): (Arc<dyn Launcher>, Arc<Stats>),
        first: run::Begin,
    ) -> Arc<Supervisor> {
        let (status_tx, status) = watch::channel(current);
        let (commands, inbox) = mpsc::unbounded_channel();
        let (changes, _) = broadcast::channel(CHANGES_BUFFERED);
        let ending = Arc::new(AtomicBool::new(false));
        let optional = Arc::new(AtomicBool::new(spec.optional));
        let last_check = health::LastCheck::default();
        let run = run::Run {
            stats: stats.clone(),
            optional: optional.clone(),
            last_check: last_check.clone(),
            ending: ending.clone(),
            name: name.clone(),
            spec: spec.clone(),
            launcher,
            status: status_tx,
            changes: changes.clone(),
            inbox,
            policy: policy::Policy::new(spec.supervision, Instant::now()),
        };
        tokio::spawn(run.supervise(first));
        Arc::new(Supervisor {
            name,
            spec,
            status,
            changes,
            commands,
            ending,
            stats,
            optional,
            last_check,
        })
    }

    /// Every state change from now on, as it happens (no polling): the new
    /// status each time the state or the process changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Status> {
        self.changes.subscribe()
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest start's manifest: after a restart of a binary upgraded
    /// in place, the new binary's.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.status.borrow().manifest.clone()
    }

    /// The walls around its latest start's process, as the sandbox's plan
    /// describes them; none before a start succeeded. Like the manifest,
    /// they stay those of the latest start while it restarts.
    pub fn sandbox(&self) -> Arc<[Wall]> {
        self.status.borrow().sandbox.clone()
    }

    /// The spec it runs from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Its figures: calls by outcome and the latency of the recent ones,
    /// restarts, the latest start. Under a host, kept by plugin name: they
    /// count from the host's start, across restarts and reloads.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The latest health check of its running instance; `None` before the
    /// first, which comes one `health_interval` after a start, and once
    /// the instance is gone (exited, killed, stopped).
    pub fn last_health_check(&self) -> Option<HealthCheck> {
        self.last_check.get()
    }

    /// True if it is optional: a readiness check does not wait for it. Its
    /// latest config's value (a reload changes it without a restart), which
    /// [`Supervisor::spec`] may predate.
    pub fn optional(&self) -> bool {
        self.optional.load(Ordering::Relaxed)
    }

    /// Takes the latest config's `optional`: nothing else changes.
    pub(crate) fn set_optional(&self, optional: bool) {
        self.optional.store(optional, Ordering::Relaxed);
    }

    /// Its current status.
    pub fn status(&self) -> Status {
        self.status.borrow().status(self.optional())
    }

    /// Its current state.
    pub fn state(&self) -> State {
        self.status.borrow().state
    }

    /// The ready plugin, waiting while it starts or restarts, up to
    /// `deadline`.
    pub async fn ready(&self, deadline: Instant) -> Result<Arc<dyn Instance>, CallError> {
        // Fast path: no waiting, one read of the status. An instance whose
        // process has exited is not ready, even before the supervisor has
        // caught up with it.
        {
            let status = self.status.borrow();
            if let Some(plugin) = &status.plugin
                && !plugin.has_exited()
            {
                return Ok(plugin.clone());
            }
        }
        let mut status = self.status.clone();
        let waited = tokio::time::timeout_at(
            deadline,
            // An instance that has exited does not count: the supervisor
            // replaces it as soon as it notices, which wakes this up again.
            status.wait_for(|s| {
                s.plugin.as_ref().is_some_and(|p| !p.has_exited())
                    || matches!(
                        s.state,
                        State::Failed | State::Stopping | State::Stopped | State::Disabled
                    )
            }),
        )
        .await;
        let current = self.status.borrow().clone();
        let live = current.plugin.filter(|p| !p.has_exited());
        match (waited, live) {
            (_, Some(plugin)) => Ok(plugin),
            (Err(_), None) => Err(CallError::NotReady(format!(
                "still {} at the call's deadline{}",
                state_word(current.state),
                current
                    .reason
                    .map(|r| format!(" (last failure: {r})"))
                    .unwrap_or_default()
            ))),
            (Ok(_), None) => Err(CallError::NotReady(format!(
                "{}{}",
                state_word(current.state),
                current.reason.map(|r| format!(": {r}")).unwrap_or_default()
            ))),
        }
    }

    /// Asks for a restart: at once for a running plugin, afresh (crash-loop
    /// count cleared) for a quarantined one.
    pub fn restart(&self) {
        let _ = self.commands.send(Command::Restart);
    }

    /// Says that a stop is coming (the host is shutting down, and may kill
    /// every process group before that stop arrives): from now on a
    /// process that exits is not restarted, nor announced as restarting;
    /// the plugin shows as stopping until [`Supervisor::stop`].
    pub fn expect_stop(&self) {
        self.ending.store(true, Ordering::SeqCst);
    }

    /// Stops the plugin for good and waits until it is gone.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }

    /// Stops the plugin and holds it disabled until [`Supervisor::enable`];
    /// returns once it is stopped. The host takes it out of its routes
    /// first (see `Host::disable`).
    pub(crate) async fn disable(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Disable(done)).is_ok() {
            let _ = stopped.await;
        }
    }

    /// Starts a disabled plugin again; nothing for one that is not.
    pub(crate) fn enable(&self) {
        let _ = self.commands.send(Command::Enable);
    }

    /// Waits until an enabled plugin's start has come to something: ready,
    /// or failed (and restarting, or quarantined), or stopped.
    pub(crate) async fn settled(&self) {
        let mut status = self.status.clone();
        // The sender lives as long as the supervising task; once it is gone
        // the plugin is stopped, which is settled too.
        let _ = status
            .wait_for(|s| !matches!(s.state, State::Disabled | State::Starting))
            .await;
    }

    /// Waits until the plugin is in `state` (for tests and tools), up to
    /// `timeout`. False on timeout.
    pub async fn wait_for_state(&self, state: State, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(timeout, status.wait_for(|s| s.state == state))
            .await
            .is_ok()
    }
}

fn state_word(state: State) -> &'static str {
    match state {
        State::Starting => "starting",
        State::Ready => "ready",
        State::Unhealthy => "unhealthy",
        State::Restarting => "restarting",
        State::Failed => "failed (quarantined; restart it to try again)",
        State::Stopping => "stopping",
        State::Stopped => "stopped",
        State::Disabled => "disabled by an operator (enable it to start it again)",
    }
}

impl Current {
    /// `state` with no process and no start yet, known by `manifest`.
    fn idle(state: State, manifest: Arc<Manifest>) -> Current {
        Current {
            state,
            plugin: None,
            stopping: None,
            starts: 0,
            reason: None,
            stderr: Vec::new(),
            manifest,
            sandbox: Arc::from([]),
            since: None,
        }
    }

    /// The status callers see; `optional` is the plugin's latest.
    fn status(&self, optional: bool) -> Status {
        Status {
            optional,
            state: self.state,
            pid: self.plugin.as_ref().map(|p| p.pid()).or(self.stopping),
            starts: self.starts,
            reason: self.reason.clone(),
            stderr: self.stderr.clone(),
            since: self.since,
            invoke_path: self.plugin.as_ref().map(|p| p.invoke_path()),
        }
    }
}
