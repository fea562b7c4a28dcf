//! The server's incoming connections: each accepted stream carries the
//! verdict on its peer ([`Admission`]), which every request then finds in
//! its extensions. A refused peer still gets its connection, so that each
//! of its calls is answered with a clear `PERMISSION_DENIED` instead of a
//! reset it could not explain.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::server::Connected;

use crate::peer::{Access, Peer};

/// The verdict on a connection's peer, in every request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Admission(Arc<Result<Peer, String>>);

impl Admission {
    /// `Ok` if the peer may use the control API; the refusal otherwise.
    pub(crate) fn verdict(&self) -> Result<&Peer, &str> {
        self.0.as_ref().as_ref().map_err(String::as_str)
    }
}

/// An accepted control connection and its admission.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The stream.
    stream: UnixStream,
    /// The verdict on its peer.
    admission: Admission,
}

impl Connected for Connection {
    type ConnectInfo = Admission;

    fn connect_info(&self) -> Admission {
        self.admission.clone()
    }
}

/// How long to pause after a failed accept (out of descriptors, say), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Every connection to `listener`, each judged by `access`; a refused one
/// is logged with the uid and pid it came from.
pub(crate) fn accept(
    listener: UnixListener,
    access: Access,
) -> impl Stream<Item = io::Result<Connection>> {
    futures_util::stream::unfold((listener, access), |(listener, access)| async move {
        let accepted = match listener.accept().await {
            Ok((stream, _)) => Ok(judge(stream, &access)),
            Err(err) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                Err(err)
            }
        };
        Some((accepted, (listener, access)))
    })
}

/// `stream` with the verdict on its peer.
fn judge(stream: UnixStream, access: &Access) -> Connection {
    let verdict = match Peer::of(&stream) {
        Ok(peer) => match access.admit(&peer) {
            Ok(()) => Ok(peer),
            Err(refusal) => {
                tracing::warn!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "control connection refused: {refusal}"
                );
                Err(refusal)
            }
        },
        Err(err) => {
            tracing::warn!("control connection refused: its credentials are unreadable: {err}");
            Err(format!(
                "the daemon cannot read this connection's credentials ({err}), so it refuses it"
            ))
        }
    };
    Connection {
        stream,
        admission: Admission(Arc::new(verdict)),
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
