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
//! with a marker and continued in a new record, at [`MAX_BLOCK_LINES`]
//! lines or [`MAX_BLOCK_BYTES`] bytes. The grouping itself is the pure
//! state machine `Grouper`; only [`forward`] knows about time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept whole; the rest of a longer line is dropped and a
/// marker says how much.
pub const MAX_LINE: usize = 16 * 1024;

/// How many stderr lines a [`Tail`] keeps.
pub const TAIL_LINES: usize = 20;

/// The longest line a [`Tail`] keeps: a line cut by [`read_line`] fits,
/// marker included; a longer one is cut again.
const TAIL_LINE_MAX: usize = MAX_LINE + 64;

/// How long an open crash report waits for its next line before it is
/// logged as it is.
pub const BLOCK_QUIET: Duration = Duration::from_millis(50);

/// The most lines in one grouped record; a longer report goes on in a new
/// record.
pub const MAX_BLOCK_LINES: usize = 200;

/// The most bytes of text in one grouped record; a longer report goes on in
/// a new record.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;

/// How many blank lines in a row an open report keeps on trial: they join
/// it if a continuation follows, and are logged on their own otherwise.
const MAX_HELD_BLANKS: usize = 2;

/// Ends a record whose report goes on in the next one.
const CUT_MARKER: &str = "…[block cut: continued in the next record]";

/// Starts a record that goes on with a cut report.
const CONTINUED_MARKER: &str = "…[continued from the previous record]";

/// Which of the plugin's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The last [`TAIL_LINES`] lines of a plugin's stderr, shared between the
/// reader task and whoever reports an early exit.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Tail {
    /// Remembers a line, forgetting the oldest beyond [`TAIL_LINES`]. A line
    /// longer than a cut [`read_line`] line is cut to [`MAX_LINE`] bytes
    /// with a marker, so the tail stays bounded whoever feeds it.
    pub fn push(&self, line: &str) {
        let line = if line.len() <= TAIL_LINE_MAX {
            line.to_owned()
        } else {
            let mut keep = MAX_LINE;
            while !line.is_char_boundary(keep) {
                keep -= 1;
            }
            let mut cut = line[..keep].to_owned();
            cut.push_str(&cut_marker(line.len() - keep));
            cut
        };
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The remembered lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn cut_marker(dropped: usize) -> String {
    format!(" …[line cut: {dropped} more bytes dropped]")
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its line ending.
/// A longer line is cut and ends with a marker; the excess is consumed and
/// dropped as it arrives, never buffered. `None` at end of stream.
///
/// Not cancel-safe: dropping the future mid-line loses what it had read.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if kept.is_empty() && dropped == 0 {
                return Ok(None);
            }
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(kept.len());
        let take = chunk.len().min(room);
        kept.extend_from_slice(&chunk[..take]);
        dropped += chunk.len() - take;
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    if kept.last() == Some(&b'\r') {
        kept.pop();
    }
    let mut line = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        line.push_str(&cut_marker(dropped));
    }
    Ok(Some(line))
}

/// Forwards every line of `reader` as a log record until end of stream,
/// remembering stderr lines in `tail`. Crash reports are grouped into one
/// error record each (see the module documentation).
pub async fn forward<R: AsyncBufRead + Unpin>(
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

/// Logs one line or grouped report.
fn emit(plugin: &str, stream: Stream, output: Output) {
    match output {
        Output::Line(line) => forward_line(plugin, stream, &line),
        Output::Block(Block {
            kind,
            message,
            text,
            lines,
        }) => tracing::error!(
            target: "outboard::plugin",
            plugin,
            stream = stream.as_str(),
            kind = kind.as_str(),
            lines,
            block = %Escaped(&text),
            "{message}"
        ),
    }
}

/// A block's text as a log field: line breaks and tabs are kept, so the
/// text subscriber shows the report as the plugin wrote it, and the JSON one
/// a string with `\n`; any other control character is written escaped
/// (`\u{1b}`), so a plugin cannot drive the host's terminal through it.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in self.0.char_indices() {
            if c.is_control() && c != '\n' && c != '\t' {
                f.write_str(&self.0[plain..i])?;
                write!(f, "{}", c.escape_unicode())?;
                plain = i + c.len_utf8();
            }
        }
        f.write_str(&self.0[plain..])
    }
}

