//! A plugin's log lines from the daemon's ring, as `outboard logs` prints
//! them: `TIME STREAM LEVEL MESSAGE [FIELDS]`, and a marker where the ring
//! dropped lines (a gap in the sequence numbers).

use std::io::Write;
use std::time::SystemTime;

use outboard_host::Escaped;
use outboard_proto::control::v1::LogLine;
use serde::Serialize;
use serde_json::Value;

use super::status::rfc3339;

/// One line, for `logs --json`.
#[derive(Debug, Serialize)]
pub(crate) struct LogView {
    /// When the host read it (RFC 3339, UTC).
    pub(crate) time: Option<String>,
    /// `stderr` or `stdout`.
    pub(crate) stream: String,
    /// Its level.
    pub(crate) level: String,
    /// The text.
    pub(crate) message: String,
    /// A JSON line's other keys; `null` otherwise.
    pub(crate) fields: Value,
    /// Its place in the plugin's lines.
    pub(crate) sequence: u64,
}

impl LogView {
    /// The view of a line off the wire.
    pub(crate) fn of(line: &LogLine) -> LogView {
        LogView {
            time: line
                .time
                .and_then(|t| SystemTime::try_from(t).ok())
                .map(rfc3339),
            stream: line.stream.clone(),
            level: line.level.clone(),
            message: line.message.clone(),
            fields: if line.fields_json.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&line.fields_json)
                    .unwrap_or_else(|_| Value::String(line.fields_json.clone()))
            },
            sequence: line.sequence,
        }
    }
}

/// Prints lines in order, with a marker for each gap.
#[derive(Debug, Default)]
pub(crate) struct LogPrinter {
    /// JSON lines instead of text.
    pub(crate) json: bool,
    /// The last sequence number printed.
    last: Option<u64>,
}

impl LogPrinter {
    /// A printer of text (or, with `json`, JSON lines).
    pub(crate) fn new(json: bool) -> LogPrinter {
        LogPrinter { json, last: None }
    }

    /// Prints `line`, after a marker if lines are missing before it.
    pub(crate) fn print(&mut self, out: &mut impl Write, line: &LogLine) -> std::io::Result<()> {
        let dropped = self.last.map_or(0, |last| {
            line.sequence.saturating_sub(last).saturating_sub(1)
        });
        self.last = Some(line.sequence);
        if dropped > 0 {
            if self.json {
                writeln!(out, "{}", serde_json::json!({ "dropped": dropped }))?;
            } else {
                let s = if dropped == 1 { "" } else { "s" };
                writeln!(out, "… {dropped} line{s} dropped")?;
            }
        }
        let view = LogView::of(line);
        if self.json {
            return writeln!(out, "{}", serde_json::to_string(&view)?);
        }
        let fields = match &view.fields {
            Value::Null => String::new(),
            other => format!(" {other}"),
        };
        // Everything after the time is the plugin's text.
        writeln!(
            out,
            "{} {:<6} {:<5} {}{}",
            view.time.as_deref().unwrap_or("-"),
            Escaped::line(&view.stream).to_string(),
            Escaped::line(&view.level).to_string(),
            Escaped::line(&view.message),
            Escaped::line(&fields),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sequence: u64, message: &str) -> LogLine {
        LogLine {
            time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 5_000_000,
            }),
            stream: "stderr".into(),
            level: "warn".into(),
            message: message.into(),
            fields_json: String::new(),
            sequence,
        }
    }

    fn text(json: bool, lines: &[LogLine]) -> String {
        let mut printer = LogPrinter::new(json);
        let mut out = Vec::new();
        for l in lines {
            printer.print(&mut out, l).expect("writes");
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_gap_in_the_sequence_says_how_many_lines_were_dropped() {
        let out = text(false, &[line(7, "a"), line(8, "b"), line(12, "c")]);
        assert_eq!(
            out,
            "2027-01-15T08:00:00.005Z stderr warn  a\n\
             2027-01-15T08:00:00.005Z stderr warn  b\n\
             … 3 lines dropped\n\
             2027-01-15T08:00:00.005Z stderr warn  c\n"
        );
        let json = text(true, &[line(1, "a"), line(3, "b")]);
        let docs: Vec<Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(docs[1], serde_json::json!({"dropped": 1}));
        assert_eq!(
            docs[2],
            serde_json::json!({"time": "2027-01-15T08:00:00.005Z", "stream": "stderr",
                "level": "warn", "message": "b", "fields": null, "sequence": 3})
        );
    }

    #[test]
    fn a_hostile_line_cannot_move_the_cursor_or_forge_a_line() {
        let mut hostile = line(
            1,
            "ok\n2027-01-01T00:00:00Z stderr error forged\u{1b}[2J\u{9b}1A",
        );
        hostile.fields_json = r#"{"k": "\u001b]0;title\u0007"}"#.into();
        let out = text(false, &[hostile]);
        assert_eq!(out.lines().count(), 1, "{out:?}");
        assert!(!out.contains('\u{1b}') && !out.contains('\u{9b}') && !out.contains('\u{7}'));
    }
}
