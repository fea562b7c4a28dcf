//! Bad frames, each followed by a normal call on the same connection: a
//! payload that does not decode (`ERROR` INVALID_ARGUMENT for its id), a
//! kind this version does not define (`ERROR` UNIMPLEMENTED), a header
//! claiming one byte over the limit with its payload sent (`ERROR`
//! RESOURCE_EXHAUSTED). Then, last: the process is still running and still
//! answers on a fresh connection.

use outboard_proto::fastpath::{Kind, MAX_PAYLOAD};

use super::wire::{self, Conn, hex, show};
use super::{FastPlugin, Probe, code_name, normal_call, silent};

/// A `FastpathInvoke` cut short: field 1 (the request), 5 bytes long, of
/// which one came.
const MALFORMED: [u8; 3] = [0x0a, 0x05, 0x01];

/// A kind no version defines yet.
const UNKNOWN_KIND: u8 = 0x2a;

/// The ids of the bad frames and the calls after them.
const BAD_ID: u64 = 21;
const NEXT_ID: u64 = 22;

/// A malformed `INVOKE` payload.
pub(super) async fn malformed<P: FastPlugin>(probe: &Probe<'_, P>) -> Result<String, String> {
    let mut bytes = wire::header(Kind::Invoke, BAD_ID, MALFORMED.len() as u32).to_vec();
    bytes.extend(MALFORMED);
    let shown = format!(
        "INVOKE id {BAD_ID} with the payload {} (a FastpathInvoke cut short)",
        hex(&MALFORMED)
    );
    refused_then_answers(probe, &bytes, &shown, tonic::Code::InvalidArgument).await
}

/// A frame of an unknown kind.
pub(super) async fn unknown_kind<P: FastPlugin>(probe: &Probe<'_, P>) -> Result<String, String> {
    let payload = b"conformance";
    let mut bytes =
        wire::header(Kind::Unknown(UNKNOWN_KIND), BAD_ID, payload.len() as u32).to_vec();
    bytes.extend(payload);
    let shown = format!(
        "a frame of kind {UNKNOWN_KIND} id {BAD_ID} with {} payload bytes",
        payload.len()
    );
    refused_then_answers(probe, &bytes, &shown, tonic::Code::Unimplemented).await
}

/// A frame one byte over the limit, its payload sent.
pub(super) async fn oversize<P: FastPlugin>(probe: &Probe<'_, P>) -> Result<String, String> {
    let len = MAX_PAYLOAD + 1;
    let mut bytes = wire::header(Kind::Invoke, BAD_ID, len).to_vec();
    bytes.resize(bytes.len() + len as usize, 0);
    let shown =
        format!("INVOKE id {BAD_ID} with a header claiming {len} payload bytes, and those bytes");
    refused_then_answers(probe, &bytes, &shown, tonic::Code::ResourceExhausted).await
}

/// Sends `bytes` (`shown`) after `HELLO`, expects `ERROR` `code` for
/// [`BAD_ID`], then a normal call answered on the same connection.
async fn refused_then_answers<P: FastPlugin>(
    probe: &Probe<'_, P>,
    bytes: &[u8],
    shown: &str,
    code: tonic::Code,
) -> Result<String, String> {
    let mut conn = probe.hello().await?;
    let sent = format!("HELLO, then {shown}");
    conn.send(bytes, shown).await?;
    let expected = format!("ERROR id {BAD_ID} code {}", code_name(code as i32));
    let frame = conn
        .recv()
        .await
        .map_err(|silence| silent(&sent, &expected, &silence))?;
    if frame.header.id != BAD_ID || !frame.is_error(code) {
        return Err(format!(
            "sent {sent}; expected {expected}, came back {}",
            show(&frame)
        ));
    }
    let refusal = show(&frame);
    let Some(phase) = probe.phase else {
        return still_says_hello(probe, &refusal).await;
    };
    let next = normal_call(probe, &mut conn, phase, NEXT_ID, &sent).await?;
    Ok(format!("{refusal}; the next call: {next}"))
}

/// For a plugin without a phase to invoke: a fresh connection still gets
/// its `HELLO` answered.
async fn still_says_hello<P: FastPlugin>(
    probe: &Probe<'_, P>,
    refusal: &str,
) -> Result<String, String> {
    drop(
        probe
            .hello()
            .await
            .map_err(|e| format!("after {refusal}: {e}"))?,
    );
    Ok(format!("{refusal}; a fresh connection still says HELLO"))
}

/// Last: the process still runs and answers a call on a fresh connection.
pub(super) async fn alive<P: FastPlugin>(probe: &Probe<'_, P>) -> Result<String, String> {
    if let Some(exit) = probe.plugin.exit() {
        return Err(format!("the plugin exited ({exit})"));
    }
    let mut conn: Conn = probe.hello().await?;
    let next = match probe.phase {
        Some(phase) => {
            normal_call(probe, &mut conn, phase, 1, "HELLO on a fresh connection").await?
        }
        None => "none (no subscriptions), HELLO answered".to_owned(),
    };
    if let Some(exit) = probe.plugin.exit() {
        return Err(format!("the plugin exited ({exit})"));
    }
    Ok(format!(
        "still running after every fast-path check; a fresh connection's call: {next}"
    ))
}
