//! `bench-echo`: the other end of the benchmark's two floors.
//!
//! - `bench-echo raw SOCKET`: accepts one connection on a Unix socket and
//!   echoes 64-byte messages until it closes: the transport floor.
//! - `bench-echo tonic SOCKET`: a bare tonic server of
//!   `outboard.v1.PluginService` on a Unix socket whose `Invoke` answers
//!   `CONTINUE` at once: no token check, no SDK, no health or reflection,
//!   no deadline handling. The gRPC floor, with Outboard's own messages.
//!
//! Each prints `ready` once it listens, and exits when stdin closes.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use anyhow::{Context, bail};
use outboard_proto::v1::plugin_service_server::{PluginService, PluginServiceServer};
use outboard_proto::v1::{self, Outcome};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// The size of one raw ping and of its pong.
const MESSAGE: usize = 64;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(socket)) = (args.next(), args.next()) else {
        bail!("usage: bench-echo raw|tonic SOCKET");
    };
    let socket = PathBuf::from(socket);
    match mode.as_str() {
        "raw" => raw(&socket),
        "tonic" => tonic_echo(&socket),
        other => bail!("unknown mode {other:?}: raw or tonic"),
    }
}

fn ready() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

/// Exits the process when stdin reaches its end: the harness closes it (or
/// dies), and this end goes with it.
fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut sink)
            .is_ok_and(|n| n > 0)
        {
            sink.clear();
        }
        std::process::exit(0);
    });
}

fn raw(socket: &PathBuf) -> anyhow::Result<()> {
    let listener = UnixListener::bind(socket).context("bind")?;
    exit_on_stdin_eof();
    ready()?;
    let (mut conn, _) = listener.accept().context("accept")?;
    let mut buf = [0u8; MESSAGE];
    loop {
        match conn.read_exact(&mut buf) {
            Ok(()) => conn.write_all(&buf)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `PluginService` with nothing but `Invoke`.
struct Echo;

#[tonic::async_trait]
impl PluginService for Echo {
    async fn describe(
        &self,
        _: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::DescribeResponse>, Status> {
        Err(Status::unimplemented("bench-echo serves Invoke only"))
    }

    async fn configure(
        &self,
        _: Request<v1::ConfigureRequest>,
    ) -> Result<Response<v1::ConfigureResponse>, Status> {
        Err(Status::unimplemented("bench-echo serves Invoke only"))
    }

    async fn invoke(
        &self,
        _: Request<v1::InvokeRequest>,
    ) -> Result<Response<v1::InvokeResponse>, Status> {
        Ok(Response::new(v1::InvokeResponse {
            outcome: Outcome::Continue as i32,
            ..Default::default()
        }))
    }

    async fn shutdown(
        &self,
        _: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::ShutdownResponse>, Status> {
        Ok(Response::new(v1::ShutdownResponse {}))
    }
}

fn tonic_echo(socket: &PathBuf) -> anyhow::Result<()> {
    // The same runtime as the SDK's plugins: multi-threaded, one worker per
    // core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket).context("bind")?;
        exit_on_stdin_eof();
        ready()?;
        tonic::transport::Server::builder()
            .add_service(PluginServiceServer::new(Echo))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await?;
        Ok(())
    })
}
