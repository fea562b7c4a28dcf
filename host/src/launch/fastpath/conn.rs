//! One fast-path connection: the calls waiting by id, the frames queued for
//! the writer, and the two tasks that move bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use outboard_proto::fastpath::{HEADER_LEN, Header, Kind, MAX_PAYLOAD, cancel_frame};
use outboard_proto::v1;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, oneshot, watch};

use super::encode::InvokeFrame;
use crate::launch::call::Failure;
use crate::output::Escaped;

/// How many bytes the reader asks the kernel for at once: a few hundred
/// answers. Every plugin's connection holds one, zeroed, for as long as it
/// runs: at 64 KiB, 100 plugins cost the host 6 MB of RSS.
const READ_BUFFER: usize = 8 * 1024;

/// A batch buffer larger than this is let go after its write rather than
/// kept for the next.
const KEEP_BATCH: usize = 1024 * 1024;

/// How many bytes of frames may wait for the writer before a new call
/// waits for room: a plugin that stops reading holds the host's memory
/// to this (and one frame), as HTTP/2's flow control does on gRPC.
pub(super) const QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// What the plugin answered to one call.
type Answer = Result<v1::InvokeResponse, Failure>;

/// The state the calls, the reader and the writer share.
#[derive(Debug)]
pub(super) struct Shared {
    /// The calls waiting for an answer, by id, and the reason the
    /// connection closed once it has: under one lock, so that no call is
    /// registered after the close failed the others.
    calls: Mutex<Calls>,
    /// Frames queued for the writer.
    out: Mutex<Vec<u8>>,
    /// Wakes the writer: frames queued, or the connection closed.
    wake: Notify,
    /// Wakes the calls waiting for room in `out`: the writer wrote, or the
    /// connection closed.
    room: Notify,
    /// Why the connection closed, once it has.
    closed: watch::Sender<Option<String>>,
    /// The next call's id; ids start at 1 (0 is the connection's).
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct Calls {
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
    closed: Option<String>,
}

/// A frame as read: its header and its payload, or the payload's length
/// when it was over [`MAX_PAYLOAD`] (read and thrown away).
pub(super) struct Frame {
    pub(super) header: Header,
    pub(super) payload: Result<Vec<u8>, u32>,
}

/// A call registered and not yet answered: dropped early (timeout, caller
/// gone), it sends CANCEL.
struct Pending<'a> {
    shared: &'a Shared,
    id: u64,
    /// False once the answer came (or the close failed the call).
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut calls = self.shared.lock_calls();
        // Gone from the map: answered, or the connection closed.
        if calls.waiting.remove(&self.id).is_some() && calls.closed.is_none() {
            drop(calls);
            self.shared.queue(&cancel_frame(self.id));
        }
    }
}

impl Shared {
    /// Takes over `stream`, past the HELLO: starts its reader and writer.
    pub(super) fn start(stream: UnixStream) -> Arc<Shared> {
        let (closed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            calls: Mutex::default(),
            out: Mutex::default(),
            wake: Notify::new(),
            room: Notify::new(),
            closed,
            next: AtomicU64::new(1),
        });
        let (read, write) = stream.into_split();
        tokio::spawn(reader(shared.clone(), read));
        tokio::spawn(writer(shared.clone(), write));
        shared
    }

    /// A fresh call id.
    pub(super) fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `frame`, the INVOKE of call `id`, and waits for its answer.
    pub(super) async fn call(&self, id: u64, frame: InvokeFrame<'_>) -> Answer {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        // Registered and queued together, once there is room: a call that
        // gives up while waiting was never sent and needs no CANCEL.
        while !self.try_send(id, &frame, &mut tx)? {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            // The writer may have made room before this waited.
            if self.try_send(id, &frame, &mut tx)? {
                break;
            }
            room.await;
        }
        let mut pending = Pending {
            shared: self,
            id,
            armed: true,
        };
        // A permit is stored if the writer is busy: no wake is lost.
        self.wake.notify_one();
        drop(frame);
        let answer = rx.await;
        // Answered, or failed by the close: nothing to cancel either way.
        pending.armed = false;
        match answer {
            Ok(answer) => answer,
            Err(_) => Err(Failure::Closed(self.reason())),
        }
    }

    /// Registers call `id` with `tx` (taken) and queues its `frame` if
    /// fewer than [`QUEUE_LIMIT`] bytes wait for the writer; `Ok(false)`
    /// if they do not, the call's error if the connection has closed.
    fn try_send(
        &self,
        id: u64,
        frame: &InvokeFrame<'_>,
        tx: &mut Option<oneshot::Sender<Answer>>,
    ) -> Result<bool, Failure> {
        let mut calls = self.lock_calls();
        if let Some(reason) = &calls.closed {
            return Err(Failure::Closed(reason.clone()));
        }
        let mut out = self.lock_out();
        if out.len() >= QUEUE_LIMIT {
            return Ok(false);
        }
        frame.write_to(&mut out);
        if let Some(tx) = tx.take() {
            calls.waiting.insert(id, tx);
        }
        Ok(true)
    }

    /// Resolves once the connection has closed, with why.
    pub(super) async fn closed(&self) -> String {
        let mut closed = self.closed.subscribe();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The sender lives in `self`: not reached.
            Err(_) => self.reason(),
        }
    }

    /// How many bytes of frames wait for the writer.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many calls wait for their answer.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.lock_calls().waiting.len()
    }

    /// True once the connection has closed.
    pub(super) fn is_closed(&self) -> bool {
        self.lock_calls().closed.is_some()
    }

    /// Closes the connection for `reason` (the first reason stays): every
    /// call waiting fails, the writer and the reader end.
    pub(super) fn close(&self, reason: String) {
        let waiting = {
            let mut calls = self.lock_calls();
            if calls.closed.is_some() {
                return;
            }
            calls.closed = Some(reason.clone());
            std::mem::take(&mut calls.waiting)
        };
        // Their receivers now read the reason.
        drop(waiting);
        self.closed.send_replace(Some(reason));
        self.wake.notify_one();
        self.room.notify_waiters();
    }

    fn reason(&self) -> String {
        self.lock_calls().closed.clone().unwrap_or_default()
    }

    fn lock_calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_out(&self) -> MutexGuard<'_, Vec<u8>> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `bytes` for the writer, whatever is queued already (a CANCEL:
    /// one per call sent, so bounded as the calls are), and wakes it.
    fn queue(&self, bytes: &[u8]) {
        self.lock_out().extend_from_slice(bytes);
        // A permit is stored if the writer is busy: no wake is lost.
        self.wake.notify_one();
    }

    /// Hands `frame`, read from the plugin, to the call it answers.
    fn route(&self, frame: Frame) {
        let Frame { header, payload } = frame;
        if header.id == 0 {
            // About the connection: an ERROR means the plugin closes it.
            if header.kind == Kind::Error {
                let why = match payload.as_deref().map(v1::FastpathError::decode) {
                    Ok(Ok(e)) => format!(
                        "it sent ERROR {:?}: {}",
                        tonic::Code::from(e.code),
                        Escaped::line(&e.message)
                    ),
                    _ => "it sent an ERROR for the connection".to_owned(),
                };
                self.close(why);
            }
            return;
        }
        let Some(call) = self.lock_calls().waiting.remove(&header.id) else {
            // Cancelled, or never asked: ignored.
            return;
        };
        let _ = call.send(answer(header, payload));
    }
}

