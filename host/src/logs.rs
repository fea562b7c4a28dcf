//! A plugin's output as the host's log records.
//!
//! Every line a plugin writes to stderr, and to stdout after the handshake,
//! becomes a tracing event with target `outboard::plugin` and a `plugin`
//! field. A line holding a JSON object is parsed: `level` sets the level,
//! `message` (or `msg`) the message, and the other keys travel as one
//! `fields` JSON value. Lines are read with a bound, so a plugin that never
//! writes a newline cannot make the host buffer without limit; the last few
//! stderr lines are kept for error messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept whole; the rest of a longer line is dropped and a
/// marker says how much.
pub const MAX_LINE: usize = 16 * 1024;

/// How many stderr lines a [`Tail`] keeps.
pub const TAIL_LINES: usize = 20;

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
    /// Remembers a line, forgetting the oldest beyond [`TAIL_LINES`].
    pub fn push(&self, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
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

/// Reads one line of at most [`MAX_LINE`] bytes, without its line ending.
/// A longer line is cut and ends with a marker; the excess is consumed and
/// dropped as it arrives, never buffered. `None` at end of stream.
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
        line.push_str(&format!(" …[line cut: {dropped} more bytes dropped]"));
    }
    Ok(Some(line))
}

/// Forwards every line of `reader` as a log record until end of stream,
/// remembering stderr lines in `tail`.
pub async fn forward<R: AsyncBufRead + Unpin>(
    plugin: Arc<str>,
    stream: Stream,
    mut reader: R,
    tail: Option<Tail>,
) {
    loop {
        match read_line(&mut reader).await {
            Ok(Some(line)) => {
                if let Some(tail) = &tail {
                    tail.push(&line);
                }
                forward_line(&plugin, stream, &line);
            }
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(target: "outboard::plugin", plugin = &*plugin, "reading {}: {err}", stream.as_str());
                return;
            }
        }
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
}