/// What a grouped report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RustPanic,
    PythonTraceback,
    GoPanic,
    JavaException,
    /// An `...Error: ...` or `...Exception: ...` line followed by indented
    /// lines: a JVM `printStackTrace`, a Node.js error, Rust's `Error: ...`
    /// from `main` with its `Caused by:` list.
    Exception,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::RustPanic => "rust-panic",
            Kind::PythonTraceback => "python-traceback",
            Kind::GoPanic => "go-panic",
            Kind::JavaException => "java-exception",
            Kind::Exception => "exception",
        }
    }
}

/// Where an open report is, which decides the lines that continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// After `thread '…' panicked at file:line:col:` — the message is next.
    RustMessage,
    /// After the message: its indented lines, `note:` lines and the
    /// backtrace.
    RustDetails,
    /// Between `Traceback (most recent call last):` and the exception line.
    PythonFrames,
    /// After the exception line: only a chained exception goes on.
    PythonRaised,
    /// After `During handling of the above exception…` or `The above
    /// exception was the direct cause…`: the next `Traceback` is next.
    PythonChained,
    /// Inside `+ Exception Group Traceback`: indented lines only.
    PythonGroup,
    /// A Go panic or fatal error and its goroutines.
    Go,
    /// `exit status N` after a Go panic: the report is complete.
    GoExited,
    Java,
    Exception,
}

impl Phase {
    fn kind(self) -> Kind {
        match self {
            Phase::RustMessage | Phase::RustDetails => Kind::RustPanic,
            Phase::PythonFrames
            | Phase::PythonRaised
            | Phase::PythonChained
            | Phase::PythonGroup => Kind::PythonTraceback,
            Phase::Go | Phase::GoExited => Kind::GoPanic,
            Phase::Java => Kind::JavaException,
            Phase::Exception => Kind::Exception,
        }
    }

    /// Whether a report whose only line is its first is still a report:
    /// `panic: x` or `Error: x` alone is just a line.
    fn needs_continuation(self) -> bool {
        matches!(self, Phase::Go | Phase::Exception)
    }
}

const PY_TRACEBACK: &str = "Traceback (most recent call last):";
const PY_CONTEXT: &str = "During handling of the above exception, another exception occurred:";
const PY_CAUSE: &str = "The above exception was the direct cause of the following exception:";

/// The phase a report starting with `line` is in, if `line` starts one.
fn start(line: &str) -> Option<Phase> {
    if line.starts_with("thread '") && line.contains(" panicked at ") {
        // Since Rust 1.73 the location ends the line and the message
        // follows; before, the message was quoted on the same line.
        return Some(if line.ends_with(':') {
            Phase::RustMessage
        } else {
            Phase::RustDetails
        });
    }
    if line.trim_end() == PY_TRACEBACK {
        return Some(Phase::PythonFrames);
    }
    if line.trim() == "+ Exception Group Traceback (most recent call last):" {
        return Some(Phase::PythonGroup);
    }
    if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
        return Some(Phase::Go);
    }
    if line.starts_with("Exception in thread \"") {
        return Some(Phase::Java);
    }
    if is_exception_line(line) {
        return Some(Phase::Exception);
    }
    None
}

