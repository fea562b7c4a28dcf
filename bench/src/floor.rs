//! The two floors: (a) a raw 64-byte ping-pong over a Unix socket and (b) a
//! bare tonic `Invoke` over a Unix socket, each against `bench-echo` in its
//! own process.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper_util::rt::TokioIo;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::procs::{Paths, Peer};
use crate::stats::{self, Latency};

/// (a): a connection to `bench-echo raw`, running until dropped.
#[derive(Debug)]
pub(crate) struct RawFloor {
    conn: UnixStream,
    _peer: Peer,
}

impl RawFloor {
    /// Starts `bench-echo raw` and connects to it.
    pub(crate) fn start(paths: &Paths, dir: &Path) -> anyhow::Result<RawFloor> {
        let socket = dir.join("raw.sock");
        let socket_arg = socket.to_string_lossy();
        let peer = Peer::start(&paths.bin("bench-echo"), &["raw", &socket_arg])?;
        let conn = UnixStream::connect(&socket).context("connecting to the raw echo")?;
        Ok(RawFloor { conn, _peer: peer })
    }

    /// `calls` round trips of 64 bytes, each timed. Blocks.
    pub(crate) fn samples(&mut self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        let ping = [0x5au8; 64];
        let mut pong = [0u8; 64];
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            self.conn.write_all(&ping)?;
            self.conn.read_exact(&mut pong)?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }
}

/// (b): the bare tonic server, running until dropped.
#[derive(Debug)]
pub(crate) struct TonicFloor {
    _peer: Peer,
    client: PluginServiceClient<Channel>,
    request: v1::InvokeRequest,
}

impl TonicFloor {
    /// Starts `bench-echo tonic` on `dir/NAME.sock` and connects to it.
    pub(crate) async fn start(paths: &Paths, dir: &Path, name: &str) -> anyhow::Result<TonicFloor> {
        let socket = dir.join(format!("{name}.sock"));
        let socket_arg = socket.to_string_lossy();
        let peer = Peer::start(&paths.bin("bench-echo"), &["tonic", &socket_arg])?;
        let channel = connect(socket).await?;
        Ok(TonicFloor {
            _peer: peer,
            client: PluginServiceClient::new(channel),
            request: invoke_request(),
        })
    }

    /// One `Invoke` round trip.
    async fn call(
        mut client: PluginServiceClient<Channel>,
        request: v1::InvokeRequest,
    ) -> anyhow::Result<()> {
        let response = client.invoke(request).await?.into_inner();
        anyhow::ensure!(response.outcome == v1::Outcome::Continue as i32);
        Ok(())
    }

    /// `calls` sequential calls, each timed.
    pub(crate) async fn samples(&self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        Latency::samples(calls, || {
            Self::call(self.client.clone(), self.request.clone())
        })
        .await
    }

    /// Calls per second with `concurrency` callers on the one connection.
    pub(crate) async fn throughput(
        &self,
        concurrency: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let client = self.client.clone();
        let request = self.request.clone();
        stats::throughput(concurrency, duration, move || {
            Self::call(client.clone(), request.clone())
        })
        .await
    }
}

/// (b) for fan-out: the latency of `calls` rounds of one `Invoke` to each
/// of `count` bare tonic servers at once (each in its own process, as
/// Outboard's plugins are), after `calls / 10` untimed rounds.
pub(crate) async fn fan_out(
    paths: &Paths,
    dir: &Path,
    count: usize,
    calls: usize,
) -> anyhow::Result<Latency> {
    let mut floors = Vec::with_capacity(count);
    for i in 0..count {
        floors.push(TonicFloor::start(paths, dir, &format!("fan-{i}")).await?);
    }
    Latency::measure(calls, || {
        let calls = floors
            .iter()
            .map(|f| TonicFloor::call(f.client.clone(), f.request.clone()));
        async move {
            for result in futures_util::future::join_all(calls).await {
                result?;
            }
            Ok(())
        }
    })
    .await
}

/// A channel over the Unix socket at `socket`, set up as the host's is
/// (also the daemon's control API client's, for (l)).
pub(crate) async fn connect(socket: PathBuf) -> anyhow::Result<Channel> {
    let what = format!("connecting to {}", socket.display());
    let connector = tower::service_fn(move |_: Uri| {
        let socket = socket.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Endpoint::from_static("http://bench.floor")
        .connect_with_connector(connector)
        .await
        .context(what)
}

/// The `InvokeRequest` the host would send for the small context: phase,
/// invocation id, attempt, deadline and context.
fn invoke_request() -> v1::InvokeRequest {
    let deadline = std::time::SystemTime::now() + Duration::from_secs(3600);
    v1::InvokeRequest {
        phase: "bench".to_owned(),
        invocation_id: "6f1c2b1e-4a7d-4c39-9a57-1f0f3c5b2d10".to_owned(),
        attempt: 1,
        deadline: Some(prost_types::Timestamp::from(deadline)),
        trace_context: Default::default(),
        context: Some(outboard_proto::json::json_to_struct(
            &crate::outboard::small_context(),
        )),
    }
}

/// An HTTP/2 connection used straight from hyper, without tonic's
/// `Channel` (whose buffer task every call passes through).
#[derive(Debug, Clone)]
pub(crate) struct Direct(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for Direct {
    type Response = tonic::codegen::http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// Connects straight over hyper.
pub(crate) async fn connect_direct(socket: &Path) -> anyhow::Result<PluginServiceClient<Direct>> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(conn);
    Ok(PluginServiceClient::with_origin(
        Direct(send),
        Uri::from_static("http://bench.floor"),
    ))
}

/// `--soak tonic-direct`.
pub(crate) async fn soak_direct(
    paths: &Paths,
    dir: &Path,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let socket = dir.join("direct.sock");
    let socket_arg = socket.to_string_lossy();
    // The same server as (b), reached without `Channel`.
    let _peer = Peer::start(&paths.bin("bench-echo"), &["tonic", &socket_arg])?;
    let client = connect_direct(&socket).await?;
    let request = invoke_request();
    stats::throughput(callers, duration, move || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            let response = client.invoke(request).await?.into_inner();
            anyhow::ensure!(response.outcome == v1::Outcome::Continue as i32);
            Ok(())
        }
    })
    .await
}
