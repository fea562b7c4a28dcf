//! The fast-path faults (docs/PROTOCOL.md §18): a plugin that lists
//! `invoke-fastpath/1` and then fails on its fast-path socket in one way
//! per mode. The gRPC side of each works; only the fast path is broken.

use std::path::Path;
use std::sync::Arc;

use outboard_proto::fastpath::{self as wire, HEADER_LEN, Header, Kind, VERSION};
use outboard_proto::v1;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::mode::Mode;

/// True for the modes that list the fast path's feature.
pub(crate) fn lists_feature(mode: Mode) -> bool {
    matches!(
        mode,
        Mode::FastNeverBinds
            | Mode::FastClosesAtOnce
            | Mode::FastGarbage
            | Mode::FastClosesMidCall
            | Mode::FastCrashOnMalformed
    )
}

/// Binds `socket` (unless the mode never does) and serves the mode's fault
/// on every connection, in the background; `token` is the one a HELLO must
/// carry, for the modes that check it.
pub(crate) fn serve(mode: Mode, socket: &Path, token: &str) -> Result<(), String> {
    if mode == Mode::FastNeverBinds {
        eprintln!("lists {} but binds nothing", wire::FEATURE);
        return Ok(());
    }
    let listener = crate::bind(socket)?;
    let token: Arc<str> = token.into();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if mode == Mode::FastCrashOnMalformed {
                tokio::spawn(crashes_on_malformed(stream, token.clone()));
            } else {
                tokio::spawn(connection(mode, stream));
            }
        }
    });
    Ok(())
}

/// A connection that follows §18 (HELLO with the token, a RESULT per call,
/// id 0 refused, CANCEL and other kinds ignored) until an INVOKE payload
/// does not decode: then the whole process exits with status 70, as a
/// plugin whose decoder brings it down would.
async fn crashes_on_malformed(mut stream: UnixStream, token: Arc<str>) {
    let Some((header, payload)) = read_frame(&mut stream).await else {
        return;
    };
    let hello = (header.kind == Kind::Hello)
        .then(|| v1::FastpathHello::decode(payload.as_slice()).ok())
        .flatten();
    if hello.is_none_or(|h| *h.token != *token) {
        let refusal = wire::error_frame(0, 16, "a HELLO with the token first");
        let _ = stream.write_all(&refusal).await;
        return;
    }
    if !said_hello(&mut stream).await {
        return;
    }
    while let Some((header, payload)) = read_frame(&mut stream).await {
        if header.kind != Kind::Invoke {
            continue;
        }
        if v1::FastpathInvoke::decode(payload.as_slice()).is_err() {
            eprintln!(
                "crashing on a malformed fast-path frame (call {})",
                header.id
            );
            std::process::exit(70);
        }
        if header.id == 0 {
            let _ = stream
                .write_all(&wire::error_frame(0, 3, "INVOKE with call id 0"))
                .await;
            return;
        }
        let response = v1::InvokeResponse {
            outcome: v1::Outcome::Continue as i32,
            ..Default::default()
        };
        let answer = wire::frame(Kind::Result, header.id, &response);
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// One connection's fault.
async fn connection(mode: Mode, mut stream: UnixStream) {
    if mode == Mode::FastClosesAtOnce {
        eprintln!("closing a fast-path connection at once");
        return;
    }
    // The HELLO, answered without checking the token: the faults come after.
    if read_frame(&mut stream).await.is_none() {
        return;
    }
    if !said_hello(&mut stream).await {
        return;
    }
    while let Some((header, _)) = read_frame(&mut stream).await {
        if header.kind != Kind::Invoke {
            continue;
        }
        match mode {
            Mode::FastGarbage => {
                eprintln!("answering call {} with garbage", header.id);
                let garbage = b"\xff\xff\xffnot protobuf";
                let head = Header {
                    len: garbage.len() as u32,
                    kind: Kind::Result,
                    id: header.id,
                };
                let frame = [head.encode().as_slice(), garbage].concat();
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            _ => {
                eprintln!("closing the fast-path connection in call {}", header.id);
                return;
            }
        }
    }
}

/// Sends the plugin's HELLO; false if the connection is gone.
async fn said_hello(stream: &mut UnixStream) -> bool {
    let hello = v1::FastpathHello {
        token: String::new(),
        version: VERSION,
    };
    stream
        .write_all(&wire::frame(Kind::Hello, 0, &hello))
        .await
        .is_ok()
}

/// The next frame's header and payload; `None` at EOF or on an error.
async fn read_frame(stream: &mut UnixStream) -> Option<(Header, Vec<u8>)> {
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head).await.ok()?;
    let header = Header::decode(&head);
    if header.too_long() {
        return None;
    }
    let mut payload = vec![0u8; header.len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header, payload))
}
