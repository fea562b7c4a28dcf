//! The socket and `HELLO`: a socket of mode 0600; the right token answered
//! with `HELLO` id 0 `{token: "", version: 1}`; a wrong token, or a frame
//! other than `HELLO` first, answered with `ERROR` id 0 UNAUTHENTICATED and
//! the connection closed.

use outboard_proto::fastpath::Kind;

use super::wire::{self, Conn, show};
use super::{FastPlugin, Probe, silent};
use crate::checks::socket::mode;

/// The whole hello check.
pub(super) async fn check<P: FastPlugin>(probe: &Probe<'_, P>) -> Result<String, String> {
    let mode = mode(probe.plugin.socket(), "the fast-path socket", "§18")?;
    drop(probe.hello().await?);

    let wrong = format!("{}x", probe.plugin.token());
    let mut conn = probe.connect().await?;
    let sent = "HELLO id 0 with a wrong token";
    conn.send(&wire::hello(&wrong), sent).await?;
    refused(&mut conn, sent).await?;

    let mut conn = probe.connect().await?;
    let call = probe.call(probe.phase.unwrap_or("conformance"));
    let sent = format!("{} before any HELLO", call.shown(1));
    conn.send(&call.frame(1), &sent).await?;
    refused(&mut conn, &sent).await?;

    Ok(format!(
        "a socket of mode {mode:04o}; HELLO answered; a wrong token and an INVOKE before HELLO \
         refused with UNAUTHENTICATED and the connection closed"
    ))
}

/// Expects `ERROR` id 0 UNAUTHENTICATED, then the end of the connection.
async fn refused(conn: &mut Conn, sent: &str) -> Result<(), String> {
    let expected = "ERROR id 0 code 16 UNAUTHENTICATED";
    let frame = conn
        .recv()
        .await
        .map_err(|silence| silent(sent, expected, &silence))?;
    if frame.header.kind != Kind::Error
        || frame.header.id != 0
        || !frame.is_error(tonic::Code::Unauthenticated)
    {
        return Err(format!(
            "sent {sent}; expected {expected}, came back {}",
            show(&frame)
        ));
    }
    match conn.recv().await {
        Err(wire::Silence::Closed { after: 0 }) => Ok(()),
        Err(silence) => Err(format!(
            "sent {sent}; came back {}, then the connection must close, but {silence}",
            show(&frame)
        )),
        Ok(next) => Err(format!(
            "sent {sent}; came back {}, then the connection must close, but came {}",
            show(&frame),
            show(&next)
        )),
    }
}
