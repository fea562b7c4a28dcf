//! Serving a plugin: bind the socket, print the handshake, serve gRPC until
//! asked to stop, then stop gracefully.

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use outboard_proto::handshake::HandshakeLine;
use outboard_proto::v1::plugin_service_server::PluginServiceServer;
use tokio::net::UnixListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tower::layer::util::{Identity, Stack};

use crate::auth::TokenCheck;
use crate::deadline::StampDeadlineLayer;
use crate::fastpath::FastPath;
use crate::service::{PluginServer, StopRequest};
use crate::{Health, Plugin, ServeError, Settings};

/// The grace after SIGTERM or SIGINT. The host sends SIGKILL 2 s after
/// SIGTERM; this leaves time to clean up before it.
pub const SIGNAL_GRACE: Duration = Duration::from_millis(1500);

/// The most of the grace kept back for cancelling calls still running,
/// letting them send their answers and closing connections, so that the
/// process exits within the grace as the protocol asks.
const CLOSE_RESERVE: Duration = Duration::from_millis(500);

/// Serves `plugin` as `settings` say: binds the socket (mode 0600), prints
/// the handshake line, serves until a `Shutdown` call, SIGTERM or SIGINT
/// (when `Settings::handle_signals` is on), then stops gracefully and
/// returns `Ok(())`.
///
/// A graceful stop answers the `Shutdown` call, stops accepting
/// connections, reports `NOT_SERVING` on health, lets calls in flight run
/// for up to 3/4 of the grace (the `Shutdown` call's, default 5 s, or
/// [`SIGNAL_GRACE`]), cancels those still running with `UNAVAILABLE`, calls
/// [`Plugin::shutdown`], removes the socket file and, when spans are
/// exported, sends those still queued (for at most 400 ms) and stops the
/// exporter.
pub async fn serve_with<P: Plugin>(plugin: P, settings: Settings) -> Result<(), ServeError> {
    let manifest = plugin.manifest();
    let name = manifest.name().to_owned();
    manifest.validate().map_err(|source| ServeError::Manifest {
        plugin: name.clone(),
        source,
    })?;
    let plugin = Arc::new(plugin);
    let server_error = |source: tonic::transport::Error| ServeError::Server {
        plugin: name.clone(),
        source: Box::new(source),
    };

    let (listener, socket) = bind(&name, &settings.socket_path)?;
    // The fast path's socket too is bound before the handshake line: the
    // host may connect to it as soon as it reads the line.
    let fast_socket = settings
        .fastpath_to_serve()
        .map(|path| bind(&name, path))
        .transpose()?;
    // Listen for signals before the handshake, so that a SIGTERM right
    // after it is not lost (nor kills the process without cleanup).
    let mut signals = if settings.handle_signals {
        Some(Signals::new().map_err(|source| ServeError::Signals {
            plugin: name.clone(),
            source,
        })?)
    } else {
        None
    };
    let (stop_tx, stop_rx) = watch::channel(None::<StopRequest>);
    let stop_tx = Arc::new(stop_tx);
    let (abandon_tx, abandon_rx) = watch::channel(false);
    // SERVING from the start; the plugin gets a handle in `Configure`.
    let health = Health::new();
    let service = Arc::new(PluginServer::new(
        plugin.clone(),
        &manifest,
        settings.protocol_version,
        fast_socket.is_some(),
        stop_tx.clone(),
        abandon_rx,
        health.clone(),
        settings.host_services(),
    ));
    let mut fast = fast_socket.map(|(listener, socket)| {
        FastPath::start(
            listener,
            socket,
            service.clone(),
            &settings.token,
            stop_rx.clone(),
        )
    });
    let router = routes(service, &settings.token, &health);
    announce(&name, &settings)?;

    let mut server_stop = stop_rx.clone();
    let server =
        router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = server_stop.wait_for(Option::is_some).await;
        });
    let mut server = pin!(server);
    let request = tokio::select! {
        ended = &mut server => {
            // The listener never ends by itself, so this is an error.
            ended.map_err(server_error)?;
            None
        }
        request = stop_requested(stop_rx, &stop_tx, signals.as_mut()) => request,
    };
    if let Some(request) = request {
        drain(server, fast.as_mut(), request, &health, &abandon_tx)
            .await
            .map_err(server_error)?;
    }

    plugin.shutdown().await;
    socket.remove();
    if let Some(fast) = &mut fast {
        fast.remove_socket();
    }
    tracing::debug!("stopped");
    // Blocking, but bounded; the process is about to exit.
    crate::telemetry::shutdown();
    Ok(())
}