/// What a frame for a call in flight means for it.
fn answer(header: Header, payload: Result<Vec<u8>, u32>) -> Answer {
    let invalid = |what: String| Err(Failure::Invalid(format!("{what} on its fast path")));
    let payload = match payload {
        Ok(payload) => payload,
        Err(len) => {
            return invalid(format!(
                "a frame of {len} bytes, over the {MAX_PAYLOAD}-byte limit,"
            ));
        }
    };
    match header.kind {
        Kind::Result => match v1::InvokeResponse::decode(payload.as_slice()) {
            Ok(response) => Ok(response),
            Err(e) => invalid(format!("a RESULT that does not decode ({e})")),
        },
        Kind::Error => match v1::FastpathError::decode(payload.as_slice()) {
            // A failure that says it is not one: no status to report (gRPC
            // never shows an OK status as a failure either).
            Ok(e) if e.code == tonic::Code::Ok as i32 => invalid(format!(
                "an ERROR with code 0 (OK): {}",
                Escaped::line(&e.message)
            )),
            // The status the same call fails with on gRPC.
            Ok(e) => Err(Failure::Status(tonic::Status::new(
                tonic::Code::from(e.code),
                e.message,
            ))),
            Err(e) => invalid(format!("an ERROR that does not decode ({e})")),
        },
        other => invalid(format!("a frame of kind {}", other.to_byte())),
    }
}

/// Reads frames and routes them until EOF, an error, or the close.
async fn reader(shared: Arc<Shared>, read: OwnedReadHalf) {
    let mut read = BufReader::with_capacity(READ_BUFFER, read);
    let mut closed = shared.closed.subscribe();
    let reason = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut read) => frame,
            _ = closed.wait_for(Option::is_some) => return,
        };
        match frame {
            Ok(Some(frame)) => shared.route(frame),
            Ok(None) => break "end of stream".to_owned(),
            Err(e) => break format!("reading failed: {e}"),
        }
    };
    shared.close(reason);
}

/// Writes what is queued, all of it in one write per wake, until the
/// close or an error.
async fn writer(shared: Arc<Shared>, mut write: OwnedWriteHalf) {
    let mut batch = Vec::new();
    let mut closed = shared.closed.subscribe();
    loop {
        if shared.is_closed() {
            return;
        }
        std::mem::swap(&mut *shared.lock_out(), &mut batch);
        if batch.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        // A plugin that does not read keeps this write waiting: the close
        // ends it all the same, and the socket with it.
        let written = tokio::select! {
            written = write.write_all(&batch) => written,
            _ = closed.wait_for(Option::is_some) => return,
        };
        if let Err(e) = written {
            shared.close(format!("writing failed: {e}"));
            return;
        }
        shared.room.notify_waiters();
        batch.clear();
        if batch.capacity() > KEEP_BATCH {
            batch = Vec::new();
        }
    }
}

/// The next frame on `read`; `None` at EOF between frames. A payload over
/// [`MAX_PAYLOAD`] is read and thrown away.
pub(super) async fn read_frame(
    read: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match read.read(&mut head[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection ended inside a frame's header",
                ));
            }
            n => filled += n,
        }
    }
    let header = Header::decode(&head);
    if header.too_long() {
        let skipped = tokio::io::copy(
            &mut (&mut *read).take(u64::from(header.len)),
            &mut tokio::io::sink(),
        )
        .await?;
        if skipped < u64::from(header.len) {
            return Err(inside_payload());
        }
        return Ok(Some(Frame {
            header,
            payload: Err(header.len),
        }));
    }
    let mut payload = vec![0u8; header.len as usize];
    read.read_exact(&mut payload)
        .await
        .map_err(|_| inside_payload())?;
    Ok(Some(Frame {
        header,
        payload: Ok(payload),
    }))
}

fn inside_payload() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the connection ended inside a frame's payload",
    )
}
