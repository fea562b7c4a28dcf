//! The supervising task of one plugin: it watches the ready instance, asks
//! the policy what to do when it is lost, and starts it again through the
//! launcher. Every decision is the policy's; this loop only waits, reports
//! the state, and acts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rand::Rng;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::policy::{self, Health, Next, Policy};
use super::{Command, Current, Instance, Launcher, State, Status};
use crate::config::PluginSpec;
use crate::figures::{RestartReason, Stats};
use crate::launch::{CRASH_SETTLE, Exit};

/// The reason recorded when someone asked for the restart.
const RESTART_REQUESTED: &str = "restart requested";
/// The reason recorded for the start after an operator's enable.
const ENABLED: &str = "enabled by an operator";

/// A command that matters while the plugin is not disabled (an enable is
/// then moot).
enum Asked {
    /// Restart now.
    Restart,
    /// Stop for good.
    Stop(oneshot::Sender<()>),
    /// Stop and hold disabled.
    Disable(oneshot::Sender<()>),
}

/// Why a ready instance stopped being ready.
enum Lost {
    /// Its process exited.
    Exited(Exit),
    /// A connection it cannot work without was lost (its fast path's),
    /// its process still running: a crash, for this reason.
    Broken(String),
    /// It missed too many health checks.
    Unhealthy(String),
    /// Someone asked for a restart.
    Restart,
    /// Someone asked it to stop.
    Stop(oneshot::Sender<()>),
    /// An operator disabled it.
    Disable(oneshot::Sender<()>),
}

/// Why the plugin is started again: the reason counted in its figures,
/// and the words its status shows.
type Why = (RestartReason, String);

/// How one start ended.
enum Started {
    /// Ready: the new instance.
    Ready(Arc<dyn Instance>),
    /// It failed, for this reason; the policy decides what next.
    Failed(String),
    /// A restart (or a disable, then an enable) was asked for meanwhile:
    /// start over, for that reason.
    Again(RestartReason),
    /// A stop was asked for meanwhile (and is done).
    Stopped,
}

/// The supervisor task's state.
pub(super) struct Run {
    /// The plugin's name, for the logs.
    pub(super) name: Arc<str>,
    /// What to start it from.
    pub(super) spec: PluginSpec,
    /// How to start it.
    pub(super) launcher: Arc<dyn Launcher>,
    /// The published status, read by [`super::Supervisor`].
    pub(super) status: watch::Sender<Current>,
    /// Every state change, for subscribers.
    pub(super) changes: broadcast::Sender<Status>,
    /// Commands from the [`super::Supervisor`] handles.
    pub(super) inbox: mpsc::UnboundedReceiver<Command>,
    /// What it remembers of past starts and failures.
    pub(super) policy: Policy,
    /// Set by [`super::Supervisor::expect_stop`]: restart nothing.
    pub(super) ending: Arc<AtomicBool>,
    /// The plugin's figures: each start after the first is counted there
    /// with its reason, and each start's duration.
    pub(super) stats: Arc<Stats>,
    /// Whether the plugin is optional now, for the statuses it announces.
    pub(super) optional: Arc<AtomicBool>,
    /// Where each health check's result goes.
    pub(super) last_check: super::health::LastCheck,
}

/// Where supervision begins.
pub(super) enum Begin {
    /// From an instance that completed its first start.
    Ready(Arc<dyn Instance>),
    /// From disabled: nothing runs until an operator enables it.
    Disabled,
    /// From a first start that failed for this reason (an optional
    /// plugin's): started again as after any failed start.
    Failed(String),
}

impl Run {
    /// Supervises from `first` on, until asked to stop.
    pub(super) async fn supervise(mut self, first: Begin) {
        let first = match first {
            Begin::Ready(first) => Some(first),
            Begin::Disabled => match self.wait_for_enable().await {
                Some(()) => self.start_again(enabled()).await,
                None => None,
            },
            Begin::Failed(why) => {
                tracing::warn!(plugin = &*self.name, "optional, starting without it: {why}");
                self.policy.failed();
                self.start_again((RestartReason::StartFailed, why)).await
            }
        };
        let Some(mut instance) = first else {
            return;
        };
        loop {
            let ready_at = Instant::now();
            let lost = self.watch(&instance).await;
            self.policy.ran(ready_at, Instant::now());
            let Some(why) = self.after(lost, instance).await else {
                return;
            };
            match self.start_again(why).await {
                Some(next) => instance = next,
                None => return,
            }
        }
    }

