//! An in-memory [`Launcher`] and [`Instance`] for tests: no process, no
//! socket, every start, exit, health answer and call scripted, so
//! supervision and dispatch run under `tokio::time::pause()` in
//! milliseconds.
//!
//! Built for this crate's tests and, with the `test-util` feature, for
//! other crates' (as `outboard_host::testing`).
//!
//! ```ignore
//! let launcher = FakeLauncher::new();
//! let plugin = launcher.plugin("steady", &[("x", 0, false)]);
//! plugin.script_starts([FakeStart::ReadyAfter(Duration::from_millis(300))]);
//! let host = Host::start_with(&config, launcher.clone()).await?;
//! plugin.instance().crash();
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use outboard_proto::v1;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Instance, Launcher};
use crate::config::PluginSpec;
use crate::error::{CallError, Error, ErrorKind};
use crate::instance::Reply;
use crate::launch::Exit;
use crate::manifest::{Dependency, Manifest};
use crate::sandbox::Wall;

/// Launches fake plugins, each registered by name with
/// [`FakeLauncher::plugin`].
#[derive(Debug, Default)]
pub struct FakeLauncher {
    plugins: Mutex<BTreeMap<String, Arc<FakePlugin>>>,
}

/// What one start of a fake plugin does.
#[derive(Debug)]
#[non_exhaustive]
pub enum FakeStart {
    /// Ready at once.
    Ready,
    /// Ready after this long.
    ReadyAfter(Duration),
    /// Fails at once with this error.
    Fail(ErrorKind),
    /// Never finishes (until dropped).
    Hang,
}

/// What one call to a fake plugin does.
#[derive(Debug)]
#[non_exhaustive]
pub enum FakeCall {
    /// Answers this.
    Reply(Reply),
    /// Fails with this error.
    Fail(CallError),
    /// Its instance exits (signal 9) during the call.
    Crash,
    /// Never answers (the caller's timeout, or the instance's exit, ends
    /// it).
    Hang,
    /// Answers this after that long (unless the caller's timeout, or the
    /// instance's exit, comes first).
    ReplyAfter(Duration, Reply),
}

/// How a fake instance answers its health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeHealth {
    /// `SERVING`.
    Serving,
    /// `NOT_SERVING`.
    NotServing,
    /// No answer until the check's timeout.
    Hang,
}

/// How a fake instance was stopped by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// Gracefully ([`Instance::terminate`]).
    Terminated,
    /// At once ([`Instance::kill`]).
    Killed,
}

/// One fake plugin: its manifest, its scripts, and what happened to it.
#[derive(Debug)]
pub struct FakePlugin {
    /// The manifest its next starts describe themselves with.
    manifest: Mutex<Manifest>,
    /// The walls its next starts are put up in.
    walls: Mutex<Vec<Wall>>,
    /// What the next starts do; then [`FakeStart::Ready`].
    starts: Mutex<VecDeque<FakeStart>>,
    /// What the next calls do, across instances; then an empty `CONTINUE`.
    calls: Arc<Mutex<VecDeque<FakeCall>>>,
    /// When each start (through the launcher) began.
    launched: watch::Sender<Vec<Instant>>,
    /// Every instance, in order.
    instances: Mutex<Vec<Arc<FakeInstance>>>,
    /// Starts dropped before they finished.
    abandoned: AtomicUsize,
}

/// One fake running instance.
#[derive(Debug)]
pub struct FakeInstance {
    spec: PluginSpec,
    manifest: Manifest,
    walls: Vec<Wall>,
    pid: u32,
    /// Its exit, once it has exited.
    exit: watch::Sender<Option<Exit>>,
    health: Mutex<FakeHealth>,
    calls: Arc<Mutex<VecDeque<FakeCall>>>,
    /// How the supervisor stopped it, first call wins.
    ending: Mutex<Option<Ending>>,
    invocations: AtomicU32,
    /// How long its start took (the script's delay, on tokio's clock).
    ready_after: Duration,
}

/// Fake pids, distinct across the test binary.
static NEXT_PID: AtomicU32 = AtomicU32::new(100_000);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock has failed already.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// === impl FakeLauncher ===

impl FakeLauncher {
    /// A launcher with no plugins yet.
    pub fn new() -> Arc<FakeLauncher> {
        Arc::default()
    }

    /// Registers the plugin `name`, subscribing to `(phase, priority,
    /// idempotent)` each; its handle scripts and observes it. Its spec's
    /// `name` must be `name`.
    pub fn plugin(&self, name: &str, subscriptions: &[(&str, i32, bool)]) -> Arc<FakePlugin> {
        let plugin = Arc::new(FakePlugin::new(manifest(name, subscriptions)));
        lock(&self.plugins).insert(name.to_owned(), plugin.clone());
        plugin
    }
}

