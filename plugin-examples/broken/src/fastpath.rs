//! The fast-path faults (docs/PROTOCOL.md §18): a plugin that lists
//! `invoke-fastpath/1` and then fails on its fast-path socket in one way
//! per mode. The gRPC side of each works; only the fast path is broken.

use std::path::Path;

use outboard_proto::fastpath::{self as wire, HEADER_LEN, Header, Kind, VERSION};
use outboard_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::mode::Mode;

/// True for the modes that list the fast path's feature.
pub(crate) fn lists_feature(mode: Mode) -> bool {
    matches!(
        mode,
        Mode::FastNeverBinds | Mode::FastClosesAtOnce | Mode::FastGarbage | Mode::FastClosesMidCall
    )
}

/// Binds `socket` (unless the mode never does) and serves the mode's fault
/// on every connection, in the background.
pub(crate) fn serve(mode: Mode, socket: &Path) -> Result<(), String> {
    if mode == Mode::FastNeverBinds {
        eprintln!("lists {} but binds nothing", wire::FEATURE);
        return Ok(());
    }
    let listener = crate::bind(socket)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(mode, stream));
        }
    });
    Ok(())
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
    let hello = v1::FastpathHello {
        token: String::new(),
        version: VERSION,
    };
    if stream
        .write_all(&wire::frame(Kind::Hello, 0, &hello))
        .await
        .is_err()
    {
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
