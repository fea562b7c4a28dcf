//! The host's end of the invoke fast path (feature
//! [`FEATURE`](outboard_proto::fastpath::FEATURE), docs/PROTOCOL.md §18):
//! `Invoke` as length-prefixed protobuf frames on a second socket,
//! `<runtime dir>/fast.sock`, for a plugin that lists the feature when the
//! host offered it. Everything else, health included, stays on gRPC.
//!
//! One connection per plugin start, made after `Describe` and checked like
//! the gRPC socket (same directory, the plugin's process or a descendant,
//! the plugin's user); the host's HELLO carries the token and waits for the
//! plugin's. Then every call is a frame with an id of its own:
//!
//! - a writer task writes every frame queued since it last woke in one
//!   write;
//! - a reader task hands each RESULT or ERROR to the call waiting for that
//!   id;
//! - a call dropped before its answer (its timeout, or its caller gone)
//!   sends CANCEL;
//! - the first read or write error, or EOF, closes the connection: every
//!   call in flight fails, new ones fail at once, and [`FastPath::closed`]
//!   tells the supervisor, which treats it as the plugin's death.
//!
//! # Layout
//!
//! - this file: [`FastPath`], connecting and the HELLO.
//! - `conn`: the connection's shared state, the reader and the writer.
//! - `encode`: the context's bytes made once, spliced into INVOKE frames.

mod conn;
mod encode;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outboard_proto::fastpath::{self as wire, Kind, VERSION};
use outboard_proto::v1;
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::launch::call::Failure;
use crate::launch::peer::PeerCheck;
use crate::output::Escaped;

pub(crate) use encode::struct_bytes;

/// The name of the fast path's socket in a plugin's runtime directory.
pub const SOCKET_NAME: &str = "fast.sock";

/// The largest message tonic's server takes by default, which the gRPC
/// path's over-size requests run into: the fast path fails them the same.
const GRPC_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

/// An open fast-path connection to one plugin. Dropping it closes the
/// connection (both tasks end, the socket is closed).
#[derive(Debug)]
pub struct FastPath {
    conn: Arc<conn::Shared>,
}

impl FastPath {
    /// Connects to the socket `check` is for, checks its peer, and says
    /// HELLO with `token`; all within `timeout`. The error says what went
    /// wrong, for the start's report.
    pub(crate) async fn connect(
        check: &PeerCheck,
        token: &str,
        timeout: Duration,
    ) -> Result<FastPath, String> {
        let connect = async {
            check.before_dial().map_err(|refused| refused.reason)?;
            let mut stream = UnixStream::connect(check.socket())
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            check
                .after_dial(&stream)
                .map_err(|refused| refused.reason)?;
            hello(&mut stream, token).await?;
            Ok(FastPath {
                conn: conn::Shared::start(stream),
            })
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            format!(
                "no connection and HELLO within {}",
                humantime::format_duration(timeout)
            )
        })?
    }

    /// Sends `request` (its `context` left out) with `context`, the encoded
    /// `Struct`, spliced in, and waits for its answer. `timeout` goes in the
    /// frame; the caller bounds the wait (dropping this future sends
    /// CANCEL).
    pub(crate) async fn invoke(
        &self,
        request: &v1::InvokeRequest,
        context: &[u8],
        timeout: Duration,
    ) -> Result<v1::InvokeResponse, Failure> {
        let id = self.conn.next_id();
        let frame = encode::invoke_frame(id, request, context, timeout).map_err(|len| {
            // As tonic's server refuses it on gRPC.
            Failure::Status(tonic::Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: \
                 {GRPC_MESSAGE_LIMIT} bytes"
            )))
        })?;
        self.conn.call(id, frame).await
    }

    /// Resolves once the connection has closed, with why.
    pub(crate) async fn closed(&self) -> String {
        self.conn.closed().await
    }

    /// True once the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        self.conn.close("the host closed it".to_owned());
    }
}

/// The host's HELLO and the plugin's answer.
async fn hello(stream: &mut UnixStream, token: &str) -> Result<(), String> {
    let hello = v1::FastpathHello {
        token: token.to_owned(),
        version: VERSION,
    };
    stream
        .write_all(&wire::frame(Kind::Hello, 0, &hello))
        .await
        .map_err(|e| format!("cannot send HELLO: {e}"))?;
    let frame = conn::read_frame(stream)
        .await
        .map_err(|e| format!("reading its answer to HELLO failed: {e}"))?
        .ok_or("it closed the connection without answering HELLO")?;
    let payload = frame
        .payload
        .map_err(|len| format!("it answered HELLO with a frame of {len} bytes, over the limit"))?;
    match frame.header.kind {
        Kind::Hello => {
            let answer = v1::FastpathHello::decode(payload.as_slice())
                .map_err(|e| format!("its HELLO does not decode: {e}"))?;
            if answer.version != VERSION {
                return Err(format!(
                    "it answered HELLO with version {}, the host speaks {VERSION}",
                    answer.version
                ));
            }
            Ok(())
        }
        Kind::Error => {
            let error = v1::FastpathError::decode(payload.as_slice())
                .map_err(|e| format!("its ERROR does not decode: {e}"))?;
            Err(format!(
                "it refused the HELLO: {:?}: {}",
                tonic::Code::from(error.code),
                Escaped::line(&error.message)
            ))
        }
        other => Err(format!(
            "it answered HELLO with a frame of kind {}",
            other.to_byte()
        )),
    }
}

/// The fast path's socket in the runtime directory `dir`.
pub(crate) fn socket_in(dir: &Path) -> std::path::PathBuf {
    dir.join(SOCKET_NAME)
}

#[cfg(test)]
mod tests;