    /// Watches a ready instance until it exits, turns unhealthy, or a
    /// command comes.
    async fn watch(&mut self, instance: &Arc<dyn Instance>) -> Lost {
        let knobs = self.spec.supervision;
        let check_timeout = knobs.health_interval.min(self.spec.call_timeout);
        let mut ticks = tokio::time::interval_at(
            Instant::now() + knobs.health_interval,
            knobs.health_interval,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = Health::new(knobs.health_misses);
        loop {
            tokio::select! {
                exit = instance.wait_exit() => return Lost::Exited(exit),
                why = instance.wait_lost() => {
                    // A crash closes the connection too, often just before
                    // the exit is reaped: then it is the exit.
                    let settle = tokio::time::timeout(CRASH_SETTLE, instance.wait_exit()).await;
                    return settle.map_or(Lost::Broken(why), Lost::Exited);
                }
                command = next_command(&mut self.inbox) => return match command {
                    Asked::Restart => Lost::Restart,
                    Asked::Stop(done) => Lost::Stop(done),
                    Asked::Disable(done) => Lost::Disable(done),
                },
                _ = ticks.tick() => match instance.check_health(check_timeout).await {
                    Ok(()) => {
                        health.passed();
                        self.last_check.record(Ok(()), 0);
                    }
                    Err(reason) => {
                        let unhealthy = health.missed();
                        let misses = health.misses();
                        self.last_check.record(Err(&reason), misses);
                        tracing::debug!(plugin = &*self.name, misses, "health check missed: {reason}");
                        if unhealthy {
                            return Lost::Unhealthy(format!(
                                "{misses} health checks missed in a row, the last: {reason}"
                            ));
                        }
                    }
                },
            }
        }
    }

    /// Deals with a lost instance: stops or kills what is left of it and
    /// records why. The reason to start again, or `None` once stopped.
    async fn after(&mut self, lost: Lost, instance: Arc<dyn Instance>) -> Option<Why> {
        let stderr = instance.stderr_tail();
        // Its checks were of this instance; the reason below keeps what
        // matters of a failed one.
        self.last_check.clear();
        match lost {
            Lost::Stop(done) => {
                self.stopping(instance.pid());
                instance.terminate().await;
                // The last reference here removes its runtime directory
                // before the caller hears it is stopped.
                drop(instance);
                self.stopped(done);
                None
            }
            Lost::Disable(done) => {
                self.stopping(instance.pid());
                instance.terminate().await;
                drop(instance);
                self.hold_disabled(done).await?;
                Some(enabled())
            }
            Lost::Restart => {
                let why = requested();
                self.set(State::Restarting, None, Some(why.1.clone()), stderr);
                instance.terminate().await;
                // Asked for, not a failure: it does not count towards a
                // crash loop.
                self.policy.reset();
                Some(why)
            }
            Lost::Unhealthy(reason) if self.ending() => {
                instance.kill().await;
                drop(instance);
                self.until_stopped(reason, stderr).await
            }
            Lost::Unhealthy(reason) => {
                self.set(State::Unhealthy, None, Some(reason.clone()), stderr);
                tracing::warn!(plugin = &*self.name, "unhealthy, restarting: {reason}");
                instance.kill().await;
                self.policy.failed();
                Some((RestartReason::Health, reason))
            }
            Lost::Exited(exit) => {
                self.crashed(
                    format!("exited with {}", exit),
                    exit.success(),
                    instance,
                    stderr,
                )
                .await
            }
            Lost::Broken(reason) => self.crashed(reason, false, instance, stderr).await,
        }
    }

    /// Deals with an instance whose process exited (`success`: with status
    /// 0), or that is as good as dead, for `reason`: kills what is left of
    /// it, then restarts it as its policy says.
    async fn crashed(
        &mut self,
        reason: String,
        success: bool,
        instance: Arc<dyn Instance>,
        stderr: Vec<String>,
    ) -> Option<Why> {
        // Leftovers of its process group go before anything else.
        instance.kill().await;
        drop(instance);
        if self.ending() {
            return self.until_stopped(reason, stderr).await;
        }
        let restart = self.spec.supervision.restart;
        if policy::restarts_after_exit(restart, success) {
            tracing::warn!(plugin = &*self.name, "{reason}; restarting");
            self.set(State::Restarting, None, Some(reason.clone()), stderr);
            self.policy.failed();
            let cause = if success {
                RestartReason::Exited
            } else {
                RestartReason::Crashed
            };
            return Some((cause, reason));
        }
        tracing::warn!(
            plugin = &*self.name,
            "{reason}; not restarted (restart = {restart:?})"
        );
        self.set(State::Failed, None, Some(reason), stderr);
        let cause = self.wait_for_restart().await?;
        self.policy.reset();
        Some(asked(cause))
    }

    /// Starts the plugin again after `why`, with backoff, until it is ready,
    /// it is quarantined and stays so, or a stop comes. `None` means
    /// stopped.
    async fn start_again(&mut self, mut why: Why) -> Option<Arc<dyn Instance>> {
        loop {
            let jitter: f64 = rand::rng().random();
            match self.policy.next(Instant::now(), jitter) {
                Next::Quarantine { starts } => {
                    self.quarantine(starts, &why.1);
                    let cause = self.wait_for_restart().await?;
                    self.policy.reset();
                    why = asked(cause);
                    continue;
                }
                Next::StartAfter(delay) if !delay.is_zero() => {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        command = next_command(&mut self.inbox) => match command {
                            Asked::Restart => self.policy.skip_backoff(),
                            Asked::Stop(done) => {
                                self.stopped(done);
                                return None;
                            }
                            Asked::Disable(done) => {
                                self.hold_disabled(done).await?;
                                why = enabled();
                                continue;
                            }
                        },
                    }
                }
                Next::StartAfter(_) => {}
            }
            if self.ending() {
                // Not started again with the host stopping: wait for the
                // stop.
                why = self.until_stopped(why.1, Vec::new()).await?;
                continue;
            }
            match self.start_once(why.0).await {
                Started::Ready(instance) => return Some(instance),
                Started::Failed(reason) => why = (RestartReason::StartFailed, reason),
                Started::Again(cause) => why = asked(cause),
                Started::Stopped => return None,
            }
        }
    }

