//! Trace spans and W3C trace context, through `tracing` and the
//! OpenTelemetry API only: which SDK exports the spans, if any, is the
//! embedding program's choice.
//!
//! The spans (`outboard.job`, `outboard.dispatch`, `outboard.invoke`) use
//! the target [`TARGET`], which a program's log layers leave out. With no
//! layer interested in it (no OpenTelemetry layer installed), their
//! callsites are disabled and cost a check of a cached flag; a log line's
//! text never changes with them.
//!
//! Context goes in and out through OpenTelemetry's global text-map
//! propagator: a program that exports installs the W3C one; left alone it
//! is a no-op, so nothing is injected and nothing extracted.

use std::collections::HashMap;
use std::marker::PhantomData;

use opentelemetry::context::FutureExt;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span meant for a trace (not for a log).
pub const TARGET: &str = "outboard::trace";

/// The W3C header naming the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendors' state along with it.
pub const TRACESTATE: &str = "tracestate";

/// `span`'s context as W3C headers (`traceparent`, `tracestate` when there
/// is state): empty when the span is disabled or no propagator is
/// installed.
pub fn headers(span: &tracing::Span) -> HashMap<String, String> {
    if span.is_disabled() {
        return HashMap::new();
    }
    context_headers(&span.context())
}

/// `cx` as W3C headers: empty when it has no valid span or no propagator
/// is installed.
pub fn context_headers(cx: &opentelemetry::Context) -> HashMap<String, String> {
    let mut carrier = Carrier::default();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut carrier));
    carrier.0
}

/// The remote parent in the process's environment (`TRACEPARENT`,
/// `TRACESTATE`), as a traced process hands it to what it starts.
pub fn env_parent() -> Option<opentelemetry::Context> {
    let traceparent = std::env::var("TRACEPARENT").ok();
    let tracestate = std::env::var("TRACESTATE").ok();
    remote_parent(
        |key| match key {
            TRACEPARENT => traceparent.as_deref(),
            TRACESTATE => tracestate.as_deref(),
            _ => None,
        },
        "the environment's TRACEPARENT",
    )
}

/// Runs `work` with `parent`, if any, as the current OpenTelemetry
/// context: the spans it starts with no span around them are children of
/// `parent` (a dispatch asked for over the control socket, say).
pub async fn under<F: Future>(parent: Option<opentelemetry::Context>, work: F) -> F::Output {
    match parent {
        Some(cx) => work.with_context(cx).await,
        None => work.await,
    }
}

/// The remote parent named by W3C headers, looked up with `get` (an
/// environment, gRPC metadata). `None` when there is no `traceparent`, no
/// propagator installed, or a malformed one, which is only logged (at
/// debug): a bad header from a caller never fails their job. `from` says
/// where the headers came from, for that line.
pub fn remote_parent<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    from: &str,
) -> Option<opentelemetry::Context> {
    let traceparent = get(TRACEPARENT)?;
    // No W3C propagator installed: traces are off, there is nothing to
    // parent (and nothing malformed to report).
    let w3c = opentelemetry::global::get_text_map_propagator(|p| {
        p.fields().any(|field| field == TRACEPARENT)
    });
    if !w3c {
        return None;
    }
    let lookup = Lookup(get, PhantomData);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&lookup));
    if cx.span().span_context().is_valid() {
        Some(cx)
    } else {
        tracing::debug!(
            "ignoring the traceparent {} from {from}: not a valid W3C one",
            shown(traceparent)
        );
        None
    }
}

/// The longest part of a malformed header quoted in a log line, in
/// characters: a valid `traceparent` has 55, and the header is a caller's
/// (up to the transport's bound), not ours to repeat at length.
const SHOWN: usize = 64;

/// `value` quoted (control characters escaped) and cut to [`SHOWN`]
/// characters.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(SHOWN).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Makes the context `parent` finds, if any, the parent of `span`, which
/// must not have started (no child created, never entered). Without an
/// OpenTelemetry layer the span is disabled and `parent` is not called.
pub fn set_parent(span: &tracing::Span, parent: impl FnOnce() -> Option<opentelemetry::Context>) {
    if span.is_disabled() {
        return;
    }
    if let Some(parent) = parent() {
        // Fails only if the span has started, which the callers rule out.
        let _ = span.set_parent(parent);
    }
}

/// A count as a span attribute: the OpenTelemetry layer exports only
/// signed integers as Int (an unsigned one, or a `usize`, becomes a
/// string), so counts are recorded as `i64`.
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Marks `span` as failed with `message` (the span's status, when exported).
pub(crate) fn fail(span: &tracing::Span, message: &str) {
    if !span.is_disabled() {
        span.set_status(opentelemetry::trace::Status::error(message.to_owned()));
    }
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Headers read through a function; the marker ties what it returns to
/// the lookup itself, as `Extractor` wants.
struct Lookup<'a, G>(G, PhantomData<&'a str>);

impl<'a, G: Fn(&str) -> Option<&'a str>> Extractor for Lookup<'a, G> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    #[test]
    fn a_malformed_header_is_quoted_escaped_and_cut() {
        assert_eq!(shown("00-x\n-01"), "\"00-x\\n-01\"");
        let huge = "0".repeat(16 * 1024);
        let line = shown(&huge);
        assert!(
            line.chars().count() <= SHOWN + 3,
            "{} characters",
            line.len()
        );
        assert!(line.ends_with("…\""), "{line}");
    }

    #[test]
    fn a_disabled_span_carries_no_context() {
        // No subscriber: the span is disabled, whatever propagator is set.
        let span = tracing::info_span!(target: TARGET, "outboard.invoke");
        assert!(headers(&span).is_empty());
    }

    #[test]
    fn a_span_carries_its_context_out_under_its_remote_parent_and_a_bad_parent_is_ignored() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let carried = tracing::subscriber::with_default(subscriber, || {
            let malformed = [(TRACEPARENT, "00-not-a-trace-01")];
            assert!(remote_parent(lookup(&malformed), "a test").is_none());
            assert!(remote_parent(lookup(&[]), "a test").is_none());

            let given = [(TRACEPARENT, PARENT), (TRACESTATE, "vendor=abc")];
            let span = tracing::info_span!(target: TARGET, "outboard.invoke");
            set_parent(&span, || remote_parent(lookup(&given), "a test"));
            fail(&span, "it crashed");
            let carried = headers(&span);
            drop(span);
            carried
        });
        let traceparent = &carried[TRACEPARENT];
        assert!(
            traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "the same trace: {traceparent}"
        );
        assert!(
            !traceparent.contains("b7ad6b7169203331"),
            "a span of its own"
        );
        assert_eq!(carried[TRACESTATE], "vendor=abc");

        let spans = exporter.get_finished_spans().expect("finished spans");
        let [span] = &spans[..] else {
            panic!("one span, not {spans:?}")
        };
        assert_eq!(span.name, "outboard.invoke");
        assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(
            span.status,
            opentelemetry::trace::Status::error("it crashed")
        );
        assert!(traceparent.contains(&span.span_context.span_id().to_string()));
    }
}
