//! A supervisor per plugin: it keeps the plugin ready, restarts it when it
//! dies or stops answering its health checks, and quarantines it when it
//! keeps failing.
//!
//! States: starting → ready → (unhealthy) → restarting → ready, or →
//! failed (quarantined, with the reason and the last stderr lines, until
//! [`Supervisor::restart`] is called) → stopping → stopped.
//!
//! - **Exit** is noticed the moment the process exits, not at the next
//!   health check. Calls in flight fail at once (see `plugin`).
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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{PluginSpec, RestartPolicy, Supervision};
use crate::error::CallError;
use crate::instance::Plugin;
use crate::manifest::Manifest;

/// Where a supervised plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    Ready,
    Unhealthy,
    Restarting,
    Failed,
    Stopping,
    Stopped,
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
}

/// What the supervisor publishes: the status and the running instance.
/// Only the supervisor and [`Supervisor::ready`] hold the instance, so
/// nothing outside keeps a stopped plugin's directory alive.
#[derive(Debug, Clone)]
struct Current {
    state: State,
    plugin: Option<Arc<Plugin>>,
    starts: u32,
    reason: Option<String>,
    stderr: Vec<String>,
}

/// What a caller can ask of a supervisor.
#[derive(Debug)]
enum Command {
    /// Restart now; for a quarantined plugin, start afresh.
    Restart,
    /// Stop the plugin and the supervisor; answer when done.
    Stop(oneshot::Sender<()>),
}

/// One plugin under supervision.
#[derive(Debug)]
pub struct Supervisor {
    name: Arc<str>,
    manifest: Manifest,
    spec: PluginSpec,
    status: watch::Receiver<Current>,
    /// Every state change, for [`Supervisor::subscribe`].
    changes: broadcast::Sender<Status>,
    commands: mpsc::UnboundedSender<Command>,
}

/// State changes a subscriber may fall behind by before it misses some
/// (it then learns how many it missed).
const CHANGES_BUFFERED: usize = 64;

