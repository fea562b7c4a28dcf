//! The span every `Invoke` runs in, continuing the host's trace.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::export::{TARGET, active};
use crate::Invocation;

/// The span `outboard.plugin.invoke` for `invocation` of `plugin`, a child
/// of the W3C `traceparent` (with `tracestate`) in its trace context, or a
/// new root when there is none or it is malformed. A disabled span when
/// spans are not exported.
pub(crate) fn invoke_span(plugin: &str, invocation: &Invocation) -> tracing::Span {
    if !active() {
        return tracing::Span::none();
    }
    // `parent: None`: whatever span the gRPC server may be in is not the
    // host's; the host's span comes from the trace context below.
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "outboard.plugin.invoke",
        otel.kind = "server",
        outboard.plugin = plugin,
        outboard.phase = invocation.phase.as_str(),
        outboard.invocation_id = invocation.invocation_id.as_str(),
        // i64: the OpenTelemetry layer exports only signed integers as
        // Int (an unsigned one becomes a string).
        outboard.attempt = i64::from(invocation.attempt),
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&invocation.trace_context);
    if parent.span().span_context().is_valid() {
        // Only fails if the span is disabled or already started; it is
        // neither, and a root span is the right fallback anyway.
        let _ = span.set_parent(parent);
    }
    span
}

/// Marks `span` as failed with `message` (the status the host is answered
/// with).
pub(crate) fn record_error(span: &tracing::Span, message: &str) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
}
