//! The OTLP/gRPC exporter: started by the logging init when the `OTEL_*`
//! environment asks for it, flushed (bounded) and stopped when serving
//! ends.
//!
//! The gRPC client needs a tokio runtime to drive its connection, and the
//! plugin's own runtime may be single-threaded or already gone when the
//! last spans leave, so the exporter gets a small runtime of its own, on
//! one thread (`outboard-otlp`), next to the batch processor's thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tokio::sync::oneshot;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;

/// The tracing target of the SDK's own spans; the log filter always lets
/// them through while exporting, whatever `RUST_LOG` says.
pub(crate) const TARGET: &str = "outboard_plugin::trace";

/// How long the spans still queued get to leave when serving ends. The
/// host sends SIGKILL 2 s after SIGTERM, and most of that may go to
/// draining calls ([`SIGNAL_GRACE`](crate::SIGNAL_GRACE)).
const FLUSH_BOUND: Duration = Duration::from_millis(400);

/// The name of the exporter's thread.
const THREAD: &str = "outboard-otlp";

/// The crates that carry an export. Their spans are never exported: at
/// `RUST_LOG=trace` each export would otherwise make spans of its own to
/// export, without end.
const EXPORT_MACHINERY: [&str; 10] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "tokio",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_proto",
];

/// The exporter while it runs.
#[derive(Debug)]
struct Running {
    /// Owns the batch processor (and its thread).
    provider: SdkTracerProvider,
    /// Ends the exporter's runtime.
    stop: oneshot::Sender<()>,
    /// The exporter's runtime thread.
    thread: JoinHandle<()>,
}

/// The exporter, once started; taken by [`shutdown`].
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Whether [`RUNNING`] holds the exporter: read on every `Invoke`, so
/// without taking the lock.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether the environment asks for span export: an OTLP endpoint
/// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`),
/// and neither `OTEL_TRACES_EXPORTER=none` nor `OTEL_SDK_DISABLED=true`.
pub(crate) fn wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let exporter_none = var("OTEL_TRACES_EXPORTER")
        .is_some_and(|v| v.split(',').all(|e| e.trim().eq_ignore_ascii_case("none")));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    endpoint && !exporter_none && !disabled
}

/// Whether spans are being exported (the exporter started and was not yet
/// shut down).
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Starts the exporter if the environment asks for it and returns the
/// tracing layer feeding it; `Ok(None)` when it does not ask (or the
/// exporter already runs). The error says why export is off.
pub(crate) fn layer<S>() -> Result<Option<impl Layer<S>>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !wanted(|name| std::env::var(name).ok()) {
        return Ok(None);
    }
    let mut running = RUNNING
        .lock()
        .map_err(|_| "the exporter's state is poisoned".to_owned())?;
    if running.is_some() {
        return Ok(None);
    }
    let started = start()?;
    // Service name and resource attributes come from `OTEL_SERVICE_NAME`
    // and `OTEL_RESOURCE_ATTRIBUTES` (the host sets the former to the
    // plugin's name).
    let tracer = started.provider.tracer("outboard-plugin");
    // Authors who use the OpenTelemetry API directly (or propagate to
    // services they call) get the same provider and the W3C propagator.
    opentelemetry::global::set_tracer_provider(started.provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    *running = Some(started);
    ACTIVE.store(true, Ordering::Release);
    let not_the_exporter = FilterFn::new(|meta| !is_export_machinery(meta.target()));
    Ok(Some(
        tracing_opentelemetry::layer::<S>()
            .with_tracer::<SdkTracer>(tracer)
            // A span's own attributes say what it is; where in the code,
            // on which thread, under which target, and how long it sat
            // idle are noise on every span.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(not_the_exporter),
    ))
}

/// Whether `target` is in one of the [`EXPORT_MACHINERY`] crates (its
/// first path segment).
fn is_export_machinery(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    EXPORT_MACHINERY.contains(&krate)
}

/// Builds the exporter in its own runtime and starts that runtime's thread.
fn start() -> Result<Running, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the exporter's runtime: {e}"))?;
    let exporter = {
        // The gRPC channel is made (lazily connecting) on this runtime.
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(THREAD.to_owned())
        .spawn(move || {
            let _ = runtime.block_on(stopped);
        })
        .map_err(|e| format!("cannot start the exporter's thread: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    Ok(Running {
        provider,
        stop,
        thread,
    })
}

/// Sends the spans still queued (waiting at most [`FLUSH_BOUND`]) and stops
/// the exporter. Called when serving ends, after a `Shutdown` call or a
/// signal; later spans are dropped. Does nothing if export is off.
pub(crate) fn shutdown() {
    let running = match RUNNING.lock() {
        Ok(mut running) => {
            ACTIVE.store(false, Ordering::Release);
            running.take()
        }
        Err(_) => None,
    };
    let Some(Running {
        provider,
        stop,
        thread,
    }) = running
    else {
        return;
    };
    if let Err(e) = provider.shutdown_with_timeout(FLUSH_BOUND) {
        tracing::warn!(error = %e, "spans not all exported before stopping");
    }
    let _ = stop.send(());
    let _ = thread.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_exporters_own_crates_are_not_exported() {
        assert!(is_export_machinery("h2::proto::connection"));
        assert!(is_export_machinery("hyper"));
        assert!(is_export_machinery("opentelemetry_sdk::trace"));
        assert!(!is_export_machinery("outboard_plugin::trace"));
        assert!(!is_export_machinery("h2o_client"));
        assert!(!is_export_machinery("tower_http::trace::on_request"));
        assert!(!is_export_machinery("my_plugin"));
    }

    #[test]
    fn an_endpoint_asks_for_export() {
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
    }

    #[test]
    fn no_endpoint_or_an_empty_one_is_no_export() {
        assert!(!wanted(env(&[])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(!wanted(env(&[("OTEL_SERVICE_NAME", "p")])));
    }

    #[test]
    fn exporter_none_or_sdk_disabled_turns_export_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        assert!(!wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(!wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "NONE")])));
        assert!(!wanted(env(&[endpoint, ("OTEL_SDK_DISABLED", "true")])));
        assert!(wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(wanted(env(&[endpoint, ("OTEL_SDK_DISABLED", "false")])));
    }
}
