//! One fast-path connection: the HELLO, then a reader that turns INVOKE
//! frames into one task per call, CANCEL frames into dropped tasks, and bad
//! frames into ERROR frames, while the writer sends the answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outboard_proto::fastpath::{self, Header, Kind, MAX_PAYLOAD};
use outboard_proto::v1;
use prost::Message;
use tokio::io::AsyncRead;
use tokio::net::UnixStream;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use tonic::Code;

use super::frames::{Frame, FrameReader};
use super::writer::{self, Outbox};
use crate::Plugin;
use crate::auth::constant_time_eq;
use crate::service::{PluginServer, StopRequest};

/// How long a new connection may take to send its HELLO.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

/// The longest HELLO payload read: a token and a version take far less,
/// and a peer that has not shown the token gets no 4 MiB buffer.
const HELLO_MAX: u32 = 4096;

/// What every connection of one server shares.
pub(crate) struct Shared<P> {
    /// The plugin service: the one implementation of `Invoke`.
    pub(crate) server: Arc<PluginServer<P>>,
    /// `OUTBOARD_TOKEN`, which the HELLO must carry.
    pub(crate) token: Arc<str>,
    /// Set once, when the plugin starts stopping.
    pub(crate) stop: watch::Receiver<Option<StopRequest>>,
}

/// One call in flight.
#[derive(Debug)]
struct Call {
    /// Tells this call from an earlier one that had the same id.
    seq: u64,
    /// Cancels the call's task.
    task: AbortHandle,
}

/// The calls in flight on one connection, by id.
#[derive(Debug, Default)]
struct Calls {
    /// The calls.
    by_id: HashMap<u64, Call>,
    /// The next call's [`Call::seq`].
    next_seq: u64,
}

/// What a connection's reader and its call tasks share.
struct Connection<P> {
    /// The plugin service.
    server: Arc<PluginServer<P>>,
    /// The calls in flight. Its lock also orders a call's answer against a
    /// CANCEL for it: once the reader has taken a call out, nothing is sent
    /// for it.
    calls: Mutex<Calls>,
    /// Notified when the last call in flight ends.
    idle: Notify,
    /// The frames to send.
    outbox: Arc<Outbox>,
}

/// What the reader does after a frame.
enum Flow {
    /// Reads on.
    Go,
    /// Closes the connection (after sending what is queued).
    Close,
}

/// Serves one accepted connection until the host closes it, it breaks, or
/// the plugin stops and its last call has been answered.
pub(crate) async fn serve<P: Plugin>(stream: UnixStream, shared: Arc<Shared<P>>) {
    let (read, write) = stream.into_split();
    let outbox = Arc::new(Outbox::default());
    // Aborted with the connection, should it be dropped (the end of the
    // grace) while the writer waits on a host that does not read.
    let mut writer = WriterTask(tokio::spawn(writer::run(write, outbox.clone())));
    let mut frames = FrameReader::new(read);

    let greeted = tokio::time::timeout(HELLO_WITHIN, hello(&mut frames, &shared.token)).await;
    let opened = match greeted {
        Ok(Ok(())) => {
            outbox.push(
                Kind::Hello,
                0,
                &v1::FastpathHello {
                    token: String::new(),
                    version: fastpath::VERSION,
                },
            );
            true
        }
        Ok(Err(Refused::Closed)) => false,
        Ok(Err(Refused::Unauthenticated(why))) => {
            tracing::warn!(why, "fast-path connection refused");
            outbox.error(0, Code::Unauthenticated, why);
            false
        }
        Err(_) => {
            let why = format!("no HELLO within {} s", HELLO_WITHIN.as_secs());
            tracing::warn!(why, "fast-path connection refused");
            outbox.error(0, Code::Unauthenticated, why);
            false
        }
    };
    if !opened {
        outbox.close();
        let _ = (&mut writer.0).await;
        return;
    }
    tracing::debug!("fast-path connection open");

    let connection = Arc::new(Connection {
        server: shared.server.clone(),
        calls: Mutex::new(Calls::default()),
        idle: Notify::new(),
        outbox: outbox.clone(),
    });
    // Whatever ends the connection, no call of it keeps running.
    let _cancel_rest = CancelOnDrop(connection.clone());
    let mut stop = shared.stop.clone();
    let mut stopping = stop.borrow().is_some();
    let why = loop {
        // Read each round, not only when the stop branch wins: an INVOKE
        // read in the same wake as the stop must be refused too.
        stopping = stopping || stop.borrow().is_some();
        let mut close = false;
        // Frames are taken only while the host reads its answers; those
        // left wait in the buffer (and the host's writes in the socket).
        let mut backlogged = outbox.backlogged();
        while !backlogged && let Some(frame) = frames.next_buffered() {
            if let Flow::Close = connection.handle(frame, stopping) {
                close = true;
                break;
            }
            backlogged = outbox.backlogged();
        }
        if close {
            break "a frame for call id 0 was refused";
        }
        if stopping && connection.is_idle() {
            break "the plugin is stopping and its last call was answered";
        }
        tokio::select! {
            read = frames.fill(), if !backlogged => match read {
                Ok(0) => break "the host closed it",
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "fast-path connection: read failed");
                    break "a read failed";
                }
            },
            () = outbox.room(), if backlogged => {}
            () = super::stop_begun(&mut stop), if !stopping => stopping = true,
            () = connection.idle.notified(), if stopping => {}
            written = &mut writer.0 => {
                if let Ok(Err(e)) = written {
                    tracing::debug!(error = %e, "fast-path connection: write failed");
                }
                tracing::debug!("fast-path connection closed: a write failed");
                return;
            }
        }
    };
    tracing::debug!(why, "fast-path connection closed");
    outbox.close();
    let _ = (&mut writer.0).await;
}

