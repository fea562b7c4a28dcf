//! The tracing layer that feeds the [`LogBook`]: it turns each plugin line
//! the host logs back into a [`LogLine`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use outboard_host::Stream;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::{LogBook, LogLine};

/// The target of the host's records of plugin output.
const TARGET: &str = "outboard::plugin";

/// Records every plugin line into a [`LogBook`]. Its own filter lets
/// every plugin line through, at every level, and nothing else, so it
/// works beside a terminal layer filtered by `RUST_LOG` (install that
/// filter on the terminal's layer, not globally).
#[derive(Debug)]
pub struct LogLayer {
    book: LogBook,
}

impl LogLayer {
    /// The layer for `book`, with its filter: only `outboard::plugin`
    /// events, at every level, whatever filters the other layers have.
    pub(super) fn filtered<S>(book: LogBook) -> Filtered<LogLayer, Targets, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        LogLayer { book }.with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE))
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // The filter matches targets by prefix; only the exact one is the
        // host's record of a plugin line.
        if event.metadata().target() != TARGET {
            return;
        }
        let mut seen = Seen::default();
        event.record(&mut seen);
        if let Some(line) = seen.into_line(*event.metadata().level()) {
            self.book.record(line);
        }
    }
}

/// The fields of one plugin event.
#[derive(Default)]
struct Seen {
    plugin: Option<String>,
    stream: Option<Stream>,
    message: String,
    /// A JSON line's other keys, as the host logged them (JSON text).
    fields: Option<String>,
    /// A crash report's `kind`, `lines` and `block`.
    report: Map<String, Value>,
}

impl Seen {
    /// The line, if the event was one: the host's own notes about a
    /// plugin's output (a read error, output before the handshake) carry
    /// no stream and are not the plugin's lines.
    fn into_line(self, level: tracing::Level) -> Option<LogLine> {
        let fields = match (self.fields, self.report.is_empty()) {
            (Some(text), _) => Some(json_object_text(text)),
            (None, false) => Some(Value::Object(self.report).to_string()),
            (None, true) => None,
        };
        Some(LogLine {
            plugin: Arc::from(self.plugin?),
            sequence: 0,
            time: SystemTime::now(),
            stream: self.stream?,
            level,
            message: Arc::from(self.message),
            fields: fields.map(Arc::from),
        })
    }
}

/// `text` if it is a JSON object, else an object holding it. The host
/// escapes control characters in a line's fields, and its escapes of DEL
/// and the C1 controls are not JSON's: such text is kept, as a string.
fn json_object_text(text: String) -> String {
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(_)) => text,
        _ => serde_json::json!({ "text": text }).to_string(),
    }
}

impl Visit for Seen {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "plugin" => self.plugin = Some(value.to_owned()),
            "stream" => {
                self.stream = match value {
                    "stdout" => Some(Stream::Stdout),
                    "stderr" => Some(Stream::Stderr),
                    _ => None,
                }
            }
            "kind" => {
                self.report.insert("kind".into(), value.into());
            }
            _ => self.record_debug(field, &value),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "lines" {
            self.report.insert("lines".into(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `message`, `fields` and `block` are logged with `%`: their Debug
        // is their Display, the host's escaped text.
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "fields" => self.fields = Some(format!("{value:?}")),
            "block" => {
                self.report
                    .insert("block".into(), format!("{value:?}").into());
            }
            _ => {}
        }
    }
}
