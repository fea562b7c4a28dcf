//! Calls: framing (an `INVOKE` answered with the same id, the reserved
//! bytes ignored, id 0 refused), the same answer as gRPC for the same
//! request, and multiplexing (16 calls written back to back, every id
//! answered exactly once).

use std::collections::BTreeMap;

use outboard_host::Escaped;
use outboard_proto::v1;

use super::wire::{Conn, Frame, Silence, show};
use super::{Answer, Call, FastPlugin, Probe, SLACK, answer_for, code_name, judge_answer, silent};
use crate::checks::invoke::INVOKE_TIMEOUT;

/// Ids above 2^32, so that one cut to 32 bits shows.
const HIGH: u64 = 1 << 40;

/// How many calls the multiplexing check writes at once.
const MANY: u64 = 16;

/// Framing: a call and its `RESULT`; a call with its reserved header bytes
/// set; `INVOKE` id 0.
pub(super) async fn framing<P: FastPlugin>(
    probe: &Probe<'_, P>,
    phase: &str,
) -> Result<String, String> {
    let mut conn = probe.hello().await?;
    let call = probe.call(phase);
    let id = HIGH + 7;
    let sent = format!("HELLO, then {}", call.shown(id));
    conn.send(&call.frame(id), &call.shown(id)).await?;
    let frame = answer_for(&mut conn, id, &sent).await?;
    let answered = framed(&frame, &call)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;

    let next = id + 1;
    let mut bytes = call.frame(next);
    bytes[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    let shown = format!("{} with its reserved bytes ff ff ff", call.shown(next));
    conn.send(&bytes, &shown).await?;
    let sent = format!("{sent}, then {shown}");
    let frame = answer_for(&mut conn, next, &sent).await?;
    framed(&frame, &call)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;

    let mut conn = probe.hello().await?;
    let sent = format!("HELLO, then {}", call.shown(0));
    conn.send(&call.frame(0), &call.shown(0)).await?;
    let frame = conn
        .recv()
        .await
        .map_err(|silence| silent(&sent, "ERROR id 0", &silence))?;
    if frame.header.id != 0 || frame.error().is_none() {
        return Err(format!(
            "sent {sent}; expected ERROR id 0, came back {}",
            show(&frame)
        ));
    }
    match conn.recv().await {
        Err(Silence::Closed { after: 0 }) => {}
        Err(silence) => {
            return Err(format!(
                "sent {sent}; came back {}, then the connection must close, but {silence}",
                show(&frame)
            ));
        }
        Ok(next) => {
            return Err(format!(
                "sent {sent}; came back {}, then the connection must close, but came {}",
                show(&frame),
                show(&next)
            ));
        }
    }
    Ok(format!(
        "id {id}: {answered}; reserved bytes ignored; INVOKE id 0 refused and the connection closed"
    ))
}

/// A frame that answers `call` well, with zero reserved bytes.
fn framed(frame: &Frame, call: &Call) -> Result<String, String> {
    if frame.reserved != [0; 3] {
        return Err("the reserved header bytes must be sent as zero".to_owned());
    }
    judge_answer(frame, call)
}

/// The same request over gRPC, the fast path, and gRPC again: the fast
/// path's answer must be gRPC's. A value (a patch op's, the message) that
/// differs between the two gRPC answers (a clock in it) is compared by
/// presence only.
pub(super) async fn same_as_grpc<P: FastPlugin>(
    probe: &Probe<'_, P>,
    phase: &str,
) -> Result<String, String> {
    let call = probe.call(phase);
    let first = probe
        .plugin
        .grpc_invoke(call.request.clone(), INVOKE_TIMEOUT)
        .await?;
    let mut conn = probe.hello().await?;
    let id = HIGH + 1;
    let sent = format!(
        "HELLO, then {} (the request just sent over gRPC)",
        call.shown(id)
    );
    conn.send(&call.frame(id), &call.shown(id)).await?;
    let frame = answer_for(&mut conn, id, &sent).await?;
    let fast = Answer::of(&frame)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;
    let second = probe
        .plugin
        .grpc_invoke(call.request.clone(), INVOKE_TIMEOUT)
        .await?;
    compare(&fast, &first, &second).map_err(|why| {
        format!(
            "sent {sent}; came back {}; over gRPC the same request was answered {}: {why}",
            show(&frame),
            shown_answer(&first)
        )
    })?;
    Ok(format!("{} on both paths", shown_answer(&fast)))
}

/// An answer for people.
fn shown_answer(answer: &Answer) -> String {
    match answer {
        Answer::Result(response) => format!(
            "OK (outcome {}, {} patch op(s))",
            response.outcome,
            response.patch.len()
        ),
        Answer::Error { code, message } => {
            format!("{}: \"{}\"", code_name(*code), Escaped::line(message))
        }
    }
}

/// Whether `fast` is the answer gRPC gave twice, `first` and `second`.
pub(super) fn compare(fast: &Answer, first: &Answer, second: &Answer) -> Result<(), String> {
    match (fast, first, second) {
        (Answer::Result(fast), Answer::Result(a), Answer::Result(b)) => same_response(fast, a, b),
        (
            Answer::Error { code, message },
            Answer::Error {
                code: a,
                message: ma,
            },
            Answer::Error {
                code: b,
                message: mb,
            },
        ) if a == b => {
            if code != a {
                return Err(format!(
                    "code {} instead of {}",
                    code_name(*code),
                    code_name(*a)
                ));
            }
            if ma == mb && message != ma {
                return Err(format!(
                    "message \"{}\" instead of \"{}\"",
                    Escaped::line(message),
                    Escaped::line(ma)
                ));
            }
            Ok(())
        }
        _ if fast.class() == first.class() || fast.class() == second.class() => {
            // gRPC itself answered the request two ways; the fast path
            // gave one of them.
            Ok(())
        }
        _ => Err(format!(
            "{} instead of {}",
            fast.class(),
            if first.class() == second.class() {
                first.class()
            } else {
                format!("{} or {}", first.class(), second.class())
            }
        )),
    }
}

/// Whether the fast path's `fast` is the response gRPC gave as `a` and `b`.
fn same_response(
    fast: &v1::InvokeResponse,
    a: &v1::InvokeResponse,
    b: &v1::InvokeResponse,
) -> Result<(), String> {
    if fast.outcome != a.outcome {
        return Err(format!("outcome {} instead of {}", fast.outcome, a.outcome));
    }
    if a.message == b.message && fast.message != a.message {
        return Err(format!(
            "message \"{}\" instead of \"{}\"",
            Escaped::line(&fast.message),
            Escaped::line(&a.message)
        ));
    }
    if fast.patch.len() != a.patch.len() {
        return Err(format!(
            "{} patch op(s) instead of {}",
            fast.patch.len(),
            a.patch.len()
        ));
    }
    for (n, (op, want)) in fast.patch.iter().zip(&a.patch).enumerate() {
        if op.op != want.op || op.path != want.path {
            return Err(format!(
                "patch op {n} is {} on \"{}\" instead of {} on \"{}\"",
                op.op,
                Escaped::line(&op.path),
                want.op,
                Escaped::line(&want.path)
            ));
        }
        let stable = b
            .patch
            .get(n)
            .is_some_and(|other| other.value == want.value);
        if stable && op.value != want.value {
            return Err(format!(
                "patch op {n} on \"{}\" sets {} instead of {}",
                Escaped::line(&op.path),
                value_text(op.value.as_ref()),
                value_text(want.value.as_ref())
            ));
        }
    }
    Ok(())
}

/// A patch value as JSON, escaped.
fn value_text(value: Option<&prost_types::Value>) -> String {
    match value {
        None => "no value".to_owned(),
        Some(value) => {
            let json = outboard_proto::json::value_to_json(value);
            Escaped::line(&json.to_string()).to_string()
        }
    }
}

/// Multiplexing: [`MANY`] calls in one write, every id answered once (a
/// call after them fences late duplicates).
pub(super) async fn multiplexing<P: FastPlugin>(
    probe: &Probe<'_, P>,
    phase: &str,
) -> Result<String, String> {
    let mut conn = probe.hello().await?;
    let calls: BTreeMap<u64, Call> = (1..=MANY)
        .map(|n| (HIGH * n + n, probe.call(phase)))
        .collect();
    let mut bytes = Vec::new();
    for (id, call) in &calls {
        bytes.extend(call.frame(*id));
    }
    let ids: Vec<String> = calls.keys().map(u64::to_string).collect();
    let sent = format!(
        "HELLO, then {MANY} INVOKEs in one write (ids {})",
        ids.join(", ")
    );
    conn.send(&bytes, &sent).await?;
    let mut answered: BTreeMap<u64, Frame> = BTreeMap::new();
    let waited = std::time::Instant::now();
    while answered.len() < calls.len() {
        let frame = match conn.recv().await {
            Ok(frame) => frame,
            Err(silence) => {
                return Err(format!(
                    "sent {sent}; {} answered, then {silence}; never answered: {}",
                    answered.len(),
                    missing(&calls, &answered)
                ));
            }
        };
        take(&calls, &mut answered, frame, &sent)?;
        if waited.elapsed() > INVOKE_TIMEOUT + SLACK + SLACK {
            return Err(format!(
                "sent {sent}; still not answered after {} s: {}",
                waited.elapsed().as_secs(),
                missing(&calls, &answered)
            ));
        }
    }
    for (id, frame) in &answered {
        judge_answer(frame, &calls[id])
            .map_err(|why| format!("sent {sent}; id {id} came back {}: {why}", show(frame)))?;
    }
    let fence = HIGH * (MANY + 1);
    let fenced = fenced(probe, &mut conn, phase, fence, &calls, &mut answered, &sent).await?;
    Ok(format!(
        "{MANY} calls written at once, each id answered once; {fenced}"
    ))
}

/// Records `frame`, an answer to one of `calls`; a second answer for an
/// id, or one for an id never sent, is `Err`.
fn take(
    calls: &BTreeMap<u64, Call>,
    answered: &mut BTreeMap<u64, Frame>,
    frame: Frame,
    sent: &str,
) -> Result<(), String> {
    let id = frame.header.id;
    if !calls.contains_key(&id) {
        return Err(format!(
            "sent {sent}; came back {}, an id never sent",
            show(&frame)
        ));
    }
    if let Some(first) = answered.get(&id) {
        return Err(format!(
            "sent {sent}; id {id} was answered twice: {}, then {}",
            show(first),
            show(&frame)
        ));
    }
    answered.insert(id, frame);
    Ok(())
}

/// The ids of `calls` not yet `answered`.
fn missing(calls: &BTreeMap<u64, Call>, answered: &BTreeMap<u64, Frame>) -> String {
    let ids: Vec<String> = calls
        .keys()
        .filter(|id| !answered.contains_key(id))
        .map(u64::to_string)
        .collect();
    ids.join(", ")
}

/// One more call, `fence`, after the batch: answers to the batch that come
/// before its own are duplicates.
async fn fenced<P: FastPlugin>(
    probe: &Probe<'_, P>,
    conn: &mut Conn,
    phase: &str,
    fence: u64,
    calls: &BTreeMap<u64, Call>,
    answered: &mut BTreeMap<u64, Frame>,
    sent: &str,
) -> Result<String, String> {
    let call = probe.call(phase);
    let sent = format!("{sent}, then {}", call.shown(fence));
    conn.send(&call.frame(fence), &call.shown(fence)).await?;
    loop {
        let frame = conn
            .recv()
            .await
            .map_err(|silence| silent(&sent, &format!("the answer for id {fence}"), &silence))?;
        if frame.header.id == fence {
            let detail = judge_answer(&frame, &call)
                .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))?;
            return Ok(format!("the call after them: {detail}"));
        }
        take(calls, answered, frame, &sent)?;
    }
}
