//! Cancellation: `INVOKE` then `CANCEL` for it in the same write, then a
//! `CANCEL` for an id never sent and another call: the plugin answers
//! that call; the cancelled one gets at most one answer (one that crossed
//! the `CANCEL`), nothing else comes.

use outboard_proto::fastpath::cancel_frame;

use super::wire::show;
use super::{FastPlugin, Probe, judge_answer, silent};

/// The cancelled call, the unknown id and the next call.
const CANCELLED: u64 = 7;
const UNKNOWN: u64 = 0xdead_beef;
const NEXT: u64 = 8;

/// The cancellation check.
pub(super) async fn check<P: FastPlugin>(
    probe: &Probe<'_, P>,
    phase: &str,
) -> Result<String, String> {
    let mut conn = probe.hello().await?;
    let call = probe.call(phase);
    let mut bytes = call.frame(CANCELLED);
    bytes.extend(cancel_frame(CANCELLED));
    let sent = format!(
        "HELLO, then {} and CANCEL id {CANCELLED} in one write",
        call.shown(CANCELLED)
    );
    conn.send(&bytes, &sent).await?;
    let next = probe.call(phase);
    let shown = format!(
        "CANCEL id {UNKNOWN} (never sent) and {} in one write",
        next.shown(NEXT)
    );
    let mut bytes = cancel_frame(UNKNOWN).to_vec();
    bytes.extend(next.frame(NEXT));
    conn.send(&bytes, &shown).await?;
    let sent = format!("{sent}, then {shown}");
    let mut crossed = None;
    loop {
        let frame = conn
            .recv()
            .await
            .map_err(|silence| silent(&sent, &format!("the answer for id {NEXT}"), &silence))?;
        match frame.header.id {
            NEXT => {
                let detail = judge_answer(&frame, &next)
                    .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;
                let crossed = match crossed {
                    Some(answer) => {
                        format!("id {CANCELLED} answered once as it was cancelled ({answer})")
                    }
                    None => format!("id {CANCELLED} not answered"),
                };
                return Ok(format!("{crossed}; the next call: {detail}"));
            }
            CANCELLED if crossed.is_none() => crossed = Some(show(&frame)),
            _ => {
                return Err(format!(
                    "sent {sent}; came back {}{}",
                    show(&frame),
                    match &crossed {
                        Some(first) if frame.header.id == CANCELLED =>
                            format!(", a second answer to the cancelled call after {first}"),
                        _ => String::from(", for a call not in flight"),
                    }
                ));
            }
        }
    }
}