impl Launcher for FakeLauncher {
    fn launch<'a>(
        &'a self,
        spec: &'a PluginSpec,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, Error>> {
        let plugin = lock(&self.plugins).get(&spec.name).cloned();
        Box::pin(async move {
            let Some(plugin) = plugin else {
                let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(Error::new(
                    &spec.name,
                    ErrorKind::Spawn {
                        command: spec.command.clone(),
                        source: missing,
                    },
                ));
            };
            let instance = plugin.start(spec).await?;
            Ok(instance as Arc<dyn Instance>)
        })
    }
}

/// A valid manifest for a fake plugin.
fn manifest(name: &str, subscriptions: &[(&str, i32, bool)]) -> Manifest {
    let proto = v1::Manifest {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        protocol_version: 1,
        subscriptions: subscriptions
            .iter()
            .map(|&(phase, priority, idempotent)| v1::Subscription {
                phase: phase.to_owned(),
                priority,
                idempotent,
            })
            .collect(),
        ..Default::default()
    };
    match Manifest::from_proto(proto, 1) {
        Ok(manifest) => manifest,
        Err(err) => panic!("fake plugin {name}: {err}"),
    }
}

// === impl FakePlugin ===

impl FakePlugin {
    fn new(manifest: Manifest) -> FakePlugin {
        FakePlugin {
            manifest: Mutex::new(manifest),
            walls: Mutex::default(),
            starts: Mutex::default(),
            calls: Arc::default(),
            launched: watch::Sender::new(Vec::new()),
            instances: Mutex::default(),
            abandoned: AtomicUsize::new(0),
        }
    }

    /// Its binary upgraded in place: the next starts subscribe to `(phase,
    /// priority, idempotent)` each instead.
    pub fn upgrade(&self, subscriptions: &[(&str, i32, bool)]) {
        let mut manifest = lock(&self.manifest);
        *manifest = self::manifest(&manifest.name, subscriptions);
    }

    /// Its next starts are put up inside `walls` (as a changed sandbox
    /// would be).
    pub fn walled(&self, walls: Vec<Wall>) {
        *lock(&self.walls) = walls;
    }

    /// Its next starts require the plugins `names` (any version).
    pub fn requires(&self, names: &[&str]) {
        lock(&self.manifest)
            .dependencies
            .extend(names.iter().map(|name| Dependency {
                name: (*name).to_owned(),
                version_req: None,
                optional: false,
            }));
    }

    /// What its next starts do, in order; after them, starts are ready at
    /// once.
    pub fn script_starts(&self, starts: impl IntoIterator<Item = FakeStart>) {
        lock(&self.starts).extend(starts);
    }

    /// What its next calls do, in order, whichever instance gets them;
    /// after them, calls continue with an empty patch.
    pub fn script_calls(&self, calls: impl IntoIterator<Item = FakeCall>) {
        lock(&self.calls).extend(calls);
    }

    /// When each start began, the first included.
    pub fn starts(&self) -> Vec<Instant> {
        self.launched.borrow().clone()
    }

    /// Waits until `n` starts have begun.
    pub async fn wait_for_starts(&self, n: usize) {
        let mut launched = self.launched.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = launched.wait_for(|starts| starts.len() >= n).await;
    }

    /// Every instance started so far, in order.
    pub fn instances(&self) -> Vec<Arc<FakeInstance>> {
        lock(&self.instances).clone()
    }

    /// The latest instance.
    ///
    /// # Panics
    ///
    /// If none was ever started.
    pub fn instance(&self) -> Arc<FakeInstance> {
        match lock(&self.instances).last() {
            Some(instance) => instance.clone(),
            None => panic!(
                "fake plugin {} was never started",
                lock(&self.manifest).name
            ),
        }
    }

    /// Starts dropped before they finished.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// One start, as its script says (the launcher's; a test starts a
    /// first instance to hand a supervisor with it).
    pub async fn start(&self, spec: &PluginSpec) -> Result<Arc<FakeInstance>, Error> {
        let began = Instant::now();
        self.launched.send_modify(|starts| starts.push(began));
        let step = lock(&self.starts).pop_front().unwrap_or(FakeStart::Ready);
        let mut pending = Abandoned(Some(&self.abandoned));
        match step {
            FakeStart::Ready => {}
            FakeStart::ReadyAfter(delay) => tokio::time::sleep(delay).await,
            FakeStart::Fail(kind) => {
                pending.0 = None;
                return Err(Error::new(&spec.name, kind));
            }
            FakeStart::Hang => std::future::pending().await,
        }
        pending.0 = None;
        let instance = Arc::new(FakeInstance {
            spec: spec.clone(),
            manifest: lock(&self.manifest).clone(),
            walls: lock(&self.walls).clone(),
            pid: NEXT_PID.fetch_add(1, Ordering::SeqCst),
            exit: watch::Sender::new(None),
            health: Mutex::new(FakeHealth::Serving),
            calls: self.calls.clone(),
            ending: Mutex::default(),
            invocations: AtomicU32::new(0),
            ready_after: began.elapsed(),
        });
        lock(&self.instances).push(instance.clone());
        Ok(instance)
    }
}

