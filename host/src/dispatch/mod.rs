//! One phase fanned out to the plugins subscribed to it.
//!
//! - **Sequential**: lowest priority first, ties by name; each plugin sees
//!   the context as patched by those before it. A veto (`ABORT`) stops the
//!   chain; so does a failure under `fail_closed`. The plugins after the stop
//!   are reported as skipped. Patches applied before the stop stay applied.
//! - **Parallel**: every subscriber gets the same context at once. Their
//!   patches are merged; two plugins writing the same path, or one writing
//!   inside a path another writes or removes, is a conflict that fails the
//!   phase with both names and both paths. The merged patch is applied only
//!   if the phase passes: a failed parallel phase leaves the context as it
//!   was.
//!
//! A patch that puts a name `execve` would misread into `/env` (empty, or
//! with `=` or NUL), or a NUL into one of its values, is refused like a
//! patch that does not apply: the plugin fails with `invalid_patch`.
//!
//! Under `fail_open` a failing plugin is recorded and the phase goes on as
//! if it had not been there. Every call carries its deadline; a plugin that
//! dies mid-call fails at once. A [`Report`] lists every subscriber, always,
//! and each entry is counted in its plugin's [`Stats`](crate::Stats), the
//! dispatch in its phase's figures (see `crate::figures`).
//!
//! # Layout
//!
//! - `route`: [`Route`] and [`Subscriber`], resolved once per routing
//!   generation (see `crate::host`).
//! - `call`: one subscriber's call, bounded by its timeout, with retries.
//! - `sequential`, `parallel`: the two ways a phase runs; `parallel` merges
//!   the patches and names conflicts.
//! - `rules`: what the host refuses in a patch beyond the patch grammar
//!   (names in `/env`).
//! - `report`: [`Report`], [`Entry`], [`Verdict`], [`Outcome`],
//!   [`FailureKind`], and their JSON form.

mod call;
mod parallel;
mod report;
mod route;
mod rules;
mod sequential;

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::Mode;
use crate::trace;

pub use report::{Entry, FailureKind, Outcome, Report, Verdict, patch_to_json};
pub use route::{Route, Subscriber};

/// Runs `route` on `context`, in an `outboard.dispatch` span (a child of
/// the current one, or of the current OpenTelemetry context).
pub(crate) async fn run(route: &Route, context: Map<String, Value>) -> Report {
    let span = tracing::info_span!(
        target: trace::TARGET,
        "outboard.dispatch",
        outboard.phase = &*route.phase,
        outboard.mode = route.spec.mode.as_str(),
        outboard.subscribers = trace::count(route.subscribers.len()),
        outboard.verdict = Empty,
    );
    let report = fan_out(route, context).instrument(span.clone()).await;
    if !span.is_disabled() {
        span.record("outboard.verdict", report.verdict.as_str());
        if let Verdict::Failed { error, .. } = &report.verdict {
            trace::fail(&span, error);
        }
    }
    report
}

/// The dispatch itself: every subscriber called, the report made.
async fn fan_out(route: &Route, context: Map<String, Value>) -> Report {
    // Refused here rather than failing the first plugin with a decode error.
    if let Err(deep) = outboard_proto::json::check_struct(&context) {
        let why = format!("the context cannot be sent to plugins: {deep}");
        route.refused();
        return refused(&route.phase, context, &why);
    }
    let started = Instant::now();
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let mut entries: Vec<Entry> = route
        .subscribers
        .iter()
        .map(|s| Entry {
            plugin: s.name.clone(),
            priority: s.priority,
            policy: s.policy,
            outcome: Outcome::Skipped,
            failure: None,
            duration: Duration::ZERO,
            attempts: 0,
            patch: Vec::new(),
            message: String::new(),
        })
        .collect();
    let mut context = Value::Object(context);
    let verdict = match route.spec.mode {
        Mode::Sequential => {
            sequential::run(route, &invocation_id, &mut context, &mut entries).await
        }
        Mode::Parallel => parallel::run(route, &invocation_id, &mut context, &mut entries).await,
    };
    let report = Report {
        phase: route.phase.clone(),
        mode: route.spec.mode,
        invocation_id,
        verdict,
        entries,
        context,
        duration: started.elapsed(),
    };
    // The entries were built from the subscribers, one each, in order.
    route.record(&report);
    report
}

/// The report of a dispatch the host refused before calling anyone.
pub(crate) fn refused(phase: &str, context: Map<String, Value>, why: &str) -> Report {
    Report {
        phase: phase.into(),
        mode: Mode::Sequential,
        invocation_id: String::new(),
        verdict: Verdict::Failed {
            plugins: Vec::new(),
            error: why.to_owned(),
        },
        entries: Vec::new(),
        context: Value::Object(context),
        duration: Duration::ZERO,
    }
}
