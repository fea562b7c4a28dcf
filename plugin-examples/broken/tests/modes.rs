//! Runs `broken-plugin` in each mode as a real subprocess, with a minimal
//! host written here, and checks that it commits exactly its fault.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::handshake::{self, HandshakeLine};
use outboard_proto::v1;
use outboard_proto::v1::plugin_service_client::PluginServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const TOKEN: &str = "test-token";
const WAIT: Duration = Duration::from_secs(10);

/// A launched plugin, killed (with its process group) when dropped.
struct Launched {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, "KILL");
        }
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .status();
}

fn signal_pid(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

fn command(mode: Option<&str>, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_broken-plugin"));
    cmd.args(mode)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(handshake::ENV_MAGIC_COOKIE, handshake::MAGIC_COOKIE_VALUE)
        .env(handshake::ENV_PROTOCOL_VERSIONS, "1")
        .env(handshake::ENV_SOCKET, dir.join("p.sock"))
        .env(handshake::ENV_TOKEN, TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

fn launch(mode: &str) -> Launched {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = command(Some(mode), dir.path())
        .spawn()
        .expect("spawn broken-plugin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    Launched {
        child,
        stdout,
        stderr,
        socket: dir.path().join("p.sock"),
        _dir: dir,
    }
}

impl Launched {
    async fn line(&mut self) -> Option<String> {
        timeout(WAIT, self.stdout.next_line())
            .await
            .expect("a stdout line in time")
            .expect("read stdout")
    }

    /// Reads up to the handshake line, returning it and the lines before.
    async fn handshake(&mut self) -> (HandshakeLine, Vec<String>) {
        let mut junk = Vec::new();
        loop {
            let line = self.line().await.expect("handshake before EOF");
            if line.starts_with(handshake::HANDSHAKE_PREFIX) {
                return (line.parse().expect("valid handshake line"), junk);
            }
            junk.push(line);
        }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_static("http://plugin")
            .connect_with_connector(Uds(self.socket.clone()))
            .await
            .expect("connect to the plugin socket")
    }

    async fn client(&self) -> PluginServiceClient<Channel> {
        PluginServiceClient::new(self.channel().await)
    }

    /// Everything the plugin wrote to stderr; waits for it to close.
    async fn stderr(&mut self) -> String {
        timeout(WAIT, &mut self.stderr)
            .await
            .expect("stderr closed in time")
            .expect("stderr reader")
    }

    async fn exit(&mut self) -> ExitStatus {
        timeout(WAIT, self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait")
    }
}

/// Connects tonic to a Unix socket.
#[derive(Clone)]
struct Uds(PathBuf);

impl tonic::codegen::Service<Uri> for Uds {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
    }
}

fn authed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        handshake::TOKEN_METADATA_KEY,
        handshake::bearer(TOKEN).parse().expect("ascii"),
    );
    request
}

async fn describe(client: &mut PluginServiceClient<Channel>) -> v1::Manifest {
    client
        .describe(authed(v1::DescribeRequest::default()))
        .await
        .expect("describe")
        .into_inner()
        .manifest
        .expect("a manifest")
}

async fn invoke(
    client: &mut PluginServiceClient<Channel>,
) -> Result<v1::InvokeResponse, tonic::Status> {
    let request = v1::InvokeRequest {
        phase: "test".into(),
        attempt: 1,
        ..Default::default()
    };
    client.invoke(authed(request)).await.map(|r| r.into_inner())
}

async fn shutdown(client: &mut PluginServiceClient<Channel>, grace: Duration) {
    let request = v1::ShutdownRequest {
        grace: Some(grace.try_into().expect("duration")),
        reason: "test".into(),
    };
    client.shutdown(authed(request)).await.expect("shutdown");
}

async fn output(mode: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = command(mode, dir.path()).spawn().expect("spawn");
    timeout(WAIT, child.wait_with_output())
        .await
        .expect("exit in time")
        .expect("wait")
}

#[tokio::test]
async fn ok_serves_the_whole_protocol() {
    let mut p = launch("ok");
    let (line, junk) = p.handshake().await;
    assert!(junk.is_empty(), "{junk:?}");
    assert_eq!(line.protocol_version, 1);
    assert_eq!(Path::new(&line.socket_path), p.socket);
    let mode = std::fs::metadata(&p.socket).expect("socket").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let mut client = p.client().await;
    let manifest = describe(&mut client).await;
    assert_eq!(manifest.name, "broken-ok");
    assert_eq!(manifest.version, "0.1.0");
    assert_eq!(manifest.protocol_version, 1);
    assert_eq!(manifest.subscriptions.len(), 1);
    assert_eq!(manifest.subscriptions[0].phase, "test");

    let status = client
        .describe(Request::new(v1::DescribeRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = Request::new(v1::DescribeRequest::default());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().expect("ascii"));
    let status = client.describe(wrong).await.expect_err("wrong token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut health = HealthClient::new(p.channel().await);
    let serving = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);

    client
        .configure(authed(v1::ConfigureRequest::default()))
        .await
        .expect("configure");
    let reply = invoke(&mut client).await.expect("invoke");
    assert_eq!(reply.outcome, v1::Outcome::Continue as i32);
    assert_eq!(reply.patch[0].path, "/seen/broken-ok");

    shutdown(&mut client, Duration::from_secs(2)).await;
    assert_eq!(p.exit().await.code(), Some(0));
}

#[tokio::test]
async fn ok_exits_zero_on_sigterm() {
    let mut p = launch("ok");
    p.handshake().await;
    signal_pid(p.child.id().expect("running"), "TERM");
    assert_eq!(p.exit().await.code(), Some(0));
}

#[tokio::test]
async fn usage_and_environment_errors() {
    for mode in [None, Some("no-such-mode")] {
        let out = output(mode).await;
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("usage: broken-plugin MODE"), "{stderr}");
        assert!(stderr.contains("ignores-sigterm"), "{stderr}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(Some("ok"), dir.path())
        .env_remove(handshake::ENV_MAGIC_COOKIE)
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let out = command(Some("ok"), dir.path())
        .env(handshake::ENV_PROTOCOL_VERSIONS, "7,8")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no protocol version in common"), "{stderr}");
}

#[tokio::test]
async fn exit_early() {
    let out = output(Some("exit-early")).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "starting up\nreading config\nfatal: cannot open /nonexistent/broken.toml\n"
    );
}

#[tokio::test]
async fn silent_prints_nothing_and_dies_on_sigterm() {
    let mut p = launch("silent");
    let nothing = timeout(Duration::from_millis(300), p.stdout.next_line()).await;
    assert!(nothing.is_err(), "printed {nothing:?}");
    assert!(!p.socket.exists());
    signal_pid(p.child.id().expect("running"), "TERM");
    let status = p.exit().await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[tokio::test]
async fn junk_then_ok() {
    let mut p = launch("junk-then-ok");
    let (_, junk) = p.handshake().await;
    assert_eq!(junk.len(), 4, "{junk:?}");
    assert!(junk.contains(&String::new()));
    let mut client = p.client().await;
    assert_eq!(describe(&mut client).await.name, "broken-junk-then-ok");
}

#[tokio::test]
async fn wrong_version_and_malformed() {
    let mut p = launch("wrong-version");
    let line = p.line().await.expect("a line");
    assert_eq!(
        line,
        format!("outboard|99|unix|{}|grpc", p.socket.display())
    );
    assert!(p.socket.exists());

    let mut p = launch("malformed");
    assert_eq!(p.line().await.as_deref(), Some("outboard|1|unix"));
}

#[tokio::test]
async fn bad_manifest() {
    let mut p = launch("bad-manifest");
    p.handshake().await;
    let manifest = describe(&mut p.client().await).await;
    assert_eq!(manifest.version, "not-a-version");
    assert_eq!(manifest.subscriptions[0].phase, "Pre Container!");
    assert_eq!(manifest.protocol_version, 1);
}

#[tokio::test]
async fn forks_grandchild_in_its_group() {
    let mut p = launch("forks-grandchild");
    p.handshake().await;
    let manifest = describe(&mut p.client().await).await;
    let pid: u32 = manifest
        .description
        .split("grandchild_pid=")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("grandchild pid in the description");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("grandchild alive");
    let group = stat.split(' ').nth(4).expect("pgrp field");
    assert_eq!(group, p.child.id().expect("running").to_string());
    // The plugin's credentials stay with the plugin.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("grandchild's environ");
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|var| var.split(|b| *b == b'=').next())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "PATH"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("OUTBOARD_")),
        "the grandchild sees {names:?}"
    );
    drop(p);
    // The group kill took the grandchild too (it may linger as a zombie of
    // init for a moment, so wait for /proc to say so).
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(s) if s.split(' ').nth(2) == Some("Z") => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("grandchild {pid} survived its group's SIGKILL");
}

