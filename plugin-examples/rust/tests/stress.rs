//! `stress` as a real process, launched the way a host launches it (its own
//! process group, the handshake variables, gRPC on the socket): the faults
//! that only show in a real process (exits, panics, signals, health over
//! the wire, output, grandchildren).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outboard_proto::handshake;
use outboard_proto::json::json_to_struct;
use outboard_proto::patch;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const BIN: &str = env!("CARGO_BIN_EXE_stress");
const TOKEN: &str = "stress-token-42";

/// A launched plugin.
struct Launched {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    client: PluginServiceClient<Channel>,
    channel: Channel,
    stdout: BufReader<tokio::process::ChildStdout>,
    /// Everything the plugin wrote to stderr so far.
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The host's environment for a plugin, plus `env`, with stderr collected.
fn command(socket: &Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(handshake::ENV_MAGIC_COOKIE, handshake::MAGIC_COOKIE_VALUE)
        .env(handshake::ENV_PROTOCOL_VERSIONS, "1")
        .env(handshake::ENV_SOCKET, socket)
        .env(handshake::ENV_TOKEN, TOKEN)
        .env(handshake::ENV_PLUGIN_NAME, "stress-a")
        .envs(env.iter().copied())
        // Like the host: its own process group.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn temp_dir() -> tempfile::TempDir {
    // Short on purpose: socket paths are limited to 108 bytes.
    tempfile::Builder::new()
        .prefix("ob-st-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// Starts the child's stderr collector.
fn collect_stderr(child: &mut tokio::process::Child) -> Arc<Mutex<Vec<u8>>> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = collected.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    collected
}

async fn launch(env: &[(&str, &str)]) -> Launched {
    let dir = temp_dir();
    let socket = dir.path().join("plugin.sock");
    let mut child = command(&socket, env).spawn().unwrap();
    let stderr = collect_stderr(&mut child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let handshake = common::handshake(&mut stdout).await;
    assert_eq!(handshake.socket_path, socket.to_str().unwrap());
    let channel = common::connect(&socket).await;
    Launched {
        child,
        _dir: dir,
        client: PluginServiceClient::new(channel.clone()),
        channel,
        stdout,
        stderr,
    }
}

/// `message` as a request carrying this test's token.
fn authed<T>(message: T) -> Request<T> {
    common::authed(message, TOKEN)
}

impl Launched {
    async fn configure(&mut self, config: Value) -> Result<(), tonic::Status> {
        self.client
            .configure(authed(v1::ConfigureRequest {
                config: Some(json_to_struct(config.as_object().unwrap())),
                granted_permissions: vec![],
                protocol_version: 1,
                instance_name: "stress-a".into(),
            }))
            .await
            .map(drop)
    }

    /// Invokes `stress` and returns the count the plugin patched in.
    async fn invoke(&mut self) -> Result<u64, tonic::Status> {
        let response = self
            .client
            .invoke(authed(v1::InvokeRequest {
                phase: "stress".into(),
                invocation_id: "inv-1".into(),
                attempt: 1,
                context: Some(json_to_struct(json!({}).as_object().unwrap())),
                ..Default::default()
            }))
            .await?
            .into_inner();
        let mut context = json!({});
        patch::apply(&mut context, &patch::from_proto(&response.patch).unwrap()).unwrap();
        Ok(context["metadata"]["stress"]["stress-a"]["count"]
            .as_u64()
            .unwrap())
    }

    /// The health check the host makes, bounded by 300 ms.
    async fn health(&self) -> Result<i32, tonic::Status> {
        let mut request = Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(Duration::from_millis(300));
        HealthClient::new(self.channel.clone())
            .check(request)
            .await
            .map(|r| r.into_inner().status)
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits up to 10 s for stderr to hold `needle`.
    async fn stderr_shows(&self, needle: &str) -> String {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let stderr = self.stderr();
            if stderr.contains(needle) {
                return stderr;
            }
            assert!(
                Instant::now() < give_up,
                "stderr never showed {needle:?}:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, waiting up to `within`.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {within:?}"))
            .unwrap()
            .code()
    }

    /// `true` if the process is still running after `wait`.
    async fn survives(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.child.wait()).await.is_err()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

#[tokio::test]
async fn health_not_serving_is_reported_from_configure_on() {
    let mut p = launch(&[]).await;
    assert_eq!(p.health().await.unwrap(), ServingStatus::Serving as i32);
    p.configure(json!({"health": "not_serving"})).await.unwrap();
    assert_eq!(p.health().await.unwrap(), ServingStatus::NotServing as i32);
    // Calls are still served.
    assert_eq!(p.invoke().await.unwrap(), 1);
}

#[tokio::test]
async fn health_stop_answering_leaves_checks_to_time_out() {
    let mut p = launch(&[]).await;
    p.configure(json!({"health": "stop_answering_after:2"}))
        .await
        .unwrap();
    assert_eq!(p.invoke().await.unwrap(), 1);
    assert_eq!(p.health().await.unwrap(), ServingStatus::Serving as i32);
    assert_eq!(p.invoke().await.unwrap(), 2);
    let status = p.health().await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert_eq!(p.invoke().await.unwrap(), 3);
}

#[tokio::test]
async fn exit_at_start_says_so_and_exits_3_before_the_handshake() {
    let dir = temp_dir();
    let out = command(
        &dir.path().join("plugin.sock"),
        &[("STRESS_AT_START", "exit")],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stress: exiting at start on purpose\n"
    );
    assert!(out.stdout.is_empty());

    let out = command(&dir.path().join("plugin.sock"), &[("STRESS_PHASES", "a:b")])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "stress: STRESS_PHASES is \"a:b\": in \"a:b\", the priority \"b\" is not an integer\n"
    );
}

#[tokio::test]
async fn exit_after_ms_serves_then_exits_3() {
    let started = Instant::now();
    let mut p = launch(&[("STRESS_AT_START", "exit-after-ms:300")]).await;
    p.configure(json!({})).await.unwrap();
    assert_eq!(p.exit_code(Duration::from_secs(10)).await, Some(3));
    assert!(started.elapsed() >= Duration::from_millis(300));
    p.stderr_shows("stress: exiting 300 ms after start on purpose\n")
        .await;
}

#[tokio::test]
async fn crash_after_exits_101_inside_the_nth_invoke() {
    let mut p = launch(&[]).await;
    p.configure(json!({"crash_after": 2})).await.unwrap();
    assert_eq!(p.invoke().await.unwrap(), 1);
    let status = p.invoke().await.unwrap_err();
    // What the host classifies as a crash: the call fails as the process goes.
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        "{status:?}"
    );
    assert_eq!(p.exit_code(Duration::from_secs(10)).await, Some(101));
    p.stderr_shows("stress: crashing after 2 invocations").await;
}

#[tokio::test]
async fn a_panic_in_invoke_fails_the_call_and_the_plugin_lives_on() {
    let mut p = launch(&[("RUST_BACKTRACE", "1")]).await;
    p.configure(json!({"panic_on_invoke": true})).await.unwrap();
    // tokio catches the panic in the task serving the call's HTTP/2 stream;
    // the stream is reset (RST_STREAM CANCEL), which tonic reports as
    // CANCELLED, before any deadline.
    let status = p.invoke().await.unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(status.message().contains("h2 protocol error"), "{status:?}");
    let stderr = p
        .stderr_shows("stress: panicking in Invoke on purpose (invocation 1)")
        .await;
    assert!(stderr.contains("panicked at"), "{stderr}");
    // The panic took the call's task, not the process.
    assert!(p.survives(Duration::from_millis(200)).await);
    p.configure(json!({})).await.unwrap();
    assert_eq!(p.invoke().await.unwrap(), 2);
}

#[tokio::test]
async fn ignoring_sigterm_and_shutdown_leaves_only_sigkill() {
    let mut p = launch(&[("STRESS_IGNORE_SIGTERM", "1")]).await;
    p.configure(json!({"ignore_shutdown": true})).await.unwrap();
    p.signal("TERM");
    p.stderr_shows("stress: got SIGTERM, ignoring it on purpose")
        .await;
    assert!(p.survives(Duration::from_millis(300)).await);
    p.client
        .shutdown(authed(v1::ShutdownRequest {
            grace: Some(Duration::from_millis(500).try_into().unwrap()),
            reason: "test".into(),
        }))
        .await
        .unwrap();
    p.stderr_shows("stress: answered Shutdown, not exiting on purpose (until SIGKILL)")
        .await;
    p.signal("TERM");
    assert!(p.survives(Duration::from_millis(500)).await);
    p.signal("KILL");
    assert_eq!(p.exit_code(Duration::from_secs(10)).await, None);
}

#[tokio::test]
async fn ignoring_shutdown_alone_ends_with_sigterm() {
    let mut p = launch(&[]).await;
    p.configure(json!({"ignore_shutdown": true})).await.unwrap();
    p.client
        .shutdown(authed(v1::ShutdownRequest {
            grace: Some(Duration::from_millis(500).try_into().unwrap()),
            reason: "test".into(),
        }))
        .await
        .unwrap();
    p.stderr_shows("stress: answered Shutdown, not exiting on purpose (until SIGTERM)")
        .await;
    assert!(p.survives(Duration::from_millis(300)).await);
    p.signal("TERM");
    assert_eq!(p.exit_code(Duration::from_secs(10)).await, Some(0));
}

/// Field `n` (1-based, after the command) of `/proc/<pid>/stat`: 5 is the
/// process group, 6 the session.
fn proc_stat(pid: u32, n: usize) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

/// The pids in the JSON line whose `process_group` is `group`.
fn pids_from(stderr: &str, group: &str) -> Vec<u32> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["process_group"] == group)
        .unwrap_or_else(|| panic!("no {group} pids in:\n{stderr}"))["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u32::try_from(p.as_u64().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn grandchildren_stay_in_the_group_or_escape_it() {
    let mut p = launch(&[]).await;
    let pid = p.child.id().unwrap();
    p.configure(json!({"fork_grandchildren": 2, "orphan_grandchildren": 1}))
        .await
        .unwrap();
    let stderr = p.stderr_shows("left the process group").await;
    let own = pids_from(&stderr, "own");
    let escaped = pids_from(&stderr, "escaped");
    // Kill them whatever the assertions say: nothing else will.
    let cleanup = || {
        for grandchild in own.iter().chain(&escaped) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &grandchild.to_string()])
                .status();
        }
    };
    let checks = std::panic::catch_unwind(|| {
        assert_eq!(own.len(), 2);
        assert_eq!(escaped.len(), 1);
        for g in &own {
            assert_eq!(proc_stat(*g, 5), pid, "grandchild {g} left the group");
        }
        let e = escaped[0];
        assert_eq!(proc_stat(e, 5), e, "escaped grandchild leads its group");
        assert_eq!(proc_stat(e, 6), e, "escaped grandchild leads its session");
    });
    cleanup();
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(p.invoke().await.unwrap(), 1);
}

#[tokio::test]
async fn floods_and_a_newline_free_run_reach_the_pipes() {
    let mut p = launch(&[]).await;
    p.configure(json!({
        "flood_stdout": {"lines_per_sec": 200, "line_bytes": 40},
        "flood_stderr": {"lines_per_sec": 200, "line_bytes": 30},
        "newline_free_bytes": 20000,
    }))
    .await
    .unwrap();
    let started = Instant::now();
    for n in 1..=20 {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), p.stdout.read_line(&mut line))
            .await
            .expect("stdout flood stopped")
            .unwrap();
        let prefix = format!("stress flood stdout line {n} ");
        assert!(line.starts_with(&prefix), "{line:?}");
        assert_eq!(line.len(), 41, "{line:?}");
    }
    // 20 lines at 200 a second: about 100 ms, not all at once nor much later.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    p.stderr_shows("stress flood stderr line 20 ").await;
    p.stderr_shows(&"x".repeat(20000)).await;
    assert!(!p.stderr().contains(&"x".repeat(20001)));
}
