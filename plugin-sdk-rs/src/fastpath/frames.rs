//! Reading frames off a connection: one buffer per connection, filled by
//! one `read` at a time and parsed in place, so that every frame a read
//! brought in is handled before the next read and no payload is copied.

use outboard_proto::fastpath::{HEADER_LEN, Header, MAX_PAYLOAD};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The buffer's size between large frames: most frames are far smaller.
const READ_CHUNK: usize = 64 * 1024;

/// What [`FrameReader::next_buffered`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A frame within the size limit, its payload in the buffer.
    Whole {
        /// The frame's header.
        header: Header,
        /// The frame's payload.
        payload: &'a [u8],
    },
    /// A frame whose length is over [`MAX_PAYLOAD`]: its payload is
    /// skipped as it arrives, never buffered.
    TooLong {
        /// The frame's header.
        header: Header,
    },
}

/// Frames from one connection's read half.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    /// The connection's read half.
    read: R,
    /// Bytes read and not yet parsed are `buf[start..end]`.
    buf: Vec<u8>,
    /// Where the unparsed bytes begin.
    start: usize,
    /// Where they end.
    end: usize,
    /// How many bytes of an over-size frame's payload are still to skip.
    discard: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `read`.
    pub(crate) fn new(read: R) -> FrameReader<R> {
        FrameReader {
            read,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            discard: 0,
        }
    }

    /// The next frame already in the buffer, if a whole one is there (or
    /// the header of an over-size one).
    pub(crate) fn next_buffered(&mut self) -> Option<Frame<'_>> {
        if self.discard > 0 {
            let skip = self.discard.min((self.end - self.start) as u64);
            self.start += skip as usize;
            self.discard -= skip;
            if self.discard > 0 {
                return None;
            }
        }
        let header = self.next_header()?;
        let available = self.end - self.start;
        if header.too_long() {
            self.start += HEADER_LEN;
            self.discard = u64::from(header.len);
            return Some(Frame::TooLong { header });
        }
        let total = HEADER_LEN + header.len as usize;
        if available < total {
            return None;
        }
        let at = self.start;
        self.start += total;
        Some(Frame::Whole {
            header,
            payload: &self.buf[at + HEADER_LEN..at + total],
        })
    }

    /// The header of the next frame, once its 16 bytes are in the buffer
    /// (its payload may not be): to refuse a frame before buffering it.
    pub(crate) fn next_header(&self) -> Option<Header> {
        if self.discard > 0 || self.end - self.start < HEADER_LEN {
            return None;
        }
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
        Some(Header::decode(&head))
    }

    /// Reads once into the buffer, making room for the frame being read
    /// first; `Ok(0)` at the end of the stream. Cancel-safe: a read that
    /// did not finish took nothing from the stream.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        self.make_room();
        let n = self.read.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Moves the unparsed bytes to the front when the room after them runs
    /// short, and grows the buffer to hold the whole frame they begin;
    /// shrinks it back once a large frame has been handled.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > READ_CHUNK {
                self.buf = vec![0; READ_CHUNK];
            }
        }
        let pending = self.end - self.start;
        // What the frame begun in the buffer needs in all.
        let needed = if self.discard == 0 && pending >= HEADER_LEN {
            let mut len = [0u8; 4];
            len.copy_from_slice(&self.buf[self.start..self.start + 4]);
            HEADER_LEN + u32::from_be_bytes(len).min(MAX_PAYLOAD) as usize
        } else {
            HEADER_LEN
        };
        if self.start > 0
            && (self.start + needed > self.buf.len() || self.buf.len() - self.end < READ_CHUNK / 4)
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.buf.len() < needed {
            self.buf.resize(needed, 0);
        }
        if self.end == self.buf.len() {
            // Whole frames not yet taken fill the buffer: read after them.
            self.buf.resize(self.buf.len() + READ_CHUNK, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outboard_proto::fastpath::{Kind, cancel_frame, error_frame};

    /// A stream that gives at most `chunk` bytes per read, as a socket may.
    struct Chunked<'a> {
        rest: &'a [u8],
        chunk: usize,
    }

    impl AsyncRead for Chunked<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.chunk.min(self.rest.len()).min(buf.remaining());
            let (now, later) = self.rest.split_at(n);
            buf.put_slice(now);
            self.rest = later;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Every frame `reader` yields until the stream ends, as owned values.
    async fn all<R: AsyncRead + Unpin>(
        mut reader: FrameReader<R>,
    ) -> Vec<(Header, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        loop {
            while let Some(frame) = reader.next_buffered() {
                out.push(match frame {
                    Frame::Whole { header, payload } => (header, Some(payload.to_vec())),
                    Frame::TooLong { header } => (header, None),
                });
            }
            if reader.fill().await.expect("in memory") == 0 {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_of_every_size_are_read_whole_and_in_order() {
        let mut wire = Vec::new();
        let big = "x".repeat(3 * READ_CHUNK + 5);
        wire.extend(error_frame(1, 3, "small"));
        wire.extend(cancel_frame(2));
        wire.extend(error_frame(3, 3, big.clone()));
        wire.extend(error_frame(4, 3, ""));
        let frames = all(FrameReader::new(&wire[..])).await;
        let ids: Vec<u64> = frames.iter().map(|(h, _)| h.id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert_eq!(frames[1].0.kind, Kind::Cancel);
        assert_eq!(frames[1].1.as_deref(), Some(&[][..]));
        let third = &error_frame(3, 3, big)[HEADER_LEN..];
        assert_eq!(frames[2].1.as_deref(), Some(third));
    }

    #[tokio::test]
    async fn frames_split_across_many_small_reads_come_out_whole() {
        let mut wire = Vec::new();
        for id in 1..=50u64 {
            wire.extend(error_frame(id, 3, "y".repeat(id as usize * 997)));
        }
        wire.extend(cancel_frame(51));
        for chunk in [1, 7, 16, 4099, READ_CHUNK + 3] {
            let frames = all(FrameReader::new(Chunked { rest: &wire, chunk })).await;
            let ids: Vec<u64> = frames.iter().map(|(h, _)| h.id).collect();
            assert_eq!(ids, (1..=51).collect::<Vec<_>>(), "chunks of {chunk}");
            for (header, payload) in &frames[..50] {
                let expected = error_frame(header.id, 3, "y".repeat(header.id as usize * 997));
                assert_eq!(
                    payload.as_deref(),
                    Some(&expected[HEADER_LEN..]),
                    "chunks of {chunk}"
                );
            }
        }
    }

    #[tokio::test]
    async fn an_over_size_frame_is_skipped_and_the_next_one_read() {
        let mut wire = Header {
            len: MAX_PAYLOAD + 1,
            kind: Kind::Invoke,
            id: 7,
        }
        .encode()
        .to_vec();
        wire.resize(wire.len() + MAX_PAYLOAD as usize + 1, 0xAB);
        wire.extend(error_frame(8, 3, "after"));
        for chunk in [wire.len(), 10_007] {
            let frames = all(FrameReader::new(Chunked { rest: &wire, chunk })).await;
            let ids: Vec<u64> = frames.iter().map(|f| f.0.id).collect();
            assert_eq!(ids, [7, 8], "chunks of {chunk}");
            assert_eq!(frames[0].1, None, "skipped, not buffered");
            assert_eq!(
                frames[1].1.as_deref(),
                Some(&error_frame(8, 3, "after")[HEADER_LEN..])
            );
        }
    }

    #[tokio::test]
    async fn a_frame_cut_by_the_end_of_the_stream_is_not_yielded() {
        let wire = error_frame(1, 3, "cut");
        let frames = all(FrameReader::new(&wire[..wire.len() - 1])).await;
        assert!(frames.is_empty());
    }
}
