//! The invoke fast path (`invoke-fastpath/1`, PROTOCOL.md §18): `Invoke`
//! as length-prefixed protobuf frames on a second Unix socket, for a host
//! that offers it with `OUTBOARD_FASTPATH_SOCKET`.
//!
//! - `listener`: accepts connections until the plugin stops, and says when
//!   the last one has closed ([`FastPath`]).
//! - `connection`: one connection — the HELLO and its token, then a reader
//!   that starts a task per INVOKE, drops a task per CANCEL, and answers
//!   bad frames with ERROR frames.
//! - `frames`: frames parsed in place from one read buffer.
//! - `writer`: answers encoded into one buffer, sent one write per wake.
//!
//! The call itself — the request checked, the deadline, the shutdown grace,
//! the span, the answer or status — is `PluginServer::invoke_call`, the
//! same code the gRPC `Invoke` runs.

mod connection;
mod frames;
mod listener;
mod writer;

pub(crate) use listener::FastPath;

use tokio::sync::watch;

use crate::service::StopRequest;

/// Waits until the plugin starts stopping (or nothing can tell it any
/// more: the sender is gone, which happens only as the server ends).
async fn stop_begun(stop: &mut watch::Receiver<Option<StopRequest>>) {
    let _ = stop.wait_for(Option::is_some).await;
}
