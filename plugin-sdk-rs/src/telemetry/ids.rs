//! Trace and span ids in the JSON log lines: a line written while a span
//! with an OpenTelemetry context is current gets `trace_id` and `span_id`
//! at the top level, where the host keeps them among the record's fields.

use std::fmt::{self, Write as _};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event formatter writing one JSON object per line, with the current
/// trace and span ids added to the object when there are any.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F>(pub(crate) F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(ids) = current() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&add_ids(line, &ids))
    }
}

/// A trace id and a span id, as lower-case hex (W3C form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ids {
    /// 32 hex digits.
    pub(crate) trace_id: String,
    /// 16 hex digits.
    pub(crate) span_id: String,
}

/// The ids of the OpenTelemetry context current on this thread (the
/// tracing layer makes a span's context current while the span is
/// entered), if it holds a valid span. Nothing to look up while spans are
/// not exported: every log line passes here.
#[cfg(feature = "otel")]
fn current() -> Option<Ids> {
    use opentelemetry::trace::TraceContextExt;

    if !super::export::active() {
        return None;
    }
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| Ids {
        trace_id: context.trace_id().to_string(),
        span_id: context.span_id().to_string(),
    })
}

/// Without OpenTelemetry there are never ids.
#[cfg(not(feature = "otel"))]
fn current() -> Option<Ids> {
    None
}

/// `line`, one JSON object and a newline, with the ids added as its last
/// members. Anything else is returned as it is. The ids are hex digits, so
/// they need no escaping.
pub(crate) fn add_ids(line: String, ids: &Ids) -> String {
    let Some(head) = line.strip_suffix("}\n") else {
        return line;
    };
    let separator = if head.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let mut out = String::with_capacity(line.len() + 80);
    out.push_str(head);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{separator}\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
        ids.trace_id, ids.span_id
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
        }
    }

    #[test]
    fn ids_become_the_last_members_of_the_object() {
        let line = add_ids(
            r#"{"level":"INFO","message":"hi"}"#.to_owned() + "\n",
            &ids(),
        );
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("still one JSON object");
        assert_eq!(v["message"], "hi");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"], "00f067aa0ba902b7");
    }

    #[test]
    fn an_empty_object_gets_no_stray_comma() {
        let line = add_ids("{}\n".to_owned(), &ids());
        let v: serde_json::Value = serde_json::from_str(&line).expect("still one JSON object");
        assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    }

    #[test]
    fn a_line_that_is_not_an_object_is_left_alone() {
        assert_eq!(add_ids("plain\n".to_owned(), &ids()), "plain\n");
    }
}
