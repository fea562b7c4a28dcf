//! Logs as the host reads them: one JSON object per line on stderr, with
//! `level`, `message` and the event's fields at the top level. The host turns
//! each line into a log record carrying the plugin's name.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the JSON-lines subscriber as the global default, filtered by
/// `RUST_LOG` (default [`DEFAULT_FILTER`]). Does nothing if a global
/// subscriber is already installed.
pub fn init() {
    let _ = try_init();
}

/// Like [`init`], but says whether another subscriber was already
/// installed.
pub fn try_init() -> Result<(), TryInitError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    subscriber(std::io::stderr, filter).try_init()
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        // Fields at the top level: the host reads `message` and `level` there.
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
        .with_env_filter(filter)
        .finish()
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
        let sub = subscriber(buffer.clone(), EnvFilter::new("info"));
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
