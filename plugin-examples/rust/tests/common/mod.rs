//! What the example plugins' subprocess tests share: the command a host
//! would run, its handshake line, a gRPC channel to a plugin's socket and
//! requests carrying the launch token.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::handshake::{self, HandshakeLine, TOKEN_METADATA_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::ChildStdout;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel to the plugin listening on `socket`.
pub async fn connect(socket: &Path) -> Channel {
    let path = socket.to_owned();
    Endpoint::from_static("http://plugin.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .unwrap()
}

/// `message` as a request carrying `token`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        TOKEN_METADATA_KEY,
        handshake::bearer(token).parse().unwrap(),
    );
    request
}

/// `bin` as a host launches it: a clean environment with the handshake
/// variables for `socket`, `token` and instance `name`, stdin closed,
/// stdout and stderr piped, killed when dropped.
pub fn plugin_command(
    bin: &str,
    socket: &Path,
    token: &str,
    name: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    command
        .env_clear()
        .env(handshake::ENV_MAGIC_COOKIE, handshake::MAGIC_COOKIE_VALUE)
        .env(handshake::ENV_PROTOCOL_VERSIONS, "1")
        .env(handshake::ENV_SOCKET, socket)
        .env(handshake::ENV_TOKEN, token)
        .env(handshake::ENV_PLUGIN_NAME, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The handshake line the plugin prints first, within 10 s.
pub async fn handshake(stdout: &mut BufReader<ChildStdout>) -> HandshakeLine {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .expect("no handshake line within 10 s")
        .unwrap();
    line.parse()
        .unwrap_or_else(|e| panic!("not a handshake line ({e}): {line:?}"))
}
