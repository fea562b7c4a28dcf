//! The daemon: a running [`Host`] served on the control socket as
//! `outboard.control.v1.ControlService`, with server reflection.
//!
//! ```text
//! let claim = Claim::take(&path, group)?;        // before any plugin starts
//! let host = Arc::new(Host::start(&config).await?);
//! let socket = claim.bind()?;
//! let daemon = Daemon::new(host, options);
//! let server = daemon.serve(&socket)?;
//! // SIGHUP: daemon.reload(false).await
//! daemon.shutdown(drain).await;                 // refuse new work, drain, stop plugins
//! server.stop().await;
//! drop(socket);                                 // socket and lock removed
//! ```
//!
//! # Layout
//!
//! - this file: [`Daemon`], its [`Options`] and the [`Server`] handle.
//! - `service`: the RPCs, each a thin call into the host.
//! - `guard`: the peer check every call passes first.
//! - `journal`: recent events and the live feed for `Watch`.
//! - `status`: plugins' statuses with statistics and usage.
//! - `wait`: waiting for a restarted or started plugin to settle.
//! - `notify`: what the service manager is told: ready, reloading,
//!   stopping, and the watchdog's probe of the host.

mod events;
mod guard;
mod journal;
mod notify;
mod service;
mod status;
mod wait;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use outboard_host::config::HostConfig;
use outboard_host::{Host, ReloadPlan};
use outboard_proto::CONTROL_FILE_DESCRIPTOR_SET;
use outboard_proto::control::v1::control_service_server::ControlServiceServer;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

use crate::control_socket::ControlSocket;
use crate::incoming;
use crate::logs::LogBook;
use crate::peer::Access;
use crate::systemd::Notifier;
use crate::usage::Sampler;
use journal::Journal;

/// Reads the configuration afresh, as `outboard up` read it at start; the
/// error names the file, the line and the field.
pub type Loader = Arc<dyn Fn() -> Result<HostConfig, String> + Send + Sync>;

/// What the daemon serves besides the host.
#[derive(Clone)]
pub struct Options {
    /// What a reload reads, for people: a config file or plugin
    /// directories.
    pub config_source: String,
    /// How a reload reads it.
    pub loader: Loader,
    /// The plugins' log lines, for `GetLogs`.
    pub logs: LogBook,
    /// The service manager to tell of readiness, reloads and the stop
    /// (`Notifier::default()` tells nobody).
    pub notifier: Notifier,
    /// Host services' events, for `Emit`, the dead letters and the
    /// `job.finished` of `RecordJob`; `None`: those RPCs are
    /// `FAILED_PRECONDITION`.
    pub events: Option<Arc<outboard_services::events::Events>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("config_source", &self.config_source)
            .finish_non_exhaustive()
    }
}

/// Why a reload did not apply; the running set is unchanged either way.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadFailure {
    /// The configuration could not be read (the message names the file,
    /// line and field).
    #[error("the config cannot be read, nothing changed: {0}")]
    Config(String),
    /// The host could not apply it (the message, the host's, names the
    /// plugins and says that nothing changed).
    #[error("{0}")]
    Apply(String),
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// A host served on the control socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

/// What every call shares.
#[derive(Debug)]
struct Inner {
    /// The running plugins.
    host: Arc<Host>,
    /// What it was started with.
    options: Options,
    /// When the daemon started.
    started_at: SystemTime,
    /// Where it listens, once it does.
    socket: Mutex<Option<PathBuf>>,
    /// Reloads applied.
    reloads: AtomicU64,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// True once shutdown began: new work is refused, streams end.
    closing: watch::Sender<bool>,
    /// Events for `Watch`.
    journal: Journal,
    /// Process-group figures for `GetStatus`.
    sampler: status::SharedSampler,
}