#[tokio::test]
async fn ignores_sigterm_and_shutdown() {
    let mut p = launch("ignores-sigterm");
    p.handshake().await;
    let mut client = p.client().await;
    shutdown(&mut client, Duration::from_millis(100)).await;
    signal_pid(p.child.id().expect("running"), "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.child.try_wait().expect("poll").is_none(), "it exited");
    describe(&mut client).await;
}

#[tokio::test]
async fn crash_on_invoke() {
    let mut p = launch("crash-on-invoke");
    p.handshake().await;
    let mut client = p.client().await;
    // The connection breaks mid-call; which code tonic gives that varies.
    invoke(&mut client).await.expect_err("the plugin died");
    assert_eq!(p.exit().await.code(), Some(101));
    assert!(p.stderr().await.contains("crashing on purpose"));
}

#[tokio::test]
async fn hang_invoke_still_shuts_down() {
    let mut p = launch("hang-invoke");
    p.handshake().await;
    let mut client = p.client().await;
    let mut hung = client.clone();
    let call = tokio::spawn(async move { invoke(&mut hung).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished());
    shutdown(&mut client, Duration::from_millis(300)).await;
    assert_eq!(p.exit().await.code(), Some(0));
    let status = call.await.expect("join").expect_err("never answered");
    assert_ne!(status.code(), Code::Ok);
}
