//! One subscriber's call: wait for the plugin to be ready, call it, both
//! within the subscriber's timeout, and retry an idempotent subscription
//! that opted in.

use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing::field::Empty;

use super::report::FailureKind;
use super::route::Subscriber;
use crate::context::SentContext;
use crate::error::CallError;
use crate::instance::Reply;
use crate::supervisor::State;
use crate::trace;

/// What one subscriber's call came to.
#[derive(Debug)]
pub(super) struct Call {
    /// The last attempt's reply or failure.
    pub(super) reply: Result<Reply, CallError>,
    /// Attempts made, the first included.
    pub(super) attempts: u32,
    /// How long the call took, retries included.
    pub(super) duration: Duration,
}

impl Subscriber {
    /// Calls the plugin: waits for it to be ready (if it is restarting) and
    /// for its answer, together within the timeout; retries as configured.
    pub(super) async fn call(
        &self,
        phase: &str,
        invocation_id: &str,
        context: &SentContext<'_>,
    ) -> Call {
        let started = Instant::now();
        let allowed = self.retry.map_or(1, |r| r.attempts.max(1));
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!(
                target: trace::TARGET,
                "outboard.invoke",
                outboard.plugin = &*self.name,
                outboard.phase = phase,
                // i64: the OpenTelemetry layer exports only signed
                // integers as Int (an unsigned one becomes a string).
                outboard.attempt = i64::from(attempt),
                outboard.outcome = Empty,
                outboard.failure = Empty,
                outboard.patch.ops = Empty,
            );
            let reply = self
                .attempt(phase, invocation_id, attempt, context)
                .instrument(span.clone())
                .await;
            record_attempt(&span, &reply);
            match (reply, self.retry) {
                (Err(err), Some(retry)) if attempt < allowed && self.retryable(&err) => {
                    let wait = retry.backoff.saturating_mul(1 << (attempt - 1).min(16));
                    tracing::debug!(
                        plugin = &*self.name,
                        attempt,
                        "retrying in {wait:?} after: {err}"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (reply, _) => {
                    return Call {
                        reply,
                        attempts: attempt,
                        duration: started.elapsed(),
                    };
                }
            }
        }
    }

    /// One attempt: readiness and the call share the subscriber's timeout.
    async fn attempt(
        &self,
        phase: &str,
        invocation_id: &str,
        attempt: u32,
        context: &SentContext<'_>,
    ) -> Result<Reply, CallError> {
        // A phase's timeout can come from code, unchecked: saturate rather
        // than overflow the clock.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(self.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        let plugin = self.plugin.ready(deadline).await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        plugin
            .invoke(
                phase,
                invocation_id,
                attempt,
                context,
                left.max(Duration::from_millis(1)),
            )
            .await
            // The time left after waiting for readiness is an implementation
            // detail; the timeout is the subscriber's.
            .map_err(|err| match err {
                CallError::Timeout(_) => CallError::Timeout(self.timeout),
                other => other,
            })
    }

    /// Whether a failed attempt is worth another: the plugin crashed, was
    /// not ready, timed out or lost its connection, and is not quarantined
    /// (a quarantined plugin will not come back by itself).
    fn retryable(&self, err: &CallError) -> bool {
        matches!(
            err,
            CallError::Crashed { .. }
                | CallError::NotReady(_)
                | CallError::Timeout(_)
                | CallError::Unavailable(_)
        ) && self.plugin.state() != State::Failed
    }
}

/// An attempt's end on its `outboard.invoke` span: its outcome in the
/// metrics' words (`ok`, `vetoed`, `failed`, `timed_out`, `crashed`), the
/// failure's kind as the report names it, the size of its patch, and an
/// error as the span's status.
fn record_attempt(span: &tracing::Span, reply: &Result<Reply, CallError>) {
    if span.is_disabled() {
        return;
    }
    match reply {
        Ok(Reply::Continue { patch, .. }) => {
            span.record("outboard.outcome", "ok");
            span.record("outboard.patch.ops", trace::count(patch.len()));
        }
        Ok(Reply::Abort { .. }) => {
            span.record("outboard.outcome", "vetoed");
        }
        Err(err) => {
            let kind = FailureKind::of(err);
            span.record("outboard.outcome", kind.outcome());
            span.record("outboard.failure", kind.as_str());
            trace::fail(span, &err.to_string());
        }
    }
}
