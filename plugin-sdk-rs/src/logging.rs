//! Logs as the host reads them: one JSON object per line on stderr, with
//! `level`, `message` and the event's fields at the top level. The host turns
//! each line into a log record carrying the plugin's name.
//!
//! With the `otel` feature, when the `OTEL_*` environment asks for span
//! export (PROTOCOL.md, "Trace context"), the same subscriber also exports
//! spans over OTLP/gRPC, and a line written inside a span (an `Invoke`, or
//! the plugin's own spans within it) carries `trace_id` and `span_id`.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

use crate::telemetry;
use crate::telemetry::ids::WithTraceIds;

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the JSON-lines subscriber as the global default, filtered by
/// `RUST_LOG` (default [`DEFAULT_FILTER`]), with span export when the
/// environment asks for it. Does nothing if a global subscriber is already
/// installed.
pub fn init() {
    let _ = try_init();
}

/// Like [`init`], but says whether another subscriber was already
/// installed.
pub fn try_init() -> Result<(), TryInitError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (export, refused) = export_layer();
    let exporting = export.is_some();
    let filter = if exporting {
        with_sdk_spans(filter)
    } else {
        filter
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json_lines(std::io::stderr))
        .with(export)
        .try_init();
    if let (Ok(()), Some(reason)) = (&installed, refused) {
        tracing::warn!(reason, "trace export is off");
    }
    if installed.is_err() && exporting {
        // Another subscriber won: the exporter started for this one would
        // never see a span.
        telemetry::shutdown();
    }
    installed
}

/// The span-export layer if the environment asks for one, and why it could
/// not be made if it could not.
#[cfg(feature = "otel")]
fn export_layer<S>() -> (Option<impl Layer<S>>, Option<String>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match telemetry::layer() {
        Ok(layer) => (layer, None),
        Err(reason) => (None, Some(reason)),
    }
}

/// Without the `otel` feature there is never an export layer.
#[cfg(not(feature = "otel"))]
fn export_layer() -> (Option<tracing_subscriber::layer::Identity>, Option<String>) {
    (None, None)
}

/// `filter`, letting the SDK's own `Invoke` span through whatever
/// `RUST_LOG` says: it is exported, never printed.
#[cfg(feature = "otel")]
fn with_sdk_spans(filter: EnvFilter) -> EnvFilter {
    match format!("{}=info", telemetry::TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Without the `otel` feature the SDK has no spans of its own.
#[cfg(not(feature = "otel"))]
fn with_sdk_spans(filter: EnvFilter) -> EnvFilter {
    filter
}

/// The layer writing JSON lines to `writer`.
fn json_lines<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        // Fields at the top level: the host reads `message` and `level` there.
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
        .map_event_format(WithTraceIds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn writes_one_flat_json_object_per_event() {
        let buffer = Buffer::default();
        let sub = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(json_lines(buffer.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                duration_ms = 1500u64,
                phase = "post_container",
                "job finished"
            );
            tracing::debug!("filtered out");
        });
        let out = String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("utf-8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "job finished");
        assert_eq!(v["duration_ms"], 1500);
        assert_eq!(v["phase"], "post_container");
        assert!(v["timestamp"].is_string(), "{v}");
    }
}
