//! What the example plugins' subprocess tests share: a gRPC channel to a
//! plugin's socket and requests carrying the launch token.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;

use hyper_util::rt::TokioIo;
use outboard_proto::handshake::{self, TOKEN_METADATA_KEY};
use tokio::net::UnixStream;
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
