//! Traces out over OTLP/gRPC, when the standard OpenTelemetry variables ask
//! for them: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, and `OTEL_TRACES_EXPORTER` not
//! `none`. The SDK reads the rest itself (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and its argument,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `OTEL_BSP_*`); the service is
//! `outboard` unless those name one.
//!
//! Spans leave in batches, off the job's path: a slow or dead collector
//! costs a job nothing but the spans, and the flush at exit is bounded.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The service name when the environment names none.
const SERVICE: &str = "outboard";

/// The longest the spans still queued may take to leave at exit: a
/// collector that does not answer must not hold the process.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporting pipeline, to be shut down (flushed) before the process
/// exits.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

/// The layer that turns the host's spans into exported ones, and the
/// pipeline behind it; `Ok(None)` when the environment does not ask for
/// traces, `Err` (to be logged, never fatal) when the exporter cannot be
/// built. Must run inside the Tokio runtime the exporter will use.
pub(crate) fn start<S>() -> Result<Option<(impl Layer<S>, Telemetry)>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !wanted(|key| std::env::var(key).ok()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|err| format!("traces will not be exported: {err}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    // The host injects and extracts context through the global propagator.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SERVICE))
        // The span's own attributes say what it is; where in the code,
        // on which thread, under which target, and how long it sat idle
        // (`busy_ns`, `idle_ns`) are noise for an operator.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        // Only the spans meant for a trace, not every log line as an event.
        .with_filter(
            Targets::new().with_target(outboard_host::trace::TARGET, tracing::Level::TRACE),
        );
    Ok(Some((layer, Telemetry { provider })))
}

impl Telemetry {
    /// Sends the spans still queued and stops the pipeline, waiting at most
    /// [`FLUSH_TIMEOUT`]; a collector that is down is logged, not an error.
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        let flush =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT));
        // The SDK bounds its own wait; this bounds ours should it not.
        match tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_secs(1), flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!("some trace spans were not exported: {err}"),
            Ok(Err(err)) => tracing::warn!("the trace exporter's flush failed: {err}"),
            Err(_) => tracing::warn!(
                "the trace exporter did not flush within {FLUSH_TIMEOUT:?}; its last spans are lost"
            ),
        }
    }
}

/// Whether the environment asks for traces: an OTLP endpoint (general or
/// for traces) set, and the traces exporter not `none`.
fn wanted(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |key: &str| get(key).is_some_and(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let none = get("OTEL_TRACES_EXPORTER")
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("none")));
    endpoint && !none
}

/// What to tell the operator when the environment asks for a protocol
/// other than gRPC (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`): the export is gRPC only, and an HTTP
/// collector port would otherwise get nothing without a word.
pub(crate) fn protocol_warning(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |key: &str| get(key).filter(|v| !v.trim().is_empty());
    let (key, protocol) = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|key| Some((key, set(key)?)))?;
    if protocol.trim() == "grpc" {
        return None;
    }
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default();
    Some(format!(
        "traces: {key}={protocol} is not supported, exporting over gRPC to {endpoint} \
         (point it at the collector's gRPC port, 4317 by default)"
    ))
}

/// The resource the SDK detects from the environment, with the service
/// named `outboard` where the environment names none.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name(SERVICE).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn traces_are_exported_only_to_an_endpoint_and_not_when_turned_off() {
        assert!(!wanted(env(&[])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
        ])));
        assert!(!wanted(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "None"),
        ])));
        assert!(!wanted(env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
    }

    #[test]
    fn a_protocol_other_than_grpc_is_named_with_where_the_spans_go() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert_eq!(protocol_warning(env(&[endpoint])), None);
        assert_eq!(
            protocol_warning(env(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])),
            None
        );
        let warning = protocol_warning(env(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]))
        .expect("a warning");
        assert!(
            warning.starts_with(
                "traces: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf is not supported, \
                 exporting over gRPC to http://c:4318"
            ),
            "{warning}"
        );
        // The traces' own variable wins, as it does for the SDK.
        let warning = protocol_warning(env(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://t:4318/v1/traces",
            ),
        ]))
        .expect("a warning");
        assert!(
            warning.contains("TRACES_PROTOCOL=http/json")
                && warning.contains("http://t:4318/v1/traces"),
            "{warning}"
        );
        assert_eq!(
            protocol_warning(env(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ])),
            None
        );
    }
}