/// A connection's writer task, aborted when the connection's task ends or
/// is dropped.
struct WriterTask(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for WriterTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a connection's first frame did not open it.
enum Refused {
    /// The host closed the connection (or it broke) first: nothing to say.
    Closed,
    /// The first frame was not a HELLO with the launch token; the message
    /// goes back in an ERROR frame.
    Unauthenticated(String),
}

/// Reads the connection's first frame: a HELLO carrying the launch token.
async fn hello<R: AsyncRead + Unpin>(
    frames: &mut FrameReader<R>,
    token: &str,
) -> Result<(), Refused> {
    loop {
        if let Some(header) = frames.next_header() {
            check_hello_header(header).map_err(Refused::Unauthenticated)?;
        }
        if let Some(frame) = frames.next_buffered() {
            return check_hello(frame, token).map_err(Refused::Unauthenticated);
        }
        match frames.fill().await {
            Ok(0) | Err(_) => return Err(Refused::Closed),
            Ok(_) => {}
        }
    }
}

/// Whether a first frame with `header` may be a HELLO, before its payload
/// is read; if not, why not.
fn check_hello_header(header: Header) -> Result<(), String> {
    if header.kind != Kind::Hello {
        return Err(format!(
            "the first frame must be a HELLO carrying OUTBOARD_TOKEN, not {}",
            kind_name(header.kind)
        ));
    }
    if header.len > HELLO_MAX {
        return Err(format!(
            "a HELLO of {} bytes is over the {HELLO_MAX}-byte limit for a HELLO",
            header.len
        ));
    }
    Ok(())
}

/// Whether `frame`, whose header passed [`check_hello_header`], is a HELLO
/// carrying `token`; if not, why not.
fn check_hello(frame: Frame<'_>, token: &str) -> Result<(), String> {
    let payload = match frame {
        Frame::Whole { payload, .. } => payload,
        // Not reached: check_hello_header refused it already.
        Frame::TooLong { header } => {
            return Err(format!("a HELLO of {} bytes is too long", header.len));
        }
    };
    let hello = v1::FastpathHello::decode(payload)
        .map_err(|e| format!("malformed frame: the HELLO does not decode: {e}"))?;
    if !constant_time_eq(hello.token.as_bytes(), token.as_bytes()) {
        return Err("wrong token in the HELLO: it is not this launch's OUTBOARD_TOKEN".to_owned());
    }
    Ok(())
}

/// A frame kind as the messages name it.
fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Hello => "HELLO".to_owned(),
        Kind::Invoke => "INVOKE".to_owned(),
        Kind::Result => "RESULT".to_owned(),
        Kind::Error => "ERROR".to_owned(),
        Kind::Cancel => "CANCEL".to_owned(),
        Kind::Unknown(byte) => format!("a frame of unknown kind {byte}"),
    }
}

impl<P: Plugin> Connection<P> {
    /// Acts on one frame after the HELLO.
    fn handle(self: &Arc<Self>, frame: Frame<'_>, stopping: bool) -> Flow {
        let (header, payload) = match frame {
            Frame::Whole { header, payload } => (header, payload),
            Frame::TooLong { header } => {
                let why = format!(
                    "frame of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                    header.len
                );
                return self.refuse(header.id, Code::ResourceExhausted, why);
            }
        };
        match header.kind {
            Kind::Invoke => self.invoke(header, payload, stopping),
            Kind::Cancel => {
                self.cancel(header.id);
                Flow::Go
            }
            Kind::Unknown(byte) => {
                let why =
                    format!("unknown frame kind {byte}: this plugin speaks invoke-fastpath/1");
                self.refuse(header.id, Code::Unimplemented, why)
            }
            Kind::Hello => self.refuse(
                header.id,
                Code::InvalidArgument,
                "HELLO is only the connection's first frame",
            ),
            other @ (Kind::Result | Kind::Error) => {
                let why = format!("{} frames go from the plugin to the host", kind_name(other));
                self.refuse(header.id, Code::InvalidArgument, why)
            }
        }
    }

    /// Answers a bad frame for call `id` with an ERROR. An ERROR for id 0
    /// is about the connection, which its sender closes (PROTOCOL.md §18.6).
    fn refuse(&self, id: u64, code: Code, why: impl Into<String>) -> Flow {
        let why = why.into();
        tracing::warn!(id, code = ?code, why, "fast path: frame refused");
        self.outbox.error(id, code, why);
        if id == 0 { Flow::Close } else { Flow::Go }
    }