    /// True once a stop is coming: nothing is restarted.
    fn ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// The process is gone (for `reason`) while a stop is coming, likely
    /// killed on purpose: it is not restarted nor announced as restarting;
    /// the plugin shows as stopping until the stop. A restart asked for by
    /// hand meanwhile ends the wait (the caller decides what follows).
    async fn until_stopped(&mut self, reason: String, stderr: Vec<String>) -> Option<Why> {
        tracing::info!(
            plugin = &*self.name,
            "{reason}; not restarted: its stop is coming"
        );
        self.set(State::Stopping, None, Some(reason), stderr);
        let cause = self.wait_for_restart().await?;
        self.policy.reset();
        Some(asked(cause))
    }

    /// One start through the launcher, for `cause` (counted in the
    /// figures), abandoned if a command comes first.
    async fn start_once(&mut self, cause: RestartReason) -> Started {
        self.policy.started(Instant::now());
        self.stats.restarted(cause);
        let starts = self.status.borrow().starts + 1;
        self.status.send_modify(|s| {
            s.state = State::Starting;
            s.starts = starts;
        });
        self.announce();
        let launched = tokio::select! {
            launched = self.launcher.launch(&self.spec) => launched,
            // Dropping the start kills what it spawned.
            command = next_command(&mut self.inbox) => return match command {
                Asked::Stop(done) => {
                    self.stopped(done);
                    Started::Stopped
                }
                Asked::Restart => Started::Again(RestartReason::Operator),
                Asked::Disable(done) => match self.hold_disabled(done).await {
                    Some(()) => Started::Again(RestartReason::Enabled),
                    None => Started::Stopped,
                },
            },
        };
        match launched {
            Ok(instance) => {
                self.stats.started_in(instance.ready_after());
                tracing::info!(plugin = &*self.name, starts, "ready again");
                self.set(State::Ready, Some(instance.clone()), None, Vec::new());
                Started::Ready(instance)
            }
            Err(err) => {
                let why = err.kind.to_string();
                tracing::warn!(plugin = &*self.name, "restart failed: {why}");
                self.policy.failed();
                self.set(State::Restarting, None, Some(why.clone()), Vec::new());
                Started::Failed(why)
            }
        }
    }

    /// Marks the plugin failed, for a crash loop of `starts` starts whose
    /// last failure was `why`.
    fn quarantine(&self, starts: usize, why: &str) {
        let noun = if starts == 1 { "start" } else { "starts" };
        let reason = format!(
            "crash loop: {starts} {noun} within {}, the last failure: {why}",
            humantime::format_duration(self.spec.supervision.crash_loop_window)
        );
        tracing::error!(plugin = &*self.name, "quarantined: {reason}");
        let stderr = self.status.borrow().stderr.clone();
        self.set(State::Failed, None, Some(reason), stderr);
    }

