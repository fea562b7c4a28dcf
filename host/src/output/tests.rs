//! Forwarding a stream: reports flushed at its end or when it goes quiet,
//! and memory bounded under a flood.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::crash::samples::*;
use super::crash::{Grouper, Kind, MAX_BLOCK_BYTES, MAX_BLOCK_LINES, MAX_HELD_BLANKS, Output};
use super::tail::{TAIL_LINE_MAX, TAIL_LINES};
use super::*;

#[tokio::test]
async fn a_report_whose_last_line_has_no_line_break_is_flushed_at_end_of_stream() {
    let input = format!("starting up\n{RUST_PANIC}");
    let mut out = Vec::new();
    let tail = Tail::default();
    let done = forward_with(input.as_bytes(), Some(&tail), |o| out.push(o)).await;
    assert!(done.is_ok());
    assert_eq!(
        out,
        [line("starting up"), block(Kind::RustPanic, RUST_PANIC)]
    );
    // The tail still has the lines one by one.
    assert_eq!(tail.lines().len(), 4);
}

/// Runs `forward_with` on the reading half of a pipe, handing what it
/// logs to a channel.
fn forward_pipe() -> (
    tokio::io::DuplexStream,
    tokio::sync::mpsc::UnboundedReceiver<Output>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (writer, reader) = tokio::io::duplex(4096);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        forward_with(tokio::io::BufReader::new(reader), None, |o| {
            let _ = tx.send(o);
        })
        .await
    });
    (writer, rx, task)
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_flushes_the_open_report() {
    let (mut writer, mut rx, task) = forward_pipe();
    writer
            .write_all(b"starting up\nTraceback (most recent call last):\n  File \"main.py\", line 3, in <module>\n")
            .await
            .expect("write");
    assert_eq!(rx.recv().await, Some(line("starting up")));
    // Within the quiet period the report waits, and the next line joins.
    tokio::time::sleep(BLOCK_QUIET * 3 / 5).await;
    assert!(rx.try_recv().is_err());
    writer.write_all(b"ValueError: bad\n").await.expect("write");
    tokio::time::sleep(BLOCK_QUIET * 3 / 5).await;
    assert!(rx.try_recv().is_err());
    // Then the stream stays quiet, still open: the report goes out.
    let start = tokio::time::Instant::now();
    assert_eq!(
        rx.recv().await,
        Some(block(
            Kind::PythonTraceback,
            "Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>\nValueError: bad"
        ))
    );
    assert_eq!(start.elapsed(), BLOCK_QUIET * 2 / 5);
    writer.write_all(b"next\n").await.expect("write");
    assert_eq!(rx.recv().await, Some(line("next")));
    drop(writer);
    assert!(task.await.expect("task").is_ok());
    assert_eq!(rx.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_flush_on_quiet_does_not_lose_a_half_written_line() {
    let (mut writer, mut rx, task) = forward_pipe();
    writer
            .write_all(b"Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>\nValueErr")
            .await
            .expect("write");
    assert_eq!(
        rx.recv().await,
        Some(block(
            Kind::PythonTraceback,
            "Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>"
        ))
    );
    writer.write_all(b"or: bad\n").await.expect("write");
    drop(writer);
    assert_eq!(rx.recv().await, Some(line("ValueError: bad")));
    assert!(task.await.expect("task").is_ok());
}

/// An endless plugin, cut at `left` bytes: `pattern` over and over.
struct Flood {
    pattern: Vec<u8>,
    at: usize,
    left: usize,
    served: Arc<std::sync::atomic::AtomicUsize>,
}

impl Flood {
    fn new(bytes: usize) -> Flood {
        Flood {
            pattern: flood_pattern(),
            at: 0,
            left: bytes,
            served: Arc::default(),
        }
    }
}

impl tokio::io::AsyncRead for Flood {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let n = buf
            .remaining()
            .min(this.left)
            .min(this.pattern.len() - this.at);
        buf.put_slice(&this.pattern[this.at..this.at + n]);
        this.at = (this.at + n) % this.pattern.len();
        this.left -= n;
        this.served
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        std::task::Poll::Ready(Ok(()))
    }
}

/// About 1.6 MB of the worst a plugin may write: short lines, JSON
/// lines, long reports, long lines in reports, a 1 MiB line, runs of
/// blank lines, reports that never end.
fn flood_pattern() -> Vec<u8> {
    let mut p = String::new();
    for i in 0..2000 {
        p.push_str(&format!(
            "plain line {i}\n{{\"level\":\"debug\",\"msg\":\"tick\",\"n\":{i}}}\n"
        ));
    }
    for (_, report) in SAMPLES {
        p.push_str(report);
        p.push('\n');
    }
    p.push_str("Exception in thread \"main\" java.lang.StackOverflowError\n");
    for _ in 0..3000 {
        p.push_str("\tat com.example.Deep.recurse(Deep.java:7)\n");
    }
    p.push_str("Exception in thread \"main\" java.lang.OutOfMemoryError\n");
    for _ in 0..20 {
        p.push_str("\tat ");
        p.push_str(&"x".repeat(40_000));
        p.push('\n');
    }
    p.push_str(&"y".repeat(1 << 20));
    p.push('\n');
    p.push_str("Error: x\n");
    p.push_str(&"\n".repeat(500));
    p.push_str("panic: flood\n");
    for _ in 0..5000 {
        p.push_str("\t/srv/plugin/main.go:1 +0x1\n");
    }
    p.into_bytes()
}

const FLOOD_BYTES: usize = 50 * 1024 * 1024;

#[tokio::test]
async fn a_flood_through_forward_stays_bounded() {
    // Format every record, as the host does, and throw it away; this
    // also keeps any subscriber another test set out of the way.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .finish();
    let _format = tracing::subscriber::set_default(subscriber);
    let flood = Flood::new(FLOOD_BYTES);
    let served = flood.served.clone();
    let tail = Tail::default();
    forward(
        "flood".into(),
        Stream::Stderr,
        tokio::io::BufReader::new(flood),
        Some(tail.clone()),
    )
    .await;
    assert_eq!(
        served.load(std::sync::atomic::Ordering::Relaxed),
        FLOOD_BYTES
    );
    let lines = tail.lines();
    assert_eq!(lines.len(), TAIL_LINES);
    assert!(lines.iter().all(|l| l.len() <= TAIL_LINE_MAX));
}

#[tokio::test]
async fn grouping_holds_a_bounded_buffer_under_a_flood() {
    let mut reader = tokio::io::BufReader::new(Flood::new(FLOOD_BYTES / 5));
    let mut grouper = Grouper::default();
    let (mut most, mut records) = (0, 0);
    let bound = 2 * MAX_BLOCK_BYTES + MAX_HELD_BLANKS * 2 * TAIL_LINE_MAX + 2 * TAIL_LINE_MAX;
    let mut check = |out: Vec<Output>| {
        for o in out {
            records += 1;
            match o {
                Output::Line(l) => assert!(l.len() <= TAIL_LINE_MAX),
                Output::Block(b) => {
                    assert!(b.text.len() <= MAX_BLOCK_BYTES);
                    assert!(b.lines <= MAX_BLOCK_LINES);
                }
            }
        }
    };
    while let Some(line) = read_line(&mut reader).await.expect("read") {
        check(grouper.feed(line));
        most = most.max(grouper.buffered());
        assert!(grouper.buffered() <= bound, "{}", grouper.buffered());
    }
    check(grouper.flush());
    assert!(records > 0);
    assert!(
        most > MAX_BLOCK_BYTES / 2,
        "the flood should fill a record: {most}"
    );
}
