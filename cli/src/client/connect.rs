//! Connecting to the daemon: resolve the socket, dial it (bounded), check
//! that the process on the other end runs as us (or root), and hand the
//! connection to tonic. Every later redial is checked the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::control::v1::control_service_client::ControlServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::errors::{dial_error, foreign_peer};

/// How long a dial may take: a daemon answers at once or not at all.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a running daemon.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// Its control socket, for messages.
    pub(crate) socket: PathBuf,
    /// The control API.
    pub(crate) rpc: ControlServiceClient<Channel>,
}

impl Daemon {
    /// Connects to the daemon on `explicit` (`--control-socket`), else on
    /// the default socket; the error says how to start one when none
    /// listens.
    pub(crate) async fn connect(explicit: Option<&Path>) -> anyhow::Result<Daemon> {
        let socket = outboard_daemon::socket::resolve(explicit)?;
        let first = dial(&socket).await.map_err(|e| dial_error(&socket, e))?;
        // The first connection is the one just checked; a redial (after
        // the daemon restarted, say) is checked again in `dial`.
        let first = Arc::new(Mutex::new(Some(first)));
        let path = socket.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let (path, first) = (path.clone(), first.clone());
            async move {
                let ready = first.lock().ok().and_then(|mut f| f.take());
                let stream = match ready {
                    Some(stream) => stream,
                    None => dial(&path).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        // The URI is required by the API but unused: the connector always
        // dials the socket.
        let channel = Endpoint::from_static("http://outboard.daemon")
            .connect_with_connector(connector)
            .await
            .map_err(|e| anyhow::anyhow!("{}", super::errors::chain(&e)))?;
        Ok(Daemon {
            socket,
            rpc: ControlServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        })
    }
}

/// Dials `socket` and checks the peer: a daemon of another user (a socket
/// planted where ours should be) would be sent our contexts, environment
/// included, so it is refused before anything is written.
async fn dial(socket: &Path) -> std::io::Result<UnixStream> {
    let stream = tokio::time::timeout(DIAL_TIMEOUT, UnixStream::connect(socket))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}",
                    humantime::format_duration(DIAL_TIMEOUT)
                ),
            )
        })??;
    let peer = stream.peer_cred()?.uid();
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if peer != me && peer != 0 {
        return Err(foreign_peer(peer));
    }
    Ok(stream)
}