/// `Error: x`, `TypeError: x`, `java.io.IOException: x`, `java.lang.Error`.
fn is_exception_line(line: &str) -> bool {
    let name = line.split_once(": ").map_or(line, |(name, _)| name);
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
        && ["Error", "Exception", "Throwable"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// `main.main()`, `main.(*T).get(...)`, `panic({0x48adc0?, 0x0?})`,
/// `created by main.main in goroutine 1`.
fn is_go_frame(line: &str) -> bool {
    line.starts_with("created by ")
        || (line.ends_with(')')
            && line
                .find('(')
                .is_some_and(|i| i > 0 && !line[..i].contains(char::is_whitespace)))
}

fn is_json_object(line: &str) -> bool {
    line.trim_start().starts_with('{')
        && matches!(
            serde_json::from_str::<serde_json::Value>(line),
            Ok(serde_json::Value::Object(_))
        )
}

/// What a line does to an open report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// It belongs to the report, which is then in this phase.
    Join(Phase),
    /// A blank line: it belongs to the report only if a continuation
    /// follows.
    Hold,
    /// It does not belong; the report is over.
    End,
}

fn step(phase: Phase, line: &str) -> Step {
    // A structured log line is never part of a crash report.
    if is_json_object(line) {
        return Step::End;
    }
    let blank = line.trim().is_empty();
    let indented = !blank && line.starts_with([' ', '\t']);
    let join_if = |yes: bool, next: Phase| if yes { Step::Join(next) } else { Step::End };
    match phase {
        Phase::RustMessage => Step::Join(Phase::RustDetails),
        Phase::RustDetails => join_if(
            indented || line.starts_with("note: ") || line == "stack backtrace:",
            Phase::RustDetails,
        ),
        Phase::PythonFrames if blank || indented => Step::Join(Phase::PythonFrames),
        // The exception line, say `ValueError: bad value`.
        Phase::PythonFrames => Step::Join(Phase::PythonRaised),
        Phase::PythonRaised | Phase::PythonChained if blank => Step::Hold,
        Phase::PythonRaised => {
            join_if(line == PY_CONTEXT || line == PY_CAUSE, Phase::PythonChained)
        }
        Phase::PythonChained => join_if(line.trim_end() == PY_TRACEBACK, Phase::PythonFrames),
        Phase::PythonGroup => join_if(indented, Phase::PythonGroup),
        Phase::Go if blank => Step::Hold,
        Phase::Go => {
            let exited = line
                .strip_prefix("exit status ")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if exited {
                Step::Join(Phase::GoExited)
            } else {
                join_if(
                    indented
                        || (line.starts_with("goroutine ") && line.ends_with("]:"))
                        || line.starts_with("[signal ")
                        || line.starts_with("panic: ")
                        || line.starts_with("...")
                        || line == "runtime stack:"
                        || is_go_frame(line),
                    Phase::Go,
                )
            }
        }
        Phase::GoExited => Step::End,
        Phase::Java => join_if(indented || line.starts_with("Caused by: "), Phase::Java),
        Phase::Exception if blank => Step::Hold,
        Phase::Exception => join_if(indented || line.starts_with("Caused by:"), Phase::Exception),
    }
}

/// What the grouping hands on.
#[derive(Debug, PartialEq)]
enum Output {
    /// A line outside any report, logged as usual.
    Line(String),
    /// A report, or one part of a long one, logged as one error record.
    Block(Block),
}

/// A grouped report.
#[derive(Debug, PartialEq)]
struct Block {
    kind: Kind,
    /// The report's first line; on the parts after the first of a cut
    /// report, with a marker.
    message: String,
    /// The report's lines, joined with `\n`, with markers where it was cut.
    text: String,
    /// How many of the plugin's lines `text` holds.
    lines: usize,
}

/// The open report: at most [`MAX_BLOCK_BYTES`] of text, a first line and
/// [`MAX_HELD_BLANKS`] blank lines, each a bounded line.
#[derive(Debug)]
struct Open {
    phase: Phase,
    first: String,
    text: String,
    lines: usize,
    /// Which part of the report this is, from 1.
    part: u32,
    held: Vec<String>,
}

impl Open {
    fn new(phase: Phase, line: String) -> Open {
        Open {
            phase,
            first: line.clone(),
            text: line,
            lines: 1,
            part: 1,
            held: Vec::new(),
        }
    }

    /// Adds a line, first handing on the part so far if the line would not
    /// fit in it.
    fn append(&mut self, line: String, out: &mut Vec<Output>) {
        let full = self.lines >= MAX_BLOCK_LINES
            || self.text.len() + 1 + line.len() + 1 + CUT_MARKER.len() > MAX_BLOCK_BYTES;
        if full {
            self.text.push('\n');
            self.text.push_str(CUT_MARKER);
            out.push(Output::Block(self.take()));
            self.part += 1;
            self.text.push_str(CONTINUED_MARKER);
        }
        self.text.push('\n');
        self.text.push_str(&line);
        self.lines += 1;
    }

    /// The part so far, leaving the text empty.
    fn take(&mut self) -> Block {
        let message = if self.part == 1 {
            self.first.clone()
        } else {
            format!("{} …[continued, part {}]", self.first, self.part)
        };
        Block {
            kind: self.phase.kind(),
            message,
            text: std::mem::take(&mut self.text),
            lines: std::mem::take(&mut self.lines),
        }
    }
}

/// Groups lines into crash reports: a pure state machine fed one line at a
/// time, flushed when the stream goes quiet or ends. Holds at most one open
/// report, whose size is bounded.
#[derive(Debug, Default)]
struct Grouper {
    open: Option<Open>,
}

impl Grouper {
    /// Whether a report is open, waiting for more lines.
    fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Takes one line; returns what is ready to log, in order.
    fn feed(&mut self, line: String) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(open) = &mut self.open {
            match step(open.phase, &line) {
                Step::Join(phase) => {
                    for held in std::mem::take(&mut open.held) {
                        open.append(held, &mut out);
                    }
                    open.append(line, &mut out);
                    open.phase = phase;
                    if phase == Phase::GoExited {
                        self.close(&mut out);
                    }
                    return out;
                }
                Step::Hold if open.held.len() < MAX_HELD_BLANKS => {
                    open.held.push(line);
                    return out;
                }
                Step::Hold | Step::End => self.close(&mut out),
            }
        }
        match start(&line) {
            Some(phase) => self.open = Some(Open::new(phase, line)),
            None => out.push(Output::Line(line)),
        }
        out
    }

    /// Hands on the open report as it is: the stream went quiet or ended.
    fn flush(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.close(&mut out);
        out
    }

    fn close(&mut self, out: &mut Vec<Output>) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if open.part == 1 && open.lines == 1 && open.phase.needs_continuation() {
            out.push(Output::Line(open.text));
        } else {
            out.push(Output::Block(open.take()));
        }
        out.extend(open.held.into_iter().map(Output::Line));
    }

    /// Bytes the open report holds, for the bound's test.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.open.as_ref().map_or(0, |o| {
            o.text.capacity()
                + o.first.capacity()
                + o.held.iter().map(String::capacity).sum::<usize>()
        })
    }
}

