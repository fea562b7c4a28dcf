//! Deadlines on the fast path: a request whose deadline has passed is
//! answered as gRPC answers the same request (DEADLINE_EXCEEDED, or — for a
//! plugin whose server gives a due call one poll, as the Rust SDK's does —
//! its answer); a call whose frame timeout is already spent (0) is answered
//! DEADLINE_EXCEEDED, or like the past deadline; both at once, and the next
//! call still answered.

use std::time::{Duration, SystemTime};

use outboard_host::launch::Deadline;

use super::wire::show;
use super::{Answer, FastPlugin, Probe, answer_for, code_name, normal_call};
use crate::checks::invoke::{INVOKE_TIMEOUT, invoke_request, job_context};

/// How far in the past the past deadline is.
const PAST: Duration = Duration::from_secs(1);

/// Ids of the three calls on the connection.
const PAST_ID: u64 = 41;
const SPENT_ID: u64 = 42;
const NEXT_ID: u64 = 43;

/// The deadline check.
pub(super) async fn check<P: FastPlugin>(
    probe: &Probe<'_, P>,
    phase: &str,
) -> Result<String, String> {
    let mut past = probe.call(phase);
    past.request.deadline = Some(prost_types::Timestamp::from(SystemTime::now() - PAST));
    let grpc = probe
        .plugin
        .grpc_invoke(past.request.clone(), INVOKE_TIMEOUT)
        .await?;
    let mut conn = probe.hello().await?;
    let shown = format!("{} whose deadline passed 1 s ago", past.shown(PAST_ID));
    let sent = format!("HELLO, then {shown}");
    conn.send(&past.frame(PAST_ID), &shown).await?;
    let frame = answer_for(&mut conn, PAST_ID, &sent).await?;
    let fast = Answer::of(&frame)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;
    if fast.class() != grpc.class() {
        return Err(format!(
            "sent {sent}; came back {}; over gRPC the same request was answered {}",
            show(&frame),
            grpc.class()
        ));
    }
    let exceeded = tonic::Code::DeadlineExceeded as i32;
    if let Answer::Error { code, .. } = fast
        && code != exceeded
        && code != tonic::Code::InvalidArgument as i32
    {
        return Err(format!(
            "sent {sent}; came back {}; expected {} (or what gRPC answers, here the same)",
            show(&frame),
            code_name(exceeded)
        ));
    }

    // The timeout in the frame, counted from the plugin's receipt, is 0:
    // spent on arrival, while the deadline in the request is still ahead.
    let context = job_context();
    let mut spent = probe.call(phase);
    spent.request = invoke_request(phase, &context, Deadline::after(INVOKE_TIMEOUT));
    spent.context = context;
    spent.timeout = Some(Duration::ZERO);
    let shown = spent.shown(SPENT_ID);
    let sent = format!("{sent}, then {shown}");
    conn.send(&spent.frame(SPENT_ID), &shown).await?;
    let frame = answer_for(&mut conn, SPENT_ID, &sent).await?;
    let answer = Answer::of(&frame)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;
    let exceeded_now = matches!(answer, Answer::Error { code, .. } if code == exceeded);
    if !exceeded_now && answer.class() != fast.class() {
        return Err(format!(
            "sent {sent}; came back {}; expected {} (or the answer to the past deadline, {})",
            show(&frame),
            code_name(exceeded),
            fast.class()
        ));
    }
    let next = normal_call(probe, &mut conn, phase, NEXT_ID, &sent).await?;
    Ok(format!(
        "a past deadline: {} as over gRPC; a spent timeout: {}; the next call: {next}",
        fast.class(),
        answer.class()
    ))
}