    /// Waits, down, for a restart request (or an enable after a disable);
    /// which of the two came, or `None` once stopped instead.
    async fn wait_for_restart(&mut self) -> Option<RestartReason> {
        match next_command(&mut self.inbox).await {
            Asked::Restart => Some(RestartReason::Operator),
            Asked::Stop(done) => {
                self.stopped(done);
                None
            }
            Asked::Disable(done) => self
                .hold_disabled(done)
                .await
                .map(|()| RestartReason::Enabled),
        }
    }

    /// Reports the plugin disabled (its instance is gone) to everyone and to
    /// whoever asked, then waits for the enable; `None` once stopped
    /// instead.
    async fn hold_disabled(&mut self, done: oneshot::Sender<()>) -> Option<()> {
        self.set(State::Disabled, None, None, Vec::new());
        let _ = done.send(());
        self.wait_for_enable().await
    }

    /// Waits, disabled, for an enable (a restart does not enable); `None`
    /// once stopped instead. An enable starts afresh: the crash-loop count
    /// and the backoff are cleared.
    async fn wait_for_enable(&mut self) -> Option<()> {
        loop {
            match self.inbox.recv().await {
                Some(Command::Enable) => {
                    self.policy.reset();
                    return Some(());
                }
                Some(Command::Disable(done)) => {
                    let _ = done.send(());
                }
                Some(Command::Restart) => {}
                Some(Command::Stop(done)) => {
                    self.stopped(done);
                    return None;
                }
                None => {
                    self.stopped(oneshot::channel().0);
                    return None;
                }
            }
        }
    }

    /// Reports the plugin stopped (keeping the last reason) to everyone and
    /// to whoever asked.
    fn stopped(&self, done: oneshot::Sender<()>) {
        self.set(State::Stopped, None, None, Vec::new());
        let _ = done.send(());
    }

    /// Publishes a new state; a reason or stderr lines replace the last
    /// ones, and ready clears them. A new instance brings its manifest.
    fn set(
        &self,
        state: State,
        instance: Option<Arc<dyn Instance>>,
        reason: Option<String>,
        stderr: Vec<String>,
    ) {
        self.status.send_modify(|s| {
            s.state = state;
            if let Some(instance) = &instance {
                s.manifest = Arc::new(instance.manifest().clone());
                s.sandbox = Arc::from(instance.sandbox());
            }
            s.since = (state == State::Ready).then(SystemTime::now);
            s.plugin = instance;
            s.stopping = None;
            if reason.is_some() || state == State::Ready {
                s.reason = reason;
            }
            if !stderr.is_empty() || state == State::Ready {
                s.stderr = stderr;
            }
        });
        self.announce();
    }

    /// Publishes that the process `pid` is being stopped: no longer routed
    /// to, still there until its stop ends.
    fn stopping(&self, pid: u32) {
        // As `set(State::Stopping, None, None, ..)`, the pid kept.
        self.status.send_modify(|s| {
            s.state = State::Stopping;
            s.since = None;
            s.plugin = None;
            s.stopping = Some(pid);
        });
        self.announce();
    }

    /// Tells subscribers the current status.
    fn announce(&self) {
        // Nobody listening is fine.
        let optional = self.optional.load(Ordering::Relaxed);
        let _ = self.changes.send(self.status.borrow().status(optional));
    }
}

/// A restart an operator asked for.
fn requested() -> Why {
    (RestartReason::Operator, RESTART_REQUESTED.to_owned())
}

/// The start after an operator's enable.
fn enabled() -> Why {
    (RestartReason::Enabled, ENABLED.to_owned())
}

/// The start an operator's command brought: a restart, or an enable.
fn asked(cause: RestartReason) -> Why {
    match cause {
        RestartReason::Enabled => enabled(),
        _ => requested(),
    }
}

/// The next command that matters to a plugin that is not disabled; every
/// handle gone is a stop nobody waits for.
async fn next_command(inbox: &mut mpsc::UnboundedReceiver<Command>) -> Asked {
    loop {
        return match inbox.recv().await {
            Some(Command::Restart) => Asked::Restart,
            Some(Command::Stop(done)) => Asked::Stop(done),
            Some(Command::Disable(done)) => Asked::Disable(done),
            // Not disabled: nothing to enable.
            Some(Command::Enable) => continue,
            None => Asked::Stop(oneshot::channel().0),
        };
    }
}
