//! `GET /metrics`: every figure as Prometheus text, or OpenMetrics text
//! when the scraper asks for it (`Accept: application/openmetrics-text`),
//! encoded by `prometheus-client` from one [`collector::FiguresCollector`]
//! that reads the daemon at each scrape.
//!
//! # Layout
//!
//! - this file: the handler, the content negotiation, the encoding.
//! - `scrape`: [`scrape::Scrape`], what one scrape shows, as plain values.
//! - `gather`: a scrape read from the running daemon.
//! - `collector`: the families, encoded from a scrape.
//! - `process`: the daemon's own `process_*` figures.

pub(crate) mod collector;
mod gather;
mod process;
pub(crate) mod scrape;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

use super::HttpState;
use super::blocking::Unanswered;
use collector::{FiguresCollector, Read};

/// The `Content-Type` of OpenMetrics text, as `prometheus-client` writes
/// it (version 1.0.0, ending in `# EOF`).
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape may take to read and encode; past it the scraper gets
/// 503 rather than a connection held open.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(10);

/// The exposition formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text, version 0.0.4: what any scraper understands.
    Prometheus,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics when it is
    /// acceptable (q above 0) and weighs at least as much as plain text,
    /// else Prometheus text.
    pub(crate) fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut openmetrics = 0.0_f64;
        let mut plain = 0.0_f64;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS,
        }
    }
}

/// The registry a scrape encodes: one collector reading through `read`.
pub(crate) fn registry(read: Read) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FiguresCollector::new(read)));
    registry
}

/// `registry` encoded in `format`.
pub(crate) fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    match format {
        Format::Prometheus => prometheus_text::encode(&mut body, registry)?,
        Format::OpenMetrics => text::encode(&mut body, registry)?,
    }
    Ok(body)
}

/// The registry over the running daemon.
pub(crate) fn live_registry(shared: Arc<super::state::Shared>) -> Registry {
    registry(Arc::new(move || gather::gather(&shared)))
}

/// `GET /metrics`.
pub(crate) async fn handler(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let registry = state.registry();
    // The reading of /proc and the encoding block: off the async threads,
    // and bounded.
    let encoded = state
        .shared()
        .blocking()
        .run(ENCODE_TIMEOUT, move || encode(&registry, format))
        .await;
    match encoded {
        Ok(Ok(body)) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )],
            body,
        )
            .into_response(),
        Ok(Err(_)) => unavailable("the metrics could not be encoded"),
        Err(Unanswered::Failed(err)) => {
            tracing::warn!("the metrics encoding failed: {err}");
            unavailable("the metrics could not be encoded")
        }
        Err(Unanswered::TimedOut) => unavailable("the metrics took too long to read"),
    }
}

/// 503 with `why`, as plain text.
fn unavailable(why: &str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}
