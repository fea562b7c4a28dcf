//! Helpers shared by the SDK's socket tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use outboard_plugin::ServeError;
use outboard_plugin::host::{Cas, Expected, HostError, Kv};
use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the socket, retrying while the server is still binding.
pub(crate) async fn connect(socket: &Path) -> Channel {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let path = socket.to_owned();
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        });
        match Endpoint::from_static("http://plugin.invalid")
            .connect_with_connector(connector)
            .await
        {
            Ok(channel) => return channel,
            Err(e) if Instant::now() > give_up => panic!("cannot connect to {socket:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A request carrying `token` (none if `None`).
pub(crate) fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(TOKEN_METADATA_KEY, bearer(token).parse().unwrap());
    }
    request
}

/// Asks the plugin to stop with `grace`, as the host does.
pub(crate) async fn shutdown(
    client: &mut PluginServiceClient<Channel>,
    token: &str,
    grace: Duration,
) {
    client
        .shutdown(with_token(
            v1::ShutdownRequest {
                grace: Some(grace.try_into().unwrap()),
                reason: "test".into(),
            },
            Some(token),
        ))
        .await
        .unwrap();
}

/// Waits for `serve_with` to return, failing the test after `within`.
pub(crate) async fn stopped(task: JoinHandle<Result<(), ServeError>>, within: Duration) {
    let result = tokio::time::timeout(within, task)
        .await
        .unwrap_or_else(|_| panic!("serve_with still running after {within:?}"))
        .unwrap();
    assert!(result.is_ok(), "serve_with failed: {result:?}");
}

/// Adds one to the decimal counter at `key` with a compare-and-set loop;
/// returns the new count.
pub(crate) async fn increment(kv: &Kv, key: &str) -> Result<u64, HostError> {
    loop {
        let current = kv.get(key).await?.map(|e| e.value);
        let n: u64 = current
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        let expected = current.map_or(Expected::Absent, Expected::Value);
        if kv
            .compare_and_set(key, expected, (n + 1).to_string(), None)
            .await?
            == Cas::Swapped
        {
            return Ok(n + 1);
        }
    }
}
