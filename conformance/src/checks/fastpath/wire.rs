//! A small raw-frame client of `invoke-fastpath/1`, built on
//! `outboard_proto::fastpath` and nothing of the host's: the checks write
//! exactly the bytes they mean (a malformed payload, an unknown kind, a
//! header over the limit) and read back each frame as it came, and say
//! both, escaped, when the plugin got it wrong.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use outboard_host::Escaped;
use outboard_proto::fastpath::{self, HEADER_LEN, Header, Kind, MAX_PAYLOAD};
use outboard_proto::v1;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

/// How many payload bytes a report shows.
const SHOWN_BYTES: usize = 48;

/// One frame as it came off the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its header.
    pub(crate) header: Header,
    /// The three reserved header bytes: sent as zero.
    pub(crate) reserved: [u8; 3],
    /// Its payload.
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The payload as an `ERROR`'s `FastpathError`, if it is one that decodes.
    pub(crate) fn error(&self) -> Option<v1::FastpathError> {
        (self.header.kind == Kind::Error)
            .then(|| v1::FastpathError::decode(self.payload.as_slice()).ok())
            .flatten()
    }

    /// True if it is an `ERROR` with gRPC status `code`.
    pub(crate) fn is_error(&self, code: tonic::Code) -> bool {
        self.error().is_some_and(|e| e.code == code as i32)
    }
}

/// A frame for people: its kind, id and decoded payload, everything the
/// plugin wrote escaped.
pub(crate) fn show(frame: &Frame) -> String {
    let Header { kind, id, len } = frame.header;
    let body = match kind {
        Kind::Hello => v1::FastpathHello::decode(frame.payload.as_slice()).map(|h| {
            format!(
                "{{token: \"{}\", version: {}}}",
                Escaped::line(&h.token),
                h.version
            )
        }),
        Kind::Result => v1::InvokeResponse::decode(frame.payload.as_slice()).map(|r| {
            let paths: Vec<String> = r
                .patch
                .iter()
                .map(|op| Escaped::line(&op.path).to_string())
                .collect();
            format!(
                "{{outcome: {}, patch on [{}], message: \"{}\"}}",
                r.outcome,
                paths.join(", "),
                Escaped::line(&r.message)
            )
        }),
        Kind::Error => v1::FastpathError::decode(frame.payload.as_slice()).map(|e| {
            format!(
                "{{code: {} {:?}, message: \"{}\"}}",
                e.code,
                tonic::Code::from(e.code),
                Escaped::line(&e.message)
            )
        }),
        Kind::Invoke | Kind::Cancel | Kind::Unknown(_) => Ok(String::new()),
    };
    let mut text = format!("{} id {id}", kind_name(kind));
    if frame.reserved != [0; 3] {
        let _ = write!(text, " (reserved bytes {})", hex(&frame.reserved));
    }
    match body {
        Ok(body) if body.is_empty() && len == 0 => {}
        Ok(body) if !body.is_empty() => {
            let _ = write!(text, " {body}");
        }
        Ok(_) => {
            let _ = write!(text, ", {len} payload bytes {}", hex(&frame.payload));
        }
        Err(e) => {
            let _ = write!(
                text,
                ", {len} payload bytes that do not decode ({e}): {}",
                hex(&frame.payload)
            );
        }
    }
    text
}

/// A kind's name in the protocol, or its byte.
pub(crate) fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Hello => "HELLO".to_owned(),
        Kind::Invoke => "INVOKE".to_owned(),
        Kind::Result => "RESULT".to_owned(),
        Kind::Error => "ERROR".to_owned(),
        Kind::Cancel => "CANCEL".to_owned(),
        Kind::Unknown(byte) => format!("kind {byte}"),
    }
}

/// Bytes as hex, at most [`SHOWN_BYTES`] of them.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut text: String = bytes
        .iter()
        .take(SHOWN_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if bytes.is_empty() {
        text.push_str("(none)");
    }
    if bytes.len() > SHOWN_BYTES {
        let _ = write!(text, " … ({} more)", bytes.len() - SHOWN_BYTES);
    }
    text
}

/// A header alone: `len` payload bytes of `kind` for call `id` follow.
pub(crate) fn header(kind: Kind, id: u64, len: u32) -> [u8; HEADER_LEN] {
    Header { len, kind, id }.encode()
}

/// The host's `HELLO` with `token`.
pub(crate) fn hello(token: &str) -> Vec<u8> {
    fastpath::frame(
        Kind::Hello,
        0,
        &v1::FastpathHello {
            token: token.to_owned(),
            version: fastpath::VERSION,
        },
    )
}

/// What the plugin did instead of sending the frame a check waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Silence {
    /// It closed the connection (EOF), `after` bytes into a frame.
    Closed {
        /// How many bytes of a frame had come when it closed.
        after: usize,
    },
    /// Nothing within the bound.
    Nothing(Duration),
    /// The header claims a payload over the limit.
    TooLong(Header),
    /// Reading failed.
    Broken(String),
}

