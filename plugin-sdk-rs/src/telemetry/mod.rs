//! Continuing the host's trace (PROTOCOL.md, "Trace context").
//!
//! With the `otel` feature and an `OTEL_*` environment that asks for
//! export, [`logging::init`](crate::logging::init) also installs an
//! OpenTelemetry layer whose spans leave over OTLP/gRPC ([`export`]), every
//! `Invoke` runs inside a span `outboard.plugin.invoke` whose parent is the
//! host's `traceparent` ([`span`]), and log lines written inside it carry
//! `trace_id` and `span_id` ([`ids`]). Without the feature, or without the
//! environment, none of this exists: no span, no exporter thread, the log
//! lines as they always were.

pub(crate) mod ids;

#[cfg(feature = "otel")]
mod export;
#[cfg(feature = "otel")]
mod span;

#[cfg(feature = "otel")]
pub(crate) use export::{TARGET, layer, shutdown};
#[cfg(feature = "otel")]
pub(crate) use span::{invoke_span, record_error};

#[cfg(not(feature = "otel"))]
mod off {
    //! The same entry points when the SDK is built without `otel`.

    use crate::Invocation;

    /// No span: nothing would record it.
    pub(crate) fn invoke_span(_plugin: &str, _invocation: &Invocation) -> tracing::Span {
        tracing::Span::none()
    }

    /// Nothing to record on.
    pub(crate) fn record_error(_span: &tracing::Span, _message: &str) {}

    /// Nothing to flush.
    pub(crate) fn shutdown() {}
}

#[cfg(not(feature = "otel"))]
pub(crate) use off::{invoke_span, record_error, shutdown};
