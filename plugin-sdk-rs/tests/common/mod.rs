//! Helpers shared by the SDK's socket tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use outboard_plugin::host::{Cas, Expected, HostError, Kv};
use tokio::net::UnixStream;
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