/// Counts a start dropped before it finished, unless disarmed.
struct Abandoned<'a>(Option<&'a AtomicUsize>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.0 {
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// === impl FakeInstance ===

impl FakeInstance {
    /// Makes its process exit, as if on its own.
    pub fn exit(&self, how: Exit) {
        self.exit.send_if_modified(|exit| {
            let first = exit.is_none();
            if first {
                *exit = Some(how);
            }
            first
        });
    }

    /// Makes its process die of SIGKILL.
    pub fn crash(&self) {
        self.exit(killed());
    }

    /// How it answers health checks from now on.
    pub fn set_health(&self, health: FakeHealth) {
        *lock(&self.health) = health;
    }

    /// How the supervisor stopped it, if it did.
    pub fn ending(&self) -> Option<Ending> {
        *lock(&self.ending)
    }

    /// Calls it received.
    pub fn invocations(&self) -> u32 {
        self.invocations.load(Ordering::SeqCst)
    }

    async fn exited(&self) -> Exit {
        let mut exit = self.exit.subscribe();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.unwrap_or_else(killed),
            // Unreachable: `self` holds the sender.
            Err(_) => killed(),
        }
    }

    fn crashed(&self) -> CallError {
        let status = Exit::describe(*self.exit.borrow());
        CallError::Crashed {
            status,
            stderr: Vec::new(),
        }
    }

    fn stop(&self, ending: Ending, how: Exit) {
        lock(&self.ending).get_or_insert(ending);
        self.exit(how);
    }

    async fn answer(&self) -> Result<Reply, CallError> {
        let call = lock(&self.calls).pop_front();
        match call {
            None => Ok(Reply::Continue {
                patch: Vec::new(),
                message: String::new(),
            }),
            Some(FakeCall::Reply(reply)) => Ok(reply),
            Some(FakeCall::Fail(err)) => Err(err),
            Some(FakeCall::Crash) => {
                self.crash();
                Err(self.crashed())
            }
            Some(FakeCall::Hang) => std::future::pending().await,
            Some(FakeCall::ReplyAfter(delay, reply)) => {
                tokio::time::sleep(delay).await;
                Ok(reply)
            }
        }
    }
}

/// Death by SIGKILL: a crash, a kill, or (never in practice: waits end only
/// once an exit is recorded) an exit the fake did not record.
fn killed() -> Exit {
    Exit::killed_by(libc::SIGKILL)
}

impl Instance for FakeInstance {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn sandbox(&self) -> &[Wall] {
        &self.walls
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn ready_after(&self) -> Duration {
        self.ready_after
    }

    fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    fn wait_exit(&self) -> BoxFuture<'_, Exit> {
        Box::pin(self.exited())
    }

    fn check_health(&self, timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        let health = lock(&self.health).clone();
        Box::pin(async move {
            match health {
                FakeHealth::Serving => Ok(()),
                FakeHealth::NotServing => Err("health status is NOT_SERVING".to_owned()),
                FakeHealth::Hang => {
                    tokio::time::sleep(timeout).await;
                    Err(format!(
                        "health check failed: {}",
                        CallError::Timeout(timeout)
                    ))
                }
            }
        })
    }

    fn invoke<'a>(
        &'a self,
        _phase: &'a str,
        _invocation_id: &'a str,
        _attempt: u32,
        _context: &'a crate::context::SentContext<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            self.invocations.fetch_add(1, Ordering::SeqCst);
            if self.has_exited() {
                return Err(self.crashed());
            }
            // As a real call: bounded by the timeout and by the exit.
            tokio::select! {
                answer = tokio::time::timeout(timeout, self.answer()) => {
                    answer.unwrap_or(Err(CallError::Timeout(timeout)))
                }
                _ = self.exited() => Err(self.crashed()),
            }
        })
    }

    fn terminate(&self) -> BoxFuture<'_, ()> {
        self.stop(Ending::Terminated, Exit::with_code(0));
        Box::pin(std::future::ready(()))
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        self.stop(Ending::Killed, killed());
        Box::pin(std::future::ready(()))
    }

    fn stderr_tail(&self) -> Vec<String> {
        Vec::new()
    }
}
