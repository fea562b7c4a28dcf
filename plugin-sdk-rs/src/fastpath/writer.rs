//! Writing frames: every task of a connection encodes its frame straight
//! into one shared buffer, and one writer task sends whatever has piled up
//! with one `write` per wake — a burst of answers leaves in one syscall.

use std::sync::Mutex;

use outboard_proto::fastpath::{HEADER_LEN, Header, Kind, MAX_PAYLOAD};
use outboard_proto::v1;
use prost::Message;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tonic::{Code, Status};

/// A buffer that grew past this (a large answer) is not kept for reuse.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// The longest error message sent whole: room is left for the rest of
/// the `FastpathError` and the note that it was cut.
const MAX_ERROR_MESSAGE: usize = MAX_PAYLOAD as usize - 1024;

/// Past this many bytes queued or being written, the connection stops
/// taking new frames until the host reads: a host that sends calls but
/// does not read their answers cannot make the plugin buffer without end.
/// Two of the largest frames, so that one large answer never stalls it.
const HIGH_WATER: usize = 2 * MAX_PAYLOAD as usize;

/// The frames waiting to be written on one connection.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Encoded frames not yet handed to the writer, and whether the
    /// connection is closing.
    state: Mutex<Pending>,
    /// Wakes the writer: something was queued or the outbox closed.
    wake: Notify,
    /// Wakes the reader: the writer finished a write, so the backlog
    /// shrank.
    room: Notify,
}

/// What [`Outbox::state`] guards.
#[derive(Debug, Default)]
struct Pending {
    /// Whole frames, back to back.
    frames: Vec<u8>,
    /// The size of the batch the writer is writing.
    writing: usize,
    /// `true` once [`Outbox::close`] was called: the writer sends what is
    /// queued, then shuts the write half down; later frames are dropped.
    closed: bool,
}

impl Outbox {
    /// Queues one frame: `kind` for call `id` with `message` as payload.
    pub(crate) fn push(&self, kind: Kind, id: u64, message: &impl Message) {
        let len = message.encoded_len();
        self.push_encoded(kind, id, len, |buf| {
            message
                .encode(buf)
                .expect("the buffer was reserved for the message");
        });
    }

    /// Queues an ERROR frame for call `id`. A message that would not fit
    /// in a frame (a plugin's error can say anything) is cut short.
    pub(crate) fn error(&self, id: u64, code: Code, message: impl Into<String>) {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE {
            let mut end = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("… (cut short: over the frame limit)");
        }
        let error = v1::FastpathError {
            code: code as i32,
            message,
        };
        self.push(Kind::Error, id, &error);
    }

    /// Queues a call's answer: RESULT with the response, or ERROR with the
    /// status the call failed with. A response over the size limit is not
    /// sent: the call fails with `RESOURCE_EXHAUSTED` instead.
    pub(crate) fn answer(&self, id: u64, answer: &Result<v1::InvokeResponse, Status>) {
        match answer {
            Ok(response) => {
                let len = response.encoded_len();
                if len > MAX_PAYLOAD as usize {
                    self.error(
                        id,
                        Code::ResourceExhausted,
                        format!(
                            "the plugin's answer of {len} bytes is over the {MAX_PAYLOAD}-byte \
                             frame limit"
                        ),
                    );
                } else {
                    self.push(Kind::Result, id, response);
                }
            }
            Err(status) => self.error(id, status.code(), status.message()),
        }
    }

