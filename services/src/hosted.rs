//! The host seam's implementation: before each spawn, a socket `host.sock`
//! in the instance's private runtime directory and a fresh token; then one
//! accept loop per socket until the instance's process exits.
//!
//! One accept loop per instance rather than one server for all: the
//! socket lives exactly as long as its instance, so ending the loop closes
//! the listener and every connection on it at once (they are tasks of the
//! loop's own set, aborted with it), and a flood of connections on one
//! socket is capped there without touching the others.
//!
//! Who may call: the token says which instance, and both the socket and
//! the peer must agree. Plugins run as one user, so one could read
//! another's token in `/proc/<pid>/environ`; a connection is therefore
//! accepted only from the instance's own process or its descendants (the
//! peer's pid, `SO_PEERCRED`, walked up `/proc`), and on an instance's
//! socket only that instance's token is known (`registry`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use outboard_host::launch::descends_from;
use outboard_host::{Attach, Attachment, Manifest};
use outboard_proto::handshake::{ENV_HOST_SOCKET, ENV_HOST_TOKEN};
use outboard_proto::v1::host_service_server::HostServiceServer;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tonic::service::Routes;
use tower::timeout::Timeout;

use crate::auth;
use crate::registry::Described;
use crate::server::HostServer;
use crate::services::Shared;

/// The host socket's name in the runtime directory: short, so the path
/// stays far below the 107 bytes of `sun_path`.
pub const SOCKET_NAME: &str = "host.sock";

/// Connections open at once on one instance's socket; more are closed as
/// soon as they are accepted. A plugin needs one.
const MAX_CONNECTIONS: usize = 8;

/// How long the accept loop pauses when accepting fails (out of
/// descriptors): the error would otherwise repeat at once, in a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Refused connections logged per socket; the rest are not.
const REFUSALS_LOGGED: u32 = 3;

/// Added to the longest a call may take (its wait for `Describe`, then its
/// bound) for receiving its request: past that, the stream is reset.
const RECEIVE_MARGIN: Duration = Duration::from_secs(5);

/// Gives each launch its socket and token.
#[derive(Debug)]
pub(crate) struct HostAttach {
    shared: Arc<Shared>,
}

impl HostAttach {
    pub(crate) fn new(shared: Arc<Shared>) -> HostAttach {
        HostAttach { shared }
    }
}

impl Attach for HostAttach {
    fn attach(&self, name: &str, dir: &Path) -> Result<Box<dyn Attachment>, String> {
        let path = dir.join(SOCKET_NAME);
        let listener = bind(&path)?;
        let token = auth::new_token()?;
        let id = self.shared.registry.insert(
            name,
            token.clone(),
            self.shared.options.max_concurrent_calls,
        );
        let (stop, stopped) = oneshot::channel();
        let pid = Arc::new(OnceLock::new());
        let socket = Socket {
            id,
            plugin: name.to_owned(),
            pid: pid.clone(),
        };
        tokio::spawn(accept_loop(self.shared.clone(), listener, socket, stopped));
        Ok(Box::new(Hosted {
            shared: self.shared.clone(),
            id,
            pid,
            path,
            token,
            stop: Some(stop),
        }))
    }
}

/// Binds `path`, mode 0600 (inside a 0700 directory, so nobody else could
/// reach it even before the chmod).
fn bind(path: &Path) -> Result<UnixListener, String> {
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot bind the host socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    Ok(listener)
}

/// One launch's socket and token; dropped when its process has exited.
struct Hosted {
    shared: Arc<Shared>,
    /// Its entry in the registry.
    id: u64,
    /// The plugin's pid, once spawned (shared with the accept loop).
    pid: Arc<OnceLock<u32>>,
    /// The socket.
    path: PathBuf,
    /// The token, for the plugin's environment only: never logged.
    token: String,
    /// Ends the accept loop (dropping it does too).
    stop: Option<oneshot::Sender<()>>,
}

impl Attachment for Hosted {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_HOST_SOCKET.to_owned(), self.path.display().to_string()),
            (ENV_HOST_TOKEN.to_owned(), self.token.clone()),
        ]
    }

    fn spawned(&self, pid: u32) {
        let _ = self.pid.set(pid);
    }

    fn described(&self, manifest: &Manifest, granted: &[String]) {
        self.shared.registry.describe(
            self.id,
            Described {
                manifest: Arc::new(manifest.clone()),
                granted: granted.into(),
            },
        );
    }
}

impl Drop for Hosted {
    /// The token is refused from now on, the loop ends (closing the
    /// listener and every connection) and the socket file goes.
    fn drop(&mut self) {
        self.shared.registry.revoke(self.id);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whose socket an accept loop serves.
struct Socket {
    /// The instance's registry id.
    id: u64,
    /// The instance name, for the log.
    plugin: String,
    /// Its plugin's pid, once spawned.
    pid: Arc<OnceLock<u32>>,
}

impl Socket {
    /// Whether the peer of `stream` is the plugin's process or one of its
    /// descendants; says why not otherwise.
    fn admits(&self, stream: &UnixStream) -> Result<(), String> {
        let plugin = *self
            .pid
            .get()
            .ok_or("the plugin has not been spawned yet")?;
        let peer = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .and_then(|pid| u32::try_from(pid).ok())
            .ok_or("the peer's pid is unknown")?;
        if descends_from(peer, plugin) {
            Ok(())
        } else {
            Err(format!(
                "pid {peer} is not the plugin's process ({plugin}) or one of its descendants"
            ))
        }
    }
}

/// Accepts connections on `listener` and serves each, until `stopped`;
/// then drops the listener and aborts every connection.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: UnixListener,
    socket: Socket,
    mut stopped: oneshot::Receiver<()>,
) {
    // A stream may hold a request of up to 4 MiB while it is received,
    // before its call is admitted: no more streams than calls in flight.
    let streams = u32::try_from(shared.options.max_concurrent_calls.max(1)).unwrap_or(u32::MAX);
    // And a request still not received when even a call that waited for
    // `Describe` would have ended is reset, its buffer freed.
    let bound = shared.options.describe_wait + shared.options.call_timeout + RECEIVE_MARGIN;
    let routes = Timeout::new(
        Routes::new(HostServiceServer::new(HostServer::on_socket(
            shared, socket.id,
        ))),
        bound,
    );
    let mut connections = JoinSet::new();
    let mut refused = 0_u32;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if let Err(why) = socket.admits(&stream) => {
                    refused += 1;
                    // A few lines, not a flood: whoever was refused may retry.
                    if refused <= REFUSALS_LOGGED {
                        tracing::warn!(plugin = %socket.plugin, "host socket: refused a connection: {why}");
                    }
                    drop(stream);
                }
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    connections.spawn(serve_connection(stream, routes.clone(), streams));
                }
                Ok((stream, _)) => {
                    tracing::debug!("host socket: {MAX_CONNECTIONS} connections open; closing another");
                    drop(stream);
                }
                Err(err) => {
                    tracing::warn!("host socket: cannot accept a connection: {err}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

/// Serves one connection over HTTP/2 (gRPC) until it closes, with at most
/// `streams` streams open on it at once.
async fn serve_connection(stream: UnixStream, routes: Timeout<Routes>, streams: u32) {
    let service = TowerToHyperService::new(routes);
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(streams)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        tracing::debug!("host socket: connection ended: {err}");
    }
}
