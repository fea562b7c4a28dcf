//! Deadlines (§8.1): an `Invoke` with a 50 ms deadline is answered, one way
//! or another, within a second of it, and the plugin then still answers.

use std::time::{Duration, Instant};

use outboard_host::CallError;
use outboard_host::launch::Deadline;

use crate::check::{Check, CheckName};
use crate::checks::invoke::{invoke, invoke_request, job_context};
use crate::subject::Subject;

/// The short deadline the plugin is told.
const SHORT_DEADLINE: Duration = Duration::from_millis(50);
/// How long past the short deadline the plugin may take to answer.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);

/// Invokes `phase` with a short deadline, then normally.
pub(crate) async fn check(subject: &Subject<'_>, phase: &str) -> Check {
    Check::of(CheckName::Deadline, honoured(subject, phase).await)
}

async fn honoured(subject: &Subject<'_>, phase: &str) -> Result<String, String> {
    let told = Deadline::after(SHORT_DEADLINE);
    // The call's own bound is the slack past the deadline: an expiry status
    // before it is the plugin's answer (see `outboard_host::launch::Guard`).
    let limit = Deadline::after(SHORT_DEADLINE + DEADLINE_SLACK);
    let request = invoke_request(phase, &job_context(), told);
    let mut client = subject.clients.plugin.clone();
    let started = Instant::now();
    let result = subject
        .launched
        .guard()
        .call(limit, client.invoke(told.request(request)))
        .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // Timing is what this check is about: any status is an answer (the
    // plugin's verdict on the context is the invoke check's business); only
    // silence past the deadline or an exit fails.
    let answer = match result {
        Ok(_) => "OK".to_owned(),
        Err(CallError::Status { code, .. }) => format!("{code:?}"),
        Err(CallError::Unavailable(_)) => format!("{:?}", tonic::Code::Unavailable),
        Err(CallError::Unauthenticated(_)) => format!("{:?}", tonic::Code::Unauthenticated),
        Err(e) => return Err(format!("Invoke with a 50 ms deadline: {e}")),
    };
    // A plugin still busy with the expired call (e.g. holding a lock for
    // it) shows it by failing the next one.
    invoke(subject, phase).await.map_err(|e| {
        format!("after a 50 ms deadline ({answer} in {ms:.0} ms), the next Invoke: {e}")
    })?;
    Ok(format!(
        "{answer} after {ms:.0} ms; the next Invoke was answered normally"
    ))
}
