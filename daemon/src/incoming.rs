//! The server's incoming connections: each accepted stream carries the
//! verdict on its peer ([`Admission`]), which every request then finds in
//! its extensions. A refused peer still gets its connection, so that each
//! of its calls is answered with a clear `PERMISSION_DENIED` instead of a
//! reset it could not explain.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    /// Its place under the cap, given back when it closes.
    _slot: Slot,
}

/// Connections from admitted peers open at once; more are closed at once.
pub(crate) const MAX_ADMITTED: usize = 256;

/// Connections from refused peers open at once: each only learns that it
/// is refused, so a few are enough, and more would be another user's way
/// to use up the daemon's descriptors.
pub(crate) const MAX_REFUSED: usize = 8;

/// How many connections are open, admitted and refused, and when a refusal
/// was last logged.
#[derive(Debug, Default)]
struct Counts {
    admitted: AtomicUsize,
    refused: AtomicUsize,
    /// When the last refusal was logged, and how many were not since.
    logged: Mutex<Option<(Instant, usize)>>,
}

/// One open connection's place under its cap.
#[derive(Debug)]
struct Slot {
    counts: Arc<Counts>,
    refused: bool,
}

impl Counts {
    /// A place for a connection, or `None` past the cap.
    fn take(self: &Arc<Counts>, refused: bool) -> Option<Slot> {
        let (open, cap) = if refused {
            (&self.refused, MAX_REFUSED)
        } else {
            (&self.admitted, MAX_ADMITTED)
        };
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()?;
        Some(Slot {
            counts: self.clone(),
            refused,
        })
    }

    /// Logs `what` unless a refusal was logged less than a second ago (then
    /// it is counted, and the next line says how many were not logged).
    fn warn(&self, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *logged {
            Some((at, quiet)) if at.elapsed() < Duration::from_secs(1) => *quiet += 1,
            last => {
                let quiet = last.map_or(0, |(_, quiet)| quiet);
                *last = Some((Instant::now(), 0));
                if quiet > 0 {
                    tracing::warn!(
                        "control connection refused: {what} (and {quiet} more not logged)"
                    );
                } else {
                    tracing::warn!("control connection refused: {what}");
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let open = if self.refused {
            &self.counts.refused
        } else {
            &self.counts.admitted
        };
        open.fetch_sub(1, Ordering::AcqRel);
    }
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
    let counts = Arc::new(Counts::default());
    let state = (listener, access, counts);
    futures_util::stream::unfold(state, |(listener, access, counts)| async move {
        let accepted = loop {
            match listener.accept().await {
                Ok((stream, _)) => match judge(stream, &access, &counts) {
                    Some(connection) => break Ok(connection),
                    // Over the cap: closed already; wait for the next.
                    None => continue,
                },
                Err(err) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    break Err(err);
                }
            }
        };
        Some((accepted, (listener, access, counts)))
    })
}

/// `stream` with the verdict on its peer, or `None` (the stream dropped,
/// which closes it) if the connections open like it are at their cap.
fn judge(stream: UnixStream, access: &Access, counts: &Arc<Counts>) -> Option<Connection> {
    let verdict = match Peer::of(&stream) {
        Ok(peer) => access
            .admit(&peer)
            .map(|()| peer)
            .inspect_err(|refusal| counts.warn(refusal)),
        Err(err) => {
            counts.warn(&format!("its credentials are unreadable: {err}"));
            Err(format!(
                "the daemon cannot read this connection's credentials ({err}), so it refuses it"
            ))
        }
    };
    let Some(slot) = counts.take(verdict.is_err()) else {
        let cap = if verdict.is_err() {
            MAX_REFUSED
        } else {
            MAX_ADMITTED
        };
        counts.warn(&format!(
            "{cap} such connections are open already; closed at once"
        ));
        return None;
    };
    Some(Connection {
        stream,
        admission: Admission(Arc::new(verdict)),
        _slot: slot,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_connection_has_its_cap_and_a_closed_one_frees_its_place() {
        let counts = Arc::new(Counts::default());
        let refused: Vec<Slot> = (0..MAX_REFUSED)
            .map(|_| counts.take(true).expect("under the cap"))
            .collect();
        assert!(
            counts.take(true).is_none(),
            "one refused connection too many"
        );
        // Refused peers do not take admitted ones' places.
        let admitted = counts
            .take(false)
            .expect("admitted peers have their own cap");
        drop(refused);
        assert_eq!(counts.refused.load(Ordering::Acquire), 0);
        assert!(
            counts.take(true).is_some(),
            "places come back when connections close"
        );
        drop(admitted);
        let all: Vec<Slot> = (0..MAX_ADMITTED)
            .map(|_| counts.take(false).expect("under the cap"))
            .collect();
        assert!(counts.take(false).is_none());
        assert_eq!(all.len(), MAX_ADMITTED);
    }
}