impl std::fmt::Display for Silence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Silence::Closed { after: 0 } => write!(f, "the plugin closed the connection"),
            Silence::Closed { after } => write!(
                f,
                "the plugin closed the connection {after} bytes into a frame"
            ),
            Silence::Nothing(bound) => write!(
                f,
                "nothing came back within {}",
                humantime::format_duration(*bound)
            ),
            Silence::TooLong(h) => write!(
                f,
                "a {} frame for id {} claiming {} payload bytes, over the {MAX_PAYLOAD}-byte limit",
                kind_name(h.kind),
                h.id,
                h.len
            ),
            Silence::Broken(e) => write!(f, "reading the connection failed: {e}"),
        }
    }
}

/// One connection to a plugin's fast-path socket, every read bounded.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The connection.
    stream: UnixStream,
    /// How long a read may wait for a frame.
    bound: Duration,
}

impl Conn {
    /// Connects to `socket`; each read then waits at most `bound`.
    pub(crate) async fn connect(socket: &Path, bound: Duration) -> Result<Conn, String> {
        let stream = tokio::time::timeout(bound, UnixStream::connect(socket))
            .await
            .map_err(|_| {
                format!(
                    "cannot connect to {} within {}",
                    socket.display(),
                    humantime::format_duration(bound)
                )
            })?
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        Ok(Conn { stream, bound })
    }

    /// The connection's peer, as the kernel tells it.
    pub(crate) fn peer(&self) -> std::io::Result<tokio::net::unix::UCred> {
        self.stream.peer_cred()
    }

    /// Writes `bytes` in one write; `what` names them in the error.
    pub(crate) async fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), String> {
        tokio::time::timeout(self.bound, self.stream.write_all(bytes))
            .await
            .map_err(|_| {
                format!(
                    "writing {what} did not finish within {} (the plugin does not read)",
                    humantime::format_duration(self.bound)
                )
            })?
            .map_err(|e| format!("writing {what} failed: {e}"))
    }

    /// The next frame, within the bound.
    pub(crate) async fn recv(&mut self) -> Result<Frame, Silence> {
        let bound = self.bound;
        match tokio::time::timeout(bound, self.read_frame()).await {
            Ok(result) => result,
            Err(_) => Err(Silence::Nothing(bound)),
        }
    }

    async fn read_frame(&mut self) -> Result<Frame, Silence> {
        let mut head = [0u8; HEADER_LEN];
        self.fill(&mut head, 0).await?;
        let header = Header::decode(&head);
        if header.too_long() {
            return Err(Silence::TooLong(header));
        }
        let mut payload = vec![0u8; header.len as usize];
        self.fill(&mut payload, HEADER_LEN).await?;
        Ok(Frame {
            header,
            reserved: [head[5], head[6], head[7]],
            payload,
        })
    }

    /// Fills `buf`; `before` bytes of the frame came already.
    async fn fill(&mut self, buf: &mut [u8], before: usize) -> Result<(), Silence> {
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]).await {
                Ok(0) => {
                    return Err(Silence::Closed {
                        after: before + got,
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(Silence::Closed {
                        after: before + got,
                    });
                }
                Err(e) => return Err(Silence::Broken(e.to_string())),
            }
        }
        Ok(())
    }

    /// Sends the host's `HELLO` with `token` and expects the plugin's.
    pub(crate) async fn hello(&mut self, token: &str) -> Result<(), String> {
        self.send(&hello(token), "HELLO id 0 with the right token")
            .await?;
        let frame = self.recv().await.map_err(|silence| {
            format!("sent HELLO id 0 with the right token; expected HELLO id 0, but {silence}")
        })?;
        match hello_answer(&frame) {
            Ok(()) => Ok(()),
            Err(why) => Err(format!(
                "sent HELLO id 0 with the right token; came back {}: {why}",
                show(&frame)
            )),
        }
    }
}

/// Whether `frame` is the plugin's answer to a right `HELLO`: `HELLO` id 0,
/// an empty token, version 1.
pub(crate) fn hello_answer(frame: &Frame) -> Result<(), String> {
    if frame.header.kind != Kind::Hello || frame.header.id != 0 {
        return Err("expected HELLO id 0".to_owned());
    }
    let hello = v1::FastpathHello::decode(frame.payload.as_slice())
        .map_err(|e| format!("its payload is not a FastpathHello: {e}"))?;
    if hello.version != fastpath::VERSION {
        return Err(format!(
            "version {} (expected {})",
            hello.version,
            fastpath::VERSION
        ));
    }
    if !hello.token.is_empty() {
        return Err("the plugin's HELLO must carry an empty token".to_owned());
    }
    Ok(())
}