    /// Starts a call: its own task, registered under its id before it can
    /// answer.
    fn invoke(self: &Arc<Self>, header: Header, payload: &[u8], stopping: bool) -> Flow {
        let id = header.id;
        if id == 0 {
            return self.refuse(
                0,
                Code::InvalidArgument,
                "INVOKE with call id 0: call ids start at 1; closing the connection",
            );
        }
        let message = match v1::FastpathInvoke::decode(payload) {
            Ok(message) => message,
            Err(e) => {
                let why =
                    format!("malformed frame: the INVOKE payload is not a FastpathInvoke: {e}");
                return self.refuse(id, Code::InvalidArgument, why);
            }
        };
        let Some(request) = message.request else {
            return self.refuse(
                id,
                Code::InvalidArgument,
                "malformed frame: the FastpathInvoke has no request",
            );
        };
        if stopping {
            let why = format!(
                "{} is shutting down and takes no new calls",
                self.server.name()
            );
            return self.refuse(id, Code::Unavailable, why);
        }
        // Counted from the frame's arrival, as gRPC counts grpc-timeout; a
        // negative timeout has already run out.
        let call_deadline = message.timeout.and_then(|timeout| {
            let timeout = Duration::try_from(timeout).unwrap_or(Duration::ZERO);
            // Beyond what an Instant holds it means no deadline.
            Instant::now().checked_add(timeout)
        });

        let mut calls = self.calls.lock().expect("no code panics holding this lock");
        if calls.by_id.contains_key(&id) {
            drop(calls);
            let why = format!("call id {id} is already in flight on this connection");
            return self.refuse(id, Code::InvalidArgument, why);
        }
        let seq = calls.next_seq;
        calls.next_seq += 1;
        let connection = self.clone();
        // Spawned with the lock held: the call cannot finish (and look for
        // itself) before it is registered.
        let task = tokio::spawn(async move {
            let mut guard = Unanswered {
                connection,
                id,
                seq,
                answered: false,
            };
            let answer = guard
                .connection
                .server
                .invoke_call(request, call_deadline)
                .await;
            guard.connection.finish(id, seq, &answer);
            guard.answered = true;
        });
        calls.by_id.insert(
            id,
            Call {
                seq,
                task: task.abort_handle(),
            },
        );
        Flow::Go
    }

    /// Sends a call's answer, unless the call was cancelled meanwhile.
    fn finish(&self, id: u64, seq: u64, answer: &Result<v1::InvokeResponse, tonic::Status>) {
        let mut calls = self.calls.lock().expect("no code panics holding this lock");
        match calls.by_id.get(&id) {
            Some(call) if call.seq == seq => {}
            // Cancelled: the host wants nothing for it.
            _ => return,
        }
        calls.by_id.remove(&id);
        // Queued under the lock, so that a CANCEL the reader takes after
        // this finds no call, and one it took before left none to answer.
        self.outbox.answer(id, answer);
        if calls.by_id.is_empty() {
            self.idle.notify_one();
        }
    }

    /// Drops the call's future; nothing is sent for it. An unknown id (a
    /// call already answered) is ignored.
    fn cancel(&self, id: u64) {
        let mut calls = self.calls.lock().expect("no code panics holding this lock");
        if let Some(call) = calls.by_id.remove(&id) {
            call.task.abort();
            tracing::debug!(id, "fast path: call cancelled by the host");
            if calls.by_id.is_empty() {
                self.idle.notify_one();
            }
        }
    }

    /// Whether no call is in flight.
    fn is_idle(&self) -> bool {
        self.calls
            .lock()
            .expect("no code panics holding this lock")
            .by_id
            .is_empty()
    }
}

/// Answers a call whose task ended without answering. A CANCEL, or the
/// connection ending, takes the call out of the map before aborting its
/// task, so [`Connection::finish`] then sends nothing; what is left is a
/// panic in the plugin's code, which would otherwise leave the host
/// waiting for its timeout: it gets `INTERNAL`.
struct Unanswered<P: Plugin> {
    /// The call's connection.
    connection: Arc<Connection<P>>,
    /// The call's id.
    id: u64,
    /// The call's [`Call::seq`].
    seq: u64,
    /// Set once the call's answer went to [`Connection::finish`].
    answered: bool,
}

impl<P: Plugin> Drop for Unanswered<P> {
    fn drop(&mut self) {
        if !self.answered {
            let status = tonic::Status::internal(format!(
                "{} failed the call without an answer: the plugin panicked (its stderr says where)",
                self.connection.server.name()
            ));
            self.connection.finish(self.id, self.seq, &Err(status));
        }
    }
}

/// Cancels every call still in flight when the connection ends.
struct CancelOnDrop<P>(Arc<Connection<P>>);

impl<P> Drop for CancelOnDrop<P> {
    fn drop(&mut self) {
        let mut calls = match self.0.calls.lock() {
            Ok(calls) => calls,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (_, call) in calls.by_id.drain() {
            call.task.abort();
        }
    }
}
