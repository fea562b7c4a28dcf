//! `Invoke` (§8.4, §8.5): on a subscribed phase, with a small job-like
//! context, the plugin answers a known outcome and a patch that applies, or
//! refuses the context with INVALID_ARGUMENT and a message. The request and
//! the judging of the answer are shared with the unknown-field and
//! deadline checks.

use std::time::{Duration, Instant};

use outboard_host::CallError;
use outboard_host::launch::Deadline;
use outboard_proto::json::json_to_struct;
use outboard_proto::{patch, v1};
use serde_json::{Map, Value, json};

use crate::check::{Check, CheckName};
use crate::subject::Subject;

/// The deadline of the `Invoke` calls.
pub(crate) const INVOKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Invokes `phase`; the check is named `invoke <phase>`.
pub(crate) async fn check(subject: &Subject<'_>, phase: &str) -> Check {
    Check::of(
        format_args!("{} {phase}", CheckName::Invoke),
        invoke(subject, phase).await,
    )
}

/// One `Invoke` of `phase`, judged; the deadline check uses it too.
pub(crate) async fn invoke(subject: &Subject<'_>, phase: &str) -> Result<String, String> {
    let context = job_context();
    let deadline = Deadline::after(INVOKE_TIMEOUT);
    let request = invoke_request(phase, &context, deadline);
    let mut client = subject.clients.plugin.clone();
    let started = Instant::now();
    let response = match subject
        .launched
        .guard()
        .call(deadline, client.invoke(deadline.request(request)))
        .await
    {
        Ok(response) => response,
        Err(failure) => return refusal(failure).map_err(|e| format!("Invoke failed: {e}")),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    judge(&response, &context).map(|detail| format!("{detail} in {ms:.0} ms"))
}

/// A small job-like context.
pub(crate) fn job_context() -> Map<String, Value> {
    match json!({
        "job_id": format!("conformance-{}", uuid::Uuid::new_v4()),
        "command": ["true"],
        "env": {},
        "metadata": {},
        "dry_run": true,
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An `InvokeRequest` for `phase` with `context`, due by `deadline`.
pub(crate) fn invoke_request(
    phase: &str,
    context: &Map<String, Value>,
    deadline: Deadline,
) -> v1::InvokeRequest {
    v1::InvokeRequest {
        phase: phase.to_owned(),
        invocation_id: uuid::Uuid::new_v4().to_string(),
        attempt: 1,
        deadline: Some(deadline.timestamp()),
        trace_context: Default::default(),
        context: Some(json_to_struct(context)),
    }
}

/// Checks an `InvokeResponse` against the context it answered: a known
/// outcome, and a patch that reads and applies.
pub(crate) fn judge(
    response: &v1::InvokeResponse,
    context: &Map<String, Value>,
) -> Result<String, String> {
    let outcome = v1::Outcome::try_from(response.outcome).map_err(|_| {
        format!(
            "unknown outcome {} (expected OUTCOME_CONTINUE or OUTCOME_ABORT)",
            response.outcome
        )
    })?;
    if outcome == v1::Outcome::Abort {
        if response.message.is_empty() {
            return Err("OUTCOME_ABORT without a message (§8.4 requires one)".to_owned());
        }
        return Ok(format!("abort: {:?}", response.message));
    }
    let ops = patch::from_proto(&response.patch).map_err(|e| format!("invalid patch: {e}"))?;
    let mut target = Value::Object(context.clone());
    patch::apply(&mut target, &ops).map_err(|e| format!("the patch does not apply: {e}"))?;
    let paths: Vec<String> = ops.iter().map(|op| op.path().to_string()).collect();
    Ok(format!(
        "continue, {} op(s){}",
        ops.len(),
        if paths.is_empty() {
            String::new()
        } else {
            format!(" on {}", paths.join(", "))
        }
    ))
}

/// A failed Invoke that is still a well-formed answer: INVALID_ARGUMENT with
/// a message is how the protocol says "I cannot use this context" (a phase
/// that needs what an earlier phase records, say), and conformance checks
/// the protocol, not the plugin's business. Anything else is a failure.
pub(crate) fn refusal(failure: CallError) -> Result<String, CallError> {
    match failure {
        CallError::Status {
            code: tonic::Code::InvalidArgument,
            message,
        } if !message.trim().is_empty() => Ok(format!(
            "refused the synthetic context with INVALID_ARGUMENT: {message}"
        )),
        other => Err(other),
    }
}