/// A log level as a plugin may write it in a JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// One parsed output line.
#[derive(Debug, PartialEq)]
struct Record {
    level: Level,
    message: String,
    /// The JSON object's other keys, when the line was JSON.
    fields: Option<serde_json::Value>,
}

fn parse(line: &str) -> Record {
    let plain = || Record {
        level: Level::Info,
        message: line.to_owned(),
        fields: None,
    };
    if !line.trim_start().starts_with('{') {
        return plain();
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return plain();
    };
    let level = match map.remove("level").as_ref().and_then(|l| l.as_str()) {
        Some(l) => match l.to_ascii_lowercase().as_str() {
            "error" | "fatal" | "critical" | "panic" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => Level::Info,
        },
        None => Level::Info,
    };
    let message = match map.remove("message").or_else(|| map.remove("msg")) {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    // The host stamps every record itself.
    map.remove("timestamp");
    // Structured loggers nest their fields; flatten one level for reading.
    if let Some(serde_json::Value::Object(inner)) = map.remove("fields") {
        for (k, v) in inner {
            map.entry(k).or_insert(v);
        }
    }
    let fields = (!map.is_empty()).then_some(serde_json::Value::Object(map));
    Record {
        level,
        message,
        fields,
    }
}

/// Logs one line of the plugin's output.
pub fn forward_line(plugin: &str, stream: Stream, line: &str) {
    let Record {
        level,
        message,
        fields,
    } = parse(line);
    let stream = stream.as_str();
    macro_rules! event {
        ($lvl:ident) => {
            match &fields {
                Some(f) => tracing::$lvl!(target: "outboard::plugin", plugin, stream, fields = %f, "{message}"),
                None => tracing::$lvl!(target: "outboard::plugin", plugin, stream, "{message}"),
            }
        };
    }
    match level {
        Level::Error => event!(error),
        Level::Warn => event!(warn),
        Level::Info => event!(info),
        Level::Debug => event!(debug),
        Level::Trace => event!(trace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_are_bounded_and_split() {
        let long = "x".repeat(MAX_LINE + 100);
        let input = format!("a\r\n{long}\nlast");
        let mut reader = tokio::io::BufReader::with_capacity(64, input.as_bytes());
        assert_eq!(
            read_line(&mut reader).await.ok().flatten().as_deref(),
            Some("a")
        );
        let cut = read_line(&mut reader).await.ok().flatten().expect("line");
        assert!(cut.starts_with(&"x".repeat(MAX_LINE)));
        assert!(
            cut.ends_with("…[line cut: 100 more bytes dropped]"),
            "{cut}"
        );
        assert_eq!(
            read_line(&mut reader).await.ok().flatten().as_deref(),
            Some("last")
        );
        assert_eq!(read_line(&mut reader).await.ok().flatten(), None);
    }

    #[test]
    fn json_lines_become_fields() {
        let r = parse(
            r#"{"level":"WARN","msg":"slow","timestamp":"t","elapsed_ms":12,"fields":{"phase":"x"}}"#,
        );
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.message, "slow");
        assert_eq!(r.fields, Some(json!({"elapsed_ms": 12, "phase": "x"})));
    }

    #[test]
    fn plain_and_broken_json_lines_stay_as_they_are() {
        for line in ["hello", "{not json", "[1,2]", ""] {
            let r = parse(line);
            assert_eq!(
                (r.level, r.message.as_str(), r.fields),
                (Level::Info, line, None)
            );
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = Tail::default();
        for i in 0..TAIL_LINES + 5 {
            tail.push(&i.to_string());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("5"));
    }

    // Crash reports as the runtimes write them (Rust 1.95, Python 3.11,
    // Go 1.26, OpenJDK 17, Node.js 20), without the final line break.

    const RUST_PANIC: &str = r#"thread 'main' (4144) panicked at src/main.rs:4:21:
index out of bounds: the len is 0 but the index is 3
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"#;

    /// Before Rust 1.73 the message was on the first line.
    const RUST_PANIC_OLD: &str = r#"thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:10:37
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"#;

    const RUST_PANIC_BACKTRACE: &str = r#"thread '<unnamed>' (4003) panicked at src/worker.rs:3:29:
assertion `left == right` failed: values differ
  left: 1
 right: 2
stack backtrace:
   0: __rustc::rust_begin_unwind
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/panicking.rs:689:5
   1: core::panicking::panic_fmt
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:80:14
   2: core::panicking::assert_failed_inner
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:434:23
   3: core::panicking::assert_failed::<i32, i32>
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:394:5
   4: worker::main::{{closure}}
             at ./src/worker.rs:3:29
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace."#;

    /// Only the first panic of a process gets the note.
    const RUST_SECOND_PANIC: &str = r#"thread 'main' (4144) panicked at src/main.rs:4:21:
index out of bounds: the len is 0 but the index is 3"#;

    const PYTHON_CAUSE: &str = r#"Traceback (most recent call last):
  File "/srv/plugin/main.py", line 4, in load
    return json.loads(s)
           ^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/decoder.py", line 353, in raw_decode
    obj, end = self.scan_once(s, idx)
               ^^^^^^^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/plugin/main.py", line 9, in <module>
    main()
  File "/srv/plugin/main.py", line 8, in main
    load("{oops")
  File "/srv/plugin/main.py", line 6, in load
    raise RuntimeError("bad config") from e
RuntimeError: bad config"#;

    const PYTHON_CONTEXT: &str = r#"Traceback (most recent call last):
  File "/srv/plugin/main.py", line 4, in <module>
  File "/srv/plugin/main.py", line 2, in f
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/plugin/main.py", line 6, in <module>
KeyError: 'k'"#;

    const PYTHON_GROUP: &str = r#"  + Exception Group Traceback (most recent call last):
  |   File "/srv/plugin/main.py", line 4, in <module>
  |   File "/srv/plugin/main.py", line 3, in f
  | ExceptionGroup: two failures (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: x
    +---------------- 2 ----------------
    | TypeError: y
    +------------------------------------"#;

    /// From `go run`, which adds the exit status.
    const GO_NIL: &str = concat!(
        "panic: runtime error: invalid memory address or nil pointer dereference\n",
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x49e198]\n",
        "\n",
        "goroutine 1 [running]:\n",
        "main.(*T).get(...)\n",
        "\t/srv/plugin/main.go:7\n",
        "main.main()\n",
        "\t/srv/plugin/main.go:13 +0x58\n",
        "exit status 2",
    );

    const GO_RECOVERED: &str = concat!(
        "panic: runtime error: index out of range [5] with length 0 [recovered]\n",
        "\tpanic: again\n",
        "\n",
        "goroutine 1 [running]:\n",
        "main.main.func1()\n",
        "\t/srv/plugin/main.go:8 +0x4b\n",
        "panic({0x48adc0?, 0x1709aa390078?})\n",
        "\t/usr/local/go/src/runtime/panic.go:860 +0x13a\n",
        "main.main()\n",
        "\t/srv/plugin/main.go:12 +0x30",
    );

    const GO_DEADLOCK: &str = concat!(
        "fatal error: all goroutines are asleep - deadlock!\n",
        "\n",
        "goroutine 1 [chan receive]:\n",
        "main.main()\n",
        "\t/srv/plugin/main.go:5 +0x25\n",
        "\n",
        "goroutine 6 [select]:\n",
        "main.worker(0xc000012345)\n",
        "\t/srv/plugin/worker.go:21 +0x8a\n",
        "created by main.main in goroutine 1\n",
        "\t/srv/plugin/main.go:4 +0x1d",
    );

    const JAVA: &str = concat!(
        "Exception in thread \"main\" java.lang.IllegalStateException: cannot start\n",
        "\tat com.example.Main.start(Main.java:5)\n",
        "\tat com.example.Main.main(Main.java:7)\n",
        "Caused by: java.io.FileNotFoundException: /etc/plugin.conf (No such file or directory)\n",
        "\tat com.example.Main.load(Main.java:3)\n",
        "\t... 2 more",
    );

    /// `Throwable.printStackTrace()`.
    const JAVA_PRINTED: &str = concat!(
        "java.io.FileNotFoundException: /etc/plugin.conf (No such file or directory)\n",
        "\tat java.base/java.io.FileInputStream.open0(Native Method)\n",
        "\tat java.base/java.io.FileInputStream.open(FileInputStream.java:216)\n",
        "\tat com.example.Main.main(Main.java:3)",
    );

    const NODE: &str = r#"TypeError: x is not a function
    at f (/srv/plugin/index.js:1:21)
    at Object.<anonymous> (/srv/plugin/index.js:3:1)
    at Module._compile (node:internal/modules/cjs/loader:1364:14)
    at node:internal/main/run_main_module:28:49"#;

    /// `fn main() -> anyhow::Result<()>` returning an error.
    const RUST_MAIN_ERROR: &str = r#"Error: cannot load /etc/outboard/plugin.toml

Caused by:
    0: reading /etc/outboard/plugin.toml
    1: No such file or directory (os error 2)"#;

    const SAMPLES: [(Kind, &str); 13] = [
        (Kind::RustPanic, RUST_PANIC),
        (Kind::RustPanic, RUST_PANIC_OLD),
        (Kind::RustPanic, RUST_PANIC_BACKTRACE),
        (Kind::RustPanic, RUST_SECOND_PANIC),
        (Kind::PythonTraceback, PYTHON_CAUSE),
        (Kind::PythonTraceback, PYTHON_CONTEXT),
        (Kind::PythonTraceback, PYTHON_GROUP),
        (Kind::GoPanic, GO_RECOVERED),
        (Kind::GoPanic, GO_DEADLOCK),
        (Kind::JavaException, JAVA),
        (Kind::Exception, JAVA_PRINTED),
        (Kind::Exception, NODE),
        (Kind::Exception, RUST_MAIN_ERROR),
    ];

    const JSON_LINE: &str = r#"{"level":"warn","msg":"cache miss","key":"deps-9f2c"}"#;

    /// Feeds `input` line by line, then ends it.
    fn group(input: &str) -> Vec<Output> {
        let mut grouper = Grouper::default();
        let mut out = Vec::new();
        for line in input.split('\n') {
            out.extend(grouper.feed(line.to_owned()));
        }
        out.extend(grouper.flush());
        out
    }

    fn line(text: &str) -> Output {
        Output::Line(text.to_owned())
    }

    fn block(kind: Kind, text: &str) -> Output {
        Output::Block(Block {
            kind,
            message: text.split('\n').next().unwrap_or_default().to_owned(),
            text: text.to_owned(),
            lines: text.split('\n').count(),
        })
    }

    #[test]
    fn each_report_is_one_record_between_other_lines() {
        for (kind, report) in SAMPLES.into_iter().chain([(Kind::GoPanic, GO_NIL)]) {
            for after in ["listening on /run/p.sock", JSON_LINE] {
                assert_eq!(
                    group(&format!("starting up\n{report}\n{after}")),
                    [line("starting up"), block(kind, report), line(after)],
                    "{report}"
                );
            }
        }
    }

    #[test]
    fn a_report_that_ends_the_stream_is_flushed() {
        for (kind, report) in SAMPLES {
            assert_eq!(group(report), [block(kind, report)], "{report}");
        }
    }

    #[test]
    fn a_go_exit_status_closes_the_report_at_once() {
        let mut grouper = Grouper::default();
        let mut out = Vec::new();
        for line in GO_NIL.split('\n') {
            out.extend(grouper.feed(line.to_owned()));
        }
        assert!(!grouper.is_open());
        assert_eq!(out, [block(Kind::GoPanic, GO_NIL)]);
    }

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

    #[test]
    fn two_panics_with_backtraces_are_two_records() {
        // Rust writes a blank line before each panic.
        let input = format!("\n{RUST_PANIC_BACKTRACE}\n\n{RUST_SECOND_PANIC}\n");
        assert_eq!(
            group(&input),
            [
                line(""),
                block(Kind::RustPanic, RUST_PANIC_BACKTRACE),
                line(""),
                block(Kind::RustPanic, RUST_SECOND_PANIC),
                line(""),
            ]
        );
    }

    #[test]
    fn reports_right_after_one_another_stay_apart() {
        let input = format!("{PYTHON_CONTEXT}\n{JAVA}\n{GO_RECOVERED}\n{RUST_PANIC}");
        assert_eq!(
            group(&input),
            [
                block(Kind::PythonTraceback, PYTHON_CONTEXT),
                block(Kind::JavaException, JAVA),
                block(Kind::GoPanic, GO_RECOVERED),
                block(Kind::RustPanic, RUST_PANIC),
            ]
        );
    }

    #[test]
    fn a_traceback_after_a_log_line_starts_at_traceback() {
        let input = "ERROR:root:parse failed\nTraceback (most recent call last):\n  File \"<string>\", line 5, in <module>\nValueError: invalid literal for int() with base 10: 'z'\nafter";
        let out = group(input);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], line("ERROR:root:parse failed"));
        assert!(
            matches!(&out[1], Output::Block(b) if b.lines == 3 && b.message == PY_TRACEBACK),
            "{out:?}"
        );
        assert_eq!(out[2], line("after"));
    }

    #[test]
    fn a_json_line_ends_a_report_and_is_still_parsed() {
        let input = format!(
            "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\n{JSON_LINE}\n{RUST_PANIC}\n{JSON_LINE}"
        );
        let out = group(&input);
        assert_eq!(
            out,
            [
                block(
                    Kind::PythonTraceback,
                    "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>"
                ),
                line(JSON_LINE),
                block(Kind::RustPanic, RUST_PANIC),
                line(JSON_LINE),
            ]
        );
        let Some(Output::Line(json_line)) = out.last() else {
            panic!("{out:?}");
        };
        let record = parse(json_line);
        assert_eq!(record.level, Level::Warn);
        assert_eq!(record.message, "cache miss");
        assert_eq!(record.fields, Some(json!({"key": "deps-9f2c"})));
    }

    #[test]
    fn a_lone_start_line_is_a_plain_line() {
        let input = "panic: not really\nError: connection refused, retrying\nfatal error: x.h: No such file or directory\ncompilation terminated.\nTypeError: x\n\nnext";
        assert_eq!(
            group(input),
            input.split('\n').map(line).collect::<Vec<_>>()
        );
    }

    #[test]
    fn blank_lines_join_only_when_a_continuation_follows() {
        let input = "Error: x\n    detail\n\n\n\nafter";
        assert_eq!(
            group(input),
            [
                block(Kind::Exception, "Error: x\n    detail"),
                line(""),
                line(""),
                line(""),
                line("after"),
            ]
        );
        // The trailing blank line after a Python exception stays out too.
        let input = format!("{PYTHON_CAUSE}\n\nafter");
        assert_eq!(
            group(&input),
            [
                block(Kind::PythonTraceback, PYTHON_CAUSE),
                line(""),
                line("after")
            ]
        );
    }

    #[test]
    fn long_reports_are_cut_into_bounded_records() {
        // A JVM stack overflow: 1024 frames.
        let frames: usize = 1024;
        let mut input = String::from("Exception in thread \"main\" java.lang.StackOverflowError");
        for _ in 0..frames {
            input.push_str("\n\tat com.example.Deep.recurse(Deep.java:7)");
        }
        input.push_str("\nafter");
        let out = group(&input);
        assert_eq!(out.last(), Some(&line("after")));
        let parts: Vec<&Block> = out
            .iter()
            .filter_map(|o| match o {
                Output::Block(b) => Some(b),
                Output::Line(_) => None,
            })
            .collect();
        assert_eq!(parts.len(), (frames + 1).div_ceil(MAX_BLOCK_LINES));
        assert_eq!(parts.iter().map(|b| b.lines).sum::<usize>(), frames + 1);
        for (i, part) in parts.iter().enumerate() {
            assert!(part.lines <= MAX_BLOCK_LINES);
            assert_eq!(part.kind, Kind::JavaException);
            let first = i == 0;
            let last = i + 1 == parts.len();
            assert_eq!(part.text.ends_with(CUT_MARKER), !last);
            assert_eq!(part.text.starts_with(CONTINUED_MARKER), !first);
            if first {
                assert_eq!(
                    part.message,
                    "Exception in thread \"main\" java.lang.StackOverflowError"
                );
            } else {
                assert_eq!(
                    part.message,
                    format!(
                        "Exception in thread \"main\" java.lang.StackOverflowError …[continued, part {}]",
                        i + 1
                    )
                );
            }
        }

        // Long lines: the byte bound cuts first.
        let mut input = String::from(PY_TRACEBACK);
        for i in 0..40 {
            input.push_str(&format!(
                "\n  File \"gen.py\", line {i}, in f\n    {}",
                "x".repeat(MAX_LINE)
            ));
        }
        input.push_str("\nMemoryError");
        let out = group(&input);
        assert!(out.len() > 1);
        let mut lines = 0;
        for o in &out {
            let Output::Block(b) = o else {
                panic!("{o:?}");
            };
            assert!(b.text.len() <= MAX_BLOCK_BYTES, "{}", b.text.len());
            lines += b.lines;
        }
        assert_eq!(lines, 1 + 40 * 2 + 1);
    }

    #[test]
    fn block_text_keeps_line_breaks_and_escapes_control_characters() {
        let text = "thread 'main' panicked at src/main.rs:1:1:\n\x1b[31mred\x1b[0m\r\tat x";
        assert_eq!(
            Escaped(text).to_string(),
            "thread 'main' panicked at src/main.rs:1:1:\n\\u{1b}[31mred\\u{1b}[0m\\u{d}\tat x"
        );
        assert_eq!(Escaped("plain – ü").to_string(), "plain – ü");
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    fn emitted(json: bool, output: Output) -> String {
        let written = Written::default();
        let sink = written.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone());
        let emit_it = || emit("env-injector", Stream::Stderr, output);
        if json {
            tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), emit_it);
        } else {
            tracing::subscriber::with_default(builder.compact().finish(), emit_it);
        }
        written.text()
    }

    #[test]
    fn a_report_is_one_error_record_in_both_formats() {
        let json_text = emitted(true, block(Kind::RustPanic, RUST_PANIC));
        let record: serde_json::Value =
            serde_json::from_str(json_text.trim_end()).expect("one JSON record");
        assert_eq!(record["level"], "ERROR");
        assert_eq!(record["target"], "outboard::plugin");
        assert_eq!(
            record["message"],
            "thread 'main' (4144) panicked at src/main.rs:4:21:"
        );
        assert_eq!(record["plugin"], "env-injector");
        assert_eq!(record["stream"], "stderr");
        assert_eq!(record["kind"], "rust-panic");
        assert_eq!(record["lines"], 3);
        assert_eq!(record["block"], RUST_PANIC);

        let text = emitted(false, block(Kind::RustPanic, RUST_PANIC));
        let (head, rest) = text.split_once('\n').expect("several lines");
        assert!(head.contains(" ERROR outboard::plugin: thread 'main' (4144) panicked at src/main.rs:4:21: plugin=\"env-injector\" stream=\"stderr\" kind=\"rust-panic\" lines=3 block=thread 'main' (4144)"), "{head}");
        assert_eq!(
            rest,
            RUST_PANIC
                .split_once('\n')
                .map(|(_, r)| format!("{r}\n"))
                .unwrap_or_default()
        );

        // A plain line is as before.
        let json_text = emitted(true, line(JSON_LINE));
        let record: serde_json::Value =
            serde_json::from_str(json_text.trim_end()).expect("one JSON record");
        assert_eq!(record["level"], "WARN");
        assert_eq!(record["message"], "cache miss");
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

    #[test]
    fn the_tail_cuts_lines_longer_than_a_read_line() {
        let tail = Tail::default();
        let cut = format!("{}{}", "x".repeat(MAX_LINE), cut_marker(usize::MAX));
        tail.push(&cut);
        tail.push(&"é".repeat(MAX_LINE));
        let lines = tail.lines();
        assert_eq!(lines[0], cut);
        assert!(lines[1].len() <= TAIL_LINE_MAX);
        assert!(lines[1].ends_with(&format!(" …[line cut: {} more bytes dropped]", MAX_LINE)));
    }
}