impl Daemon {
    /// The daemon over `host`; it starts recording the host's events for
    /// `Watch` at once (inside the tokio runtime).
    pub fn new(host: Arc<Host>, options: Options) -> Daemon {
        let events = host.events();
        let inner = Arc::new(Inner {
            host,
            options,
            started_at: SystemTime::now(),
            socket: Mutex::new(None),
            reloads: AtomicU64::new(0),
            reloading: tokio::sync::Mutex::new(()),
            closing: watch::channel(false).0,
            journal: Journal::new(),
            sampler: Arc::new(Mutex::new(Sampler::new())),
        });
        // Ends at shutdown (or if the host's channel closes).
        let recorder = inner.clone();
        tokio::spawn(async move {
            let inner = recorder;
            let mut closing = inner.closing.subscribe();
            tokio::select! {
                () = inner.journal.record_from(&inner.host, &inner.options.logs, events) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
        });
        Daemon { inner }
    }

    /// The host it serves.
    pub fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    /// Serves the control API (and reflection) on `socket` until
    /// [`Server::stop`]; each connection's peer is checked first.
    pub fn serve(&self, socket: &ControlSocket) -> io::Result<Server> {
        let listener = socket.listener()?;
        *self.inner.socket.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(socket.path().to_owned());
        let access = Access::for_this_process(socket.group().cloned());
        let control = ControlServiceServer::with_interceptor(
            service::Service::new(self.clone()),
            guard::admit,
        );
        let reflection = reflection_builder().build_v1().map_err(io::Error::other)?;
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .map_err(io::Error::other)?;
        let router = tonic::transport::Server::builder()
            .add_service(control)
            .add_service(InterceptedService::new(reflection, guard::admit))
            .add_service(InterceptedService::new(reflection_alpha, guard::admit));
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = incoming::accept(listener, access);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::error!("the control server stopped: {err}");
            }
        });
        Ok(Server { task, stop })
    }

    /// Re-reads the configuration and applies it (or, with `dry_run`,
    /// only plans it). One reload at a time; refused while shutting down.
    ///
    /// The reload runs in a task of its own: dropping this future (a
    /// client that hangs up, a worker aborted at shutdown) only stops
    /// waiting for the result; the reload still completes, counts and
    /// journals its event.
    pub async fn reload(&self, dry_run: bool) -> Result<(ReloadPlan, bool), ReloadFailure> {
        let this = self.clone();
        to_the_end(async move { this.reload_now(dry_run).await })
            .await
            .unwrap_or_else(|err| Err(ReloadFailure::Apply(err)))
    }

    /// [`Daemon::reload`], run to the end by its task.
    async fn reload_now(&self, dry_run: bool) -> Result<(ReloadPlan, bool), ReloadFailure> {
        let _one = self.inner.reloading.lock().await;
        if self.closing() {
            return Err(ReloadFailure::ShuttingDown);
        }
        if dry_run {
            return self.reload_locked(true).await;
        }
        self.notify_reloading();
        let result = self.reload_locked(false).await;
        self.notify_reloaded(&result);
        result
    }

    /// [`Daemon::reload_now`] once it holds the reload lock.
    async fn reload_locked(&self, dry_run: bool) -> Result<(ReloadPlan, bool), ReloadFailure> {
        let inner = &self.inner;
        let loader = inner.options.loader.clone();
        let config = tokio::task::spawn_blocking(move || loader())
            .await
            .map_err(|err| ReloadFailure::Config(format!("the reading task failed: {err}")))?;
        let config = match config {
            Ok(config) => config,
            Err(err) => {
                if !dry_run {
                    inner.journal.record(journal::reload_failed(&err));
                }
                return Err(ReloadFailure::Config(err));
            }
        };
        if dry_run {
            return Ok((inner.host.plan(&config), false));
        }
        let plan = inner
            .host
            .reload(&config)
            .await
            .map_err(|err| ReloadFailure::Apply(err.to_string()))?;
        inner.reloads.fetch_add(1, Ordering::Relaxed);
        Ok((plan, true))
    }

    /// Shuts down: new work is refused (`UNAVAILABLE`), following streams
    /// end, dispatches in flight get up to `drain` to finish, then every
    /// plugin stops, dependents first.
    pub async fn shutdown(&self, drain: Duration) {
        self.notify_stopping(drain);
        self.inner.closing.send_replace(true);
        self.inner.host.shutdown_within(drain).await;
    }

    /// True once shutdown began.
    fn closing(&self) -> bool {
        *self.inner.closing.borrow()
    }
}

/// Runs `work` in a task of its own, so that it completes even if the
/// caller stops waiting (a client hanging up drops its call's future);
/// the caller gets the output if it is still there. The error says why the
/// task ended early (it panicked).
async fn to_the_end<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(work)
        .await
        .map_err(|err| format!("the daemon's task failed: {err}"))
}

/// Reflection over the control API: the services this socket serves, and
/// not the plugin service its descriptors import.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    type Control = ControlServiceServer<service::Service>;
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(CONTROL_FILE_DESCRIPTOR_SET)
        .with_service_name(<Control as NamedService>::NAME)
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

/// The running control server.
#[derive(Debug)]
pub struct Server {
    /// The server's task.
    task: JoinHandle<()>,
    /// Tells it to stop accepting and finish.
    stop: oneshot::Sender<()>,
}

/// How long the server has to finish its calls once told to stop (the
/// plugins have stopped by then; only answers remain to be sent).
const SERVER_STOP: Duration = Duration::from_secs(2);

impl Server {
    /// Stops accepting, lets the calls under way be answered (within a
    /// bound), then ends.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(SERVER_STOP, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}