    /// Queues a frame whose payload of `len` bytes `encode` writes.
    fn push_encoded(&self, kind: Kind, id: u64, len: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        let header = Header {
            len: u32::try_from(len).expect("callers keep payloads under MAX_PAYLOAD"),
            kind,
            id,
        };
        let mut pending = self.state.lock().expect("no code panics holding this lock");
        if pending.closed {
            return;
        }
        let was_empty = pending.frames.is_empty();
        pending.frames.reserve(HEADER_LEN + len);
        pending.frames.extend_from_slice(&header.encode());
        encode(&mut pending.frames);
        drop(pending);
        // A non-empty buffer already has a wake on the way.
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Whether more is queued or being written than the connection should
    /// hold: the reader then waits for [`Outbox::room`] before taking more
    /// frames.
    pub(crate) fn backlogged(&self) -> bool {
        let pending = self.state.lock().expect("no code panics holding this lock");
        pending.frames.len() + pending.writing > HIGH_WATER
    }

    /// Waits until the writer has written a batch.
    pub(crate) async fn room(&self) {
        self.room.notified().await;
    }

    /// Sends what is queued, then shuts the write half down.
    pub(crate) fn close(&self) {
        self.state
            .lock()
            .expect("no code panics holding this lock")
            .closed = true;
        self.wake.notify_one();
    }

    /// Takes what is queued into `spare` (empty), leaving the outbox
    /// `spare`'s old allocation to fill: two buffers, no allocation per batch.
    fn take(&self, spare: &mut Vec<u8>) -> Taken {
        let mut pending = self.state.lock().expect("no code panics holding this lock");
        if !pending.frames.is_empty() {
            std::mem::swap(&mut pending.frames, spare);
            pending.writing = spare.len();
            Taken::Frames
        } else if pending.closed {
            Taken::Closed
        } else {
            Taken::Nothing
        }
    }
}

/// What the writer found in the outbox.
enum Taken {
    /// Frames, now in the writer's buffer.
    Frames,
    /// Nothing, and nothing more will come.
    Closed,
    /// Nothing yet.
    Nothing,
}

/// The writer task: sends the outbox's frames until it is closed and
/// empty, then shuts `write` down. Returns the first write error: the
/// connection is then dead.
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    mut write: W,
    outbox: std::sync::Arc<Outbox>,
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    loop {
        match outbox.take(&mut batch) {
            Taken::Frames => {
                write.write_all(&batch).await?;
                outbox
                    .state
                    .lock()
                    .expect("no code panics holding this lock")
                    .writing = 0;
                outbox.room.notify_one();
                batch.clear();
                if batch.capacity() > KEEP_CAPACITY {
                    batch = Vec::new();
                }
            }
            Taken::Closed => return write.shutdown().await,
            Taken::Nothing => outbox.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use outboard_proto::fastpath::error_frame;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn queued_frames_leave_in_order_and_close_ends_the_stream() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let outbox = Arc::new(Outbox::default());
        outbox.error(1, Code::InvalidArgument, "one");
        outbox.error(2, Code::Unavailable, "two");
        let writer = tokio::spawn(run(ours, outbox.clone()));
        outbox.answer(3, &Err(Status::deadline_exceeded("late")));
        outbox.close();
        outbox.error(4, Code::Internal, "after the close: dropped");
        writer.await.expect("no panic").expect("written");
        let mut wire = Vec::new();
        theirs.read_to_end(&mut wire).await.expect("read");
        let expected: Vec<u8> = [
            error_frame(1, 3, "one"),
            error_frame(2, 14, "two"),
            error_frame(3, 4, "late"),
        ]
        .concat();
        assert_eq!(wire, expected);
    }

    #[tokio::test]
    async fn an_error_message_too_long_for_a_frame_is_cut_short() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let outbox = Arc::new(Outbox::default());
        // Multi-byte characters, so that the cut must find a boundary.
        let long = "é".repeat(MAX_PAYLOAD as usize);
        outbox.answer(6, &Err(Status::internal(long)));
        outbox.close();
        let writer = tokio::spawn(run(ours, outbox));
        let mut wire = Vec::new();
        theirs.read_to_end(&mut wire).await.expect("read");
        writer.await.expect("no panic").expect("written");
        assert!(
            wire.len() - HEADER_LEN <= MAX_PAYLOAD as usize,
            "{}",
            wire.len()
        );
        let error = v1::FastpathError::decode(&wire[HEADER_LEN..]).expect("decodes");
        assert_eq!(error.code, Code::Internal as i32);
        assert!(error.message.starts_with("éé"));
        assert!(
            error
                .message
                .ends_with("é… (cut short: over the frame limit)"),
            "…{}",
            error.message.chars().rev().take(40).collect::<String>()
        );
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_becomes_resource_exhausted() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let outbox = Arc::new(Outbox::default());
        let response = v1::InvokeResponse {
            message: "m".repeat(MAX_PAYLOAD as usize),
            ..Default::default()
        };
        let len = response.encoded_len();
        outbox.answer(5, &Ok(response));
        outbox.close();
        run(ours, outbox).await.expect("written");
        let mut wire = Vec::new();
        theirs.read_to_end(&mut wire).await.expect("read");
        assert_eq!(
            wire,
            error_frame(
                5,
                8,
                format!("the plugin's answer of {len} bytes is over the 4194304-byte frame limit")
            )
        );
    }
}