/// Binds the socket and makes it private to the host's user (mode 0600).
pub(crate) fn bind(name: &str, path: &Path) -> Result<(UnixListener, SocketFile), ServeError> {
    let socket_error = |action, source| ServeError::Socket {
        plugin: name.to_owned(),
        action,
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(|e| socket_error("bind", e))?;
    let socket = SocketFile(path.to_owned());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| socket_error("set permissions on", e))?;
    Ok((listener, socket))
}

/// The gRPC services a plugin serves behind the deadline layer: health and
/// reflection open to anyone on the socket, the plugin service behind the
/// token check.
fn routes<P: Plugin>(service: Arc<PluginServer<P>>, token: &str, health: &Health) -> Routes {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(outboard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // Only what this socket serves: outboard.v1's descriptors also
            // hold HostService, which the host serves, not the plugin.
            .with_service_name("outboard.v1.PluginService")
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets decode (checked by outboard-proto's tests)");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets decode (checked by outboard-proto's tests)");
    Server::builder()
        .layer(StampDeadlineLayer)
        .add_service(health.server())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            PluginServiceServer::from_arc(service),
            TokenCheck::new(token),
        ))
}

/// What [`routes`] builds.
type Routes = Router<Stack<StampDeadlineLayer, Identity>>;

/// Prints the handshake line: from here on the host may call.
fn announce(name: &str, settings: &Settings) -> Result<(), ServeError> {
    let line = HandshakeLine {
        protocol_version: settings.protocol_version,
        socket_path: settings.socket_path.to_string_lossy().into_owned(),
    };
    print_handshake(&line).map_err(|source| ServeError::Handshake {
        plugin: name.to_owned(),
        source,
    })?;
    // No `plugin` field: the host tags every line with the instance name.
    tracing::debug!(
        socket = %settings.socket_path.display(),
        protocol_version = settings.protocol_version,
        "serving"
    );
    Ok(())
}

/// Waits for a `Shutdown` call or a signal; a signal is turned into a stop
/// request with [`SIGNAL_GRACE`], sent to everyone watching `stop_tx`.
async fn stop_requested(
    mut stop_rx: watch::Receiver<Option<StopRequest>>,
    stop_tx: &watch::Sender<Option<StopRequest>>,
    signals: Option<&mut Signals>,
) -> Option<StopRequest> {
    let from_signal = async {
        match signals {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        requested = stop_rx.wait_for(Option::is_some) => requested.ok().and_then(|r| r.clone()),
        which = from_signal => {
            let request = StopRequest { grace: SIGNAL_GRACE, reason: which.to_owned() };
            stop_tx.send_replace(Some(request.clone()));
            Some(request)
        }
    }
}

/// Reports `NOT_SERVING`, lets calls in flight (on gRPC and on the fast
/// path) finish within most of the grace (neither accepts new connections
/// any more), then cancels those still running and gives them the rest of
/// it to answer and close.
async fn drain<F>(
    mut server: Pin<&mut F>,
    fast: Option<&mut FastPath>,
    StopRequest { grace, reason }: StopRequest,
    health: &Health,
    abandon_tx: &watch::Sender<bool>,
) -> Result<(), tonic::transport::Error>
where
    F: Future<Output = Result<(), tonic::transport::Error>>,
{
    tracing::debug!(
        reason,
        grace_ms = grace.as_millis() as u64,
        "stopping: no new connections, waiting for calls in flight"
    );
    health.set_serving(false);
    let reserve = CLOSE_RESERVE.min(grace / 4);
    let all_closed = async {
        let fast_drained = async {
            if let Some(fast) = fast {
                fast.drained().await;
            }
        };
        let (served, ()) = tokio::join!(server.as_mut(), fast_drained);
        served
    };
    let abandon_late = async {
        tokio::time::sleep(grace - reserve).await;
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "calls still running at the end of the grace period; cancelling them"
        );
        abandon_tx.send_replace(true);
        std::future::pending::<()>().await;
    };
    let closing = async {
        tokio::select! {
            served = all_closed => served,
            () = abandon_late => unreachable!("abandon_late never ends"),
        }
    };
    // Past the grace, connections still open are dropped with the server
    // and the fast path; the process is about to exit anyway.
    tokio::time::timeout(grace, closing).await.unwrap_or(Ok(()))
}

fn print_handshake(line: &HandshakeLine) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The bound socket's file, removed when the server stops or fails.
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl SocketFile {
    fn remove(self) {
        // Drop does the work; this names the moment.
        drop(self);
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(self.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                socket = %self.path().display(),
                error = %e,
                "cannot remove the socket file"
            ),
        }
    }
}

/// SIGTERM and SIGINT, the two ways to ask a process to stop.
#[derive(Debug)]
struct Signals {
    /// SIGTERM, from the host's stop escalation or a process manager.
    term: Signal,
    /// SIGINT, from Ctrl-C when the plugin runs in a terminal's foreground.
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either signal and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
