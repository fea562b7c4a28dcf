//! A sequential phase: one subscriber after another, each on the context as
//! patched by those before it, until one vetoes or fails closed.

use outboard_proto::patch;
use serde_json::Value;

use super::Route;
use super::report::{Entry, Outcome, Verdict};
use crate::context::SentContext;

/// Runs `route`'s subscribers in order on `context`, applying each patch as
/// it comes; the first that stops the phase is the verdict and the ones
/// after it stay skipped.
pub(super) async fn run(
    route: &Route,
    invocation_id: &str,
    context: &mut Value,
    entries: &mut [Entry],
) -> Verdict {
    for (sub, entry) in route.subscribers.iter().zip(entries.iter_mut()) {
        let call = sub
            .call(&route.phase, invocation_id, &SentContext::of(context))
            .await;
        entry.record(call);
        if entry.outcome == Outcome::Ok
            && let Err(err) = patch::apply(context, &entry.patch)
        {
            entry.invalid_patch(err);
        }
        if let Some(verdict) = entry.stops_phase() {
            return verdict;
        }
    }
    Verdict::Passed
}
