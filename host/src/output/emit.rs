//! Logging a line or a grouped report, with what a plugin wrote escaped.

use super::Stream;
use super::crash::{Block, Output};
use super::escape::Escaped;
use super::record::forward_line;

/// Logs one line or grouped report.
pub(super) fn emit(plugin: &str, stream: Stream, output: Output) {
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
            block = %Escaped::block(&text),
            "{}",
            Escaped::line(&message)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::output::crash::Kind;
    use crate::output::crash::samples::*;

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

    #[test]
    fn a_line_cannot_forge_a_record_or_drive_the_terminal() {
        let forged = "ok\n2026-01-01T00:00:00Z  INFO outboard: job done\r\x1b[2J";
        let text = emitted(false, line(forged));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        assert!(
            text.contains(r"ok\n2026-01-01T00:00:00Z  INFO outboard: job done\r\u{1b}[2J"),
            "{text}"
        );
        let json =
            serde_json::json!({"level": "warn", "message": "a\nb\x1b[2J", "k": "v\r\u{9b}2J"})
                .to_string();
        let text = emitted(false, line(&json));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{9b}'),
            "{text:?}"
        );
    }
}