impl Supervisor {
    /// Takes over a plugin that completed its first start.
    pub fn adopt(plugin: Plugin) -> Arc<Supervisor> {
        let name: Arc<str> = plugin.name().into();
        let manifest = plugin.manifest().clone();
        let spec = plugin.spec().clone();
        let plugin = Arc::new(plugin);
        let (status_tx, status) = watch::channel(Current {
            state: State::Ready,
            plugin: Some(plugin.clone()),
            starts: 1,
            reason: None,
            stderr: Vec::new(),
        });
        let (commands, inbox) = mpsc::unbounded_channel();
        let (changes, _) = broadcast::channel(CHANGES_BUFFERED);
        let run = Run {
            name: name.clone(),
            spec: spec.clone(),
            status: status_tx,
            changes: changes.clone(),
            inbox,
            starts: VecDeque::from([Instant::now()]),
            failures_in_row: 0,
        };
        tokio::spawn(run.supervise(plugin));
        Arc::new(Supervisor {
            name,
            manifest,
            spec,
            status,
            changes,
            commands,
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

    /// The manifest from its first start (routes are built from it).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The spec it runs from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Its current status.
    pub fn status(&self) -> Status {
        self.status.borrow().status()
    }

    /// Its current state.
    pub fn state(&self) -> State {
        self.status.borrow().state
    }

    /// The ready plugin, waiting while it starts or restarts, up to
    /// `deadline`.
    pub async fn ready(&self, deadline: Instant) -> Result<Arc<Plugin>, CallError> {
        // Fast path: no waiting, one read of the status. An instance whose
        // process has exited is not ready, even before the supervisor has
        // caught up with it.
        {
            let status = self.status.borrow();
            if let Some(plugin) = &status.plugin
                && plugin.exited().is_none()
            {
                return Ok(plugin.clone());
            }
        }
        let mut status = self.status.clone();
        let waited = tokio::time::timeout_at(
            deadline,
            status.wait_for(|s| {
                s.plugin.is_some()
                    || matches!(s.state, State::Failed | State::Stopping | State::Stopped)
            }),
        )
        .await;
        let current = self.status.borrow().clone();
        let live = current.plugin.filter(|p| p.exited().is_none());
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

    /// Stops the plugin for good and waits until it is gone.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
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
    }
}

/// Why a ready plugin stopped being ready.
enum Lost {
    /// Its process exited.
    Exited { exit: String, success: bool },
    /// It missed too many health checks.
    Unhealthy(String),
    /// Someone asked for a restart.
    Restart,
    /// Someone asked it to stop.
    Stop(oneshot::Sender<()>),
}

impl Current {
    fn status(&self) -> Status {
        Status {
            state: self.state,
            pid: self.plugin.as_ref().map(|p| p.pid()),
            starts: self.starts,
            reason: self.reason.clone(),
            stderr: self.stderr.clone(),
        }
    }
}

/// The supervisor task's state.
struct Run {
    name: Arc<str>,
    spec: PluginSpec,
    status: watch::Sender<Current>,
    changes: broadcast::Sender<Status>,
    inbox: mpsc::UnboundedReceiver<Command>,
    /// Start times within the crash-loop window.
    starts: VecDeque<Instant>,
    /// Failures since the plugin was last stable.
    failures_in_row: u32,
}

impl Run {
    async fn supervise(mut self, first: Arc<Plugin>) {
        let mut plugin = first;
        loop {
            let ready_at = Instant::now();
            let lost = self.watch(&plugin).await;
            if ready_at.elapsed() >= self.spec.supervision.backoff_reset_after {
                self.failures_in_row = 0;
            }
            let stderr = plugin.stderr_tail();
            let why = match lost {
                Lost::Stop(done) => {
                    self.set(State::Stopping, None, None, Vec::new());
                    plugin.terminate().await;
                    drop(plugin);
                    self.set(State::Stopped, None, None, Vec::new());
                    let _ = done.send(());
                    return;
                }
                Lost::Restart => {
                    self.set(
                        State::Restarting,
                        None,
                        Some("restart requested".into()),
                        stderr,
                    );
                    plugin.terminate().await;
                    // Asked for, not a failure: it does not count towards a
                    // crash loop.
                    self.failures_in_row = 0;
                    self.starts.clear();
                    "restart requested".to_owned()
                }
                Lost::Unhealthy(reason) => {
                    self.set(State::Unhealthy, None, Some(reason.clone()), stderr);
                    tracing::warn!(plugin = &*self.name, "unhealthy, restarting: {reason}");
                    plugin.kill().await;
                    self.failures_in_row += 1;
                    reason
                }
                Lost::Exited { exit, success } => {
                    let reason = format!("exited with {exit}");
                    let policy = self.spec.supervision.restart;
                    // Leftovers of its process group go before anything else.
                    plugin.kill().await;
                    if policy == RestartPolicy::Never
                        || (policy == RestartPolicy::OnFailure && success)
                    {
                        tracing::warn!(
                            plugin = &*self.name,
                            "{reason}; not restarted (restart = {policy:?})"
                        );
                        self.set(State::Failed, None, Some(reason), stderr);
                        if self.wait_for_command().await.is_none() {
                            return;
                        }
                        self.starts.clear();
                        self.failures_in_row = 0;
                        reason_for_manual()
                    } else {
                        tracing::warn!(plugin = &*self.name, "{reason}; restarting");
                        self.set(State::Restarting, None, Some(reason.clone()), stderr);
                        self.failures_in_row += 1;
                        reason
                    }
                }
            };
            drop(plugin);
            match self.start_again(why).await {
                Some(next) => plugin = next,
                None => return,
            }
        }
    }

    /// Watches a ready plugin until it exits, turns unhealthy, or a command
    /// comes.
    async fn watch(&mut self, plugin: &Arc<Plugin>) -> Lost {
        let sup = self.spec.supervision;
        let check_timeout = sup.health_interval.min(self.spec.call_timeout);
        let mut ticks =
            tokio::time::interval_at(Instant::now() + sup.health_interval, sup.health_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut misses = 0u32;
        loop {
            tokio::select! {
                (exit, success) = plugin.wait_exit() => return Lost::Exited { exit, success },
                command = self.inbox.recv() => return match command {
                    Some(Command::Restart) => Lost::Restart,
                    Some(Command::Stop(done)) => Lost::Stop(done),
                    // Every handle is gone: nobody can use the plugin.
                    None => {
                        let (done, _) = oneshot::channel();
                        Lost::Stop(done)
                    }
                },
                _ = ticks.tick() => match plugin.check_health(check_timeout).await {
                    Ok(()) => misses = 0,
                    Err(reason) => {
                        misses += 1;
                        tracing::debug!(plugin = &*self.name, misses, "health check missed: {reason}");
                        if misses >= sup.health_misses {
                            return Lost::Unhealthy(format!("{misses} health checks missed in a row, the last: {reason}"));
                        }
                    }
                },
            }
        }
    }

    /// Starts the plugin again after `why`, with backoff, until it is ready,
    /// it is quarantined and stays so, or a stop comes. `None` means stop.
    async fn start_again(&mut self, mut why: String) -> Option<Arc<Plugin>> {
        loop {
            let sup = self.spec.supervision;
            let now = Instant::now();
            while self
                .starts
                .front()
                .is_some_and(|t| now.duration_since(*t) > sup.crash_loop_window)
            {
                self.starts.pop_front();
            }
            if self.starts.len() >= sup.crash_loop_starts as usize {
                let reason = format!(
                    "crash loop: {} starts within {}, the last failure: {why}",
                    self.starts.len(),
                    humantime::format_duration(sup.crash_loop_window)
                );
                tracing::error!(plugin = &*self.name, "quarantined: {reason}");
                let stderr = self.status.borrow().stderr.clone();
                self.set(State::Failed, None, Some(reason), stderr);
                self.wait_for_command().await?;
                self.starts.clear();
                self.failures_in_row = 0;
                why = reason_for_manual();
            }

            let delay = backoff(self.failures_in_row, &sup);
            if !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    command = self.inbox.recv() => match command {
                        Some(Command::Restart) => self.failures_in_row = 0,
                        Some(Command::Stop(done)) => {
                            self.set(State::Stopped, None, None, Vec::new());
                            let _ = done.send(());
                            return None;
                        }
                        None => return None,
                    },
                }
            }

            self.starts.push_back(Instant::now());
            let starts = self.status.borrow().starts + 1;
            self.status.send_modify(|s| {
                s.state = State::Starting;
                s.starts = starts;
            });
            let _ = self.changes.send(self.status.borrow().status());
            let started = tokio::select! {
                started = Plugin::start(&self.spec) => started,
                command = self.inbox.recv() => match command {
                    // Dropping the start kills what it spawned.
                    Some(Command::Stop(done)) => {
                        self.set(State::Stopped, None, None, Vec::new());
                        let _ = done.send(());
                        return None;
                    }
                    Some(Command::Restart) => continue,
                    None => return None,
                },
            };
            match started {
                Ok(plugin) => {
                    let plugin = Arc::new(plugin);
                    tracing::info!(plugin = &*self.name, starts, "ready again");
                    self.set(State::Ready, Some(plugin.clone()), None, Vec::new());
                    return Some(plugin);
                }
                Err(err) => {
                    why = err.kind.to_string();
                    tracing::warn!(plugin = &*self.name, "restart failed: {why}");
                    self.failures_in_row += 1;
                    self.set(State::Restarting, None, Some(why.clone()), Vec::new());
                }
            }
        }
    }

    /// Waits for a restart request; `None` on stop.
    async fn wait_for_command(&mut self) -> Option<()> {
        match self.inbox.recv().await {
            Some(Command::Restart) => Some(()),
            Some(Command::Stop(done)) => {
                let reason = self.status.borrow().reason.clone();
                self.set(State::Stopped, None, reason, Vec::new());
                let _ = done.send(());
                None
            }
            None => None,
        }
    }

    fn set(
        &self,
        state: State,
        plugin: Option<Arc<Plugin>>,
        reason: Option<String>,
        stderr: Vec<String>,
    ) {
        self.status.send_modify(|s| {
            s.state = state;
            s.plugin = plugin;
            if reason.is_some() || state == State::Ready {
                s.reason = reason;
            }
            if !stderr.is_empty() || state == State::Ready {
                s.stderr = stderr;
            }
        });
        // Nobody listening is fine.
        let _ = self.changes.send(self.status.borrow().status());
    }
}

fn reason_for_manual() -> String {
    "restart requested".to_owned()
}

/// The delay before the next start after `failures` failures in a row: none
/// for the first, then `initial` doubling up to `max`, with jitter between
/// half and all of it.
fn backoff(failures: u32, sup: &Supervision) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(20);
    let full = sup
        .backoff_initial
        .saturating_mul(1 << doublings)
        .min(sup.backoff_max);
    let half = full / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_with_jitter_up_to_the_cap() {
        let sup = Supervision::default();
        assert_eq!(backoff(0, &sup), Duration::ZERO);
        assert_eq!(backoff(1, &sup), Duration::ZERO);
        for (failures, full) in [(2, 100), (3, 200), (4, 400), (12, 30_000), (40, 30_000)] {
            let full = Duration::from_millis(full);
            for _ in 0..50 {
                let d = backoff(failures, &sup);
                assert!(
                    d >= full / 2 && d <= full,
                    "{failures}: {d:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
    }
}
