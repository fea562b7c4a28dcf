//! The accept loop: HTTP/1.1 connections served by hyper, each bounded so
//! that a slow or idle client cannot hold the listener: at most
//! [`MAX_CONNECTIONS`] at once, headers read within [`HEADER_READ`], a
//! request head of at most [`MAX_BUFFER`] bytes, and a connection closed
//! (after the response in flight) once it is [`MAX_LIFE`] old. At shutdown
//! the listener closes at once; each connection finishes the response it
//! is writing, within [`FINISH`], then closes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// Connections served at once; more wait in the kernel's backlog.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers (also bounds
/// how long an idle keep-alive connection waits for the next request).
pub(crate) const HEADER_READ: Duration = Duration::from_secs(10);
/// A connection's longest life: then it is closed after its response in
/// flight (a scraper reconnects).
pub(crate) const MAX_LIFE: Duration = Duration::from_secs(60);
/// How long a connection told to close may take to finish its response
/// (to a client that reads slowly) before it is dropped.
pub(crate) const FINISH: Duration = Duration::from_secs(5);
/// The pause after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// The most a connection buffers of a request (hyper's smallest bound).
pub(crate) const MAX_BUFFER: usize = 8 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and returns once every connection has finished (each within
/// [`FINISH`]).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then a connection: at the bound, connections
        // wait in the backlog instead of being accepted and held.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: the listener itself is fine. A pause,
                    // so that running out of descriptors is not a busy
                    // loop.
                    tracing::debug!("http: accept failed: {err}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(stream, app.clone(), stopping.clone(), slot));
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it, it reaches
/// [`MAX_LIFE`], or the server stops; its slot is freed at the end.
async fn connection(
    stream: TcpStream,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(err) = result {
                tracing::debug!("http: connection ended: {err}");
            }
            return;
        }
        _ = stopping.wait_for(|s| *s) => {}
        () = tokio::time::sleep(MAX_LIFE) => {}
    }
    // The response in flight is finished, then the connection closes.
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(FINISH, served).await;
}
