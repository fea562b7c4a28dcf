//! A plugin's output as the host's log records.
//!
//! Every line a plugin writes to stderr, and to stdout after the handshake,
//! becomes a tracing event with target `outboard::plugin` and a `plugin`
//! field. A line holding a JSON object is parsed: `level` sets the level,
//! `message` (or `msg`) the message, and the other keys travel as one
//! `fields` JSON value. Lines are read with a bound, so a plugin that never
//! writes a newline cannot make the host buffer without limit; the last few
//! stderr lines are kept for error messages.
//!
//! A crash report spans many lines: a Rust panic, a Python traceback, a Go
//! panic, a JVM stack trace. [`forward`] keeps such a report together as one
//! error record whose message is the report's first line and whose `block`
//! field holds all its lines, joined with `\n`; `kind` says what it is
//! (`rust-panic`, `python-traceback`, `go-panic`, `java-exception` or
//! `exception`) and `lines` how many lines it holds. A report starts on a
//! line that looks like the start of one and goes on while the following
//! lines look like its continuation; it ends on the first line that does
//! not, after [`BLOCK_QUIET`] without a new line, at end of stream, or, cut
//! with a marker and continued in a new record, at [`MAX_BLOCK_LINES`](crash::MAX_BLOCK_LINES)
//! lines or [`MAX_BLOCK_BYTES`](crash::MAX_BLOCK_BYTES) bytes. The grouping itself is the pure
//! state machine `Grouper`; only [`forward`] knows about time.
//!
//! # Layout
//!
//! - `line`: [`read_line`], a line of at most [`MAX_LINE`](line::MAX_LINE) bytes.
//! - `tail`: [`Tail`], the last stderr lines.
//! - `record`: a line as a log record; JSON lines as fields.
//! - `crash`: the grouping of crash reports, a pure state machine.
//! - `emit`: a line or a report logged, control characters escaped.
//! - `escape`: [`Escaped`], the one escaping of what a plugin says.

mod crash;
mod emit;
mod escape;
mod line;
mod record;
mod tail;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufRead;

pub use escape::Escaped;
pub(crate) use line::read_line;
pub(crate) use record::forward_line;
pub(crate) use tail::Tail;

use crash::{Grouper, Output};
use emit::emit;

/// How long an open crash report waits for its next line before it is
/// logged as it is.
pub(crate) const BLOCK_QUIET: Duration = Duration::from_millis(50);

/// Which of the plugin's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stream {
    /// Its stdout, after the handshake line.
    Stdout,
    /// Its stderr.
    Stderr,
}

impl Stream {
    /// The stream's name in a log record's `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Forwards every line of `reader` as a log record until end of stream,
/// remembering stderr lines in `tail`. Crash reports are grouped into one
/// error record each (see the module documentation).
pub(crate) async fn forward<R: AsyncBufRead + Unpin>(
    plugin: Arc<str>,
    stream: Stream,
    reader: R,
    tail: Option<Tail>,
) {
    let done = forward_with(reader, tail.as_ref(), |output| {
        emit(&plugin, stream, output)
    })
    .await;
    if let Err(err) = done {
        tracing::debug!(target: "outboard::plugin", plugin = &*plugin, "reading {}: {err}", stream.as_str());
    }
}

/// [`forward`] without the logging: hands every line or grouped report to
/// `sink`. Ends at end of stream or on the first read error, after handing
/// over what it had.
async fn forward_with<R, F>(mut reader: R, tail: Option<&Tail>, mut sink: F) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(Output),
{
    let mut grouper = Grouper::default();
    let end = loop {
        // `read_line` is not cancel-safe, so the same future is polled until
        // it finishes; the quiet period only flushes the open report.
        let mut read = std::pin::pin!(read_line(&mut reader));
        let line = loop {
            if !grouper.is_open() {
                break read.await;
            }
            tokio::select! {
                biased;
                line = &mut read => break line,
                () = tokio::time::sleep(BLOCK_QUIET) => {
                    grouper.flush().into_iter().for_each(&mut sink);
                }
            }
        };
        match line {
            Ok(Some(line)) => {
                if let Some(tail) = tail {
                    tail.push(&line);
                }
                grouper.feed(line).into_iter().for_each(&mut sink);
            }
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    grouper.flush().into_iter().for_each(&mut sink);
    end
}
