//! `env-injector` as a real process: run by hand, and launched the way a
//! host launches it (environment, handshake line on stdout, gRPC on the
//! socket, JSON logs on stderr, exit 0 on Shutdown or SIGTERM).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use outboard_proto::handshake::{self, HandshakeLine};
use outboard_proto::json::json_to_struct;
use outboard_proto::patch;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, BufReader};
use tonic::Request;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_env-injector");
const TOKEN: &str = "subprocess-token-42";

const BY_HAND: &str = "env-injector is an Outboard plugin: start it from an Outboard host \
                       (for example `outboard describe -- <this command>`), not directly.\n";

#[test]
fn run_by_hand_says_so_in_one_sentence_and_exits_1() {
    let out = Command::new(BIN).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), BY_HAND);
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);

    // A wrong cookie is the same mistake.
    let out = Command::new(BIN)
        .env_clear()
        .env(handshake::ENV_MAGIC_COOKIE, "something-else")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), BY_HAND);
}

#[test]
fn no_common_protocol_version_names_both_lists() {
    let out = Command::new(BIN)
        .env_clear()
        .env(handshake::ENV_MAGIC_COOKIE, handshake::MAGIC_COOKIE_VALUE)
        .env(handshake::ENV_PROTOCOL_VERSIONS, "7,8")
        .env(handshake::ENV_SOCKET, "/tmp/unused.sock")
        .env(handshake::ENV_TOKEN, TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "env-injector: no protocol version in common: the host speaks 7,8 and this plugin \
         speaks 1\n"
    );
    assert!(out.stdout.is_empty());
}

/// A launched plugin: the child, its socket, its stdout after the handshake.
struct Launched {
    child: tokio::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    client: PluginServiceClient<Channel>,
    stdout: BufReader<tokio::process::ChildStdout>,
}

async fn launch() -> Launched {
    let dir = tempfile::Builder::new()
        .prefix("ob-ex-")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("plugin.sock");
    let mut child = common::plugin_command(BIN, &socket, TOKEN, "env-injector")
        .env("RUST_LOG", "debug")
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let handshake = common::handshake(&mut stdout).await;
    assert_eq!(
        handshake,
        HandshakeLine {
            protocol_version: 1,
            socket_path: socket.to_str().unwrap().to_owned(),
        }
    );
    let client = PluginServiceClient::new(common::connect(&socket).await);
    Launched {
        child,
        socket,
        _dir: dir,
        client,
        stdout,
    }
}

/// `message` as a request carrying this test's token.
fn authed<T>(message: T) -> Request<T> {
    common::authed(message, TOKEN)
}

/// Describe, Configure and Invoke, as a host would after the handshake.
async fn use_it(p: &mut Launched) {
    let manifest = p
        .client
        .describe(authed(v1::DescribeRequest {
            host_protocol_versions: vec![1],
            host_version: "0.1.0".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .manifest
        .unwrap();
    assert_eq!(manifest.name, "env-injector");
    assert_eq!(manifest.protocol_version, 1);

    let config = json!({"prefix": "ci"});
    p.client
        .configure(authed(v1::ConfigureRequest {
            config: Some(json_to_struct(config.as_object().unwrap())),
            granted_permissions: vec!["env:write".into()],
            protocol_version: 1,
            instance_name: "env-injector".into(),
        }))
        .await
        .unwrap();

    let mut context = json!({"command": ["true"], "env": {"PATH": "/bin"}, "metadata": {}});
    let response = p
        .client
        .invoke(authed(v1::InvokeRequest {
            phase: "pre_container".into(),
            invocation_id: "0123456789abcdef".into(),
            attempt: 1,
            context: Some(json_to_struct(context.as_object().unwrap())),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    patch::apply(&mut context, &patch::from_proto(&response.patch).unwrap()).unwrap();
    assert_eq!(context["env"]["BUILD_ID"], json!("ci-0123456789ab"));
    assert_eq!(context["env"]["PATH"], json!("/bin"));
    let stamp = context["env"]["BUILD_TIMESTAMP"].as_str().unwrap();
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
}

/// Waits for the child to exit and checks it did so cleanly: status 0,
/// nothing on stdout after the handshake, only JSON lines on stderr, the
/// socket removed.
async fn exits_cleanly(mut p: Launched) {
    let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
        .await
        .expect("still running 10 s after being asked to stop")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!p.socket.exists(), "socket file left behind");

    let mut rest = String::new();
    p.stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "stdout after the handshake");

    let mut stderr = String::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let messages: Vec<String> = stderr
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
            assert!(v["level"].is_string(), "{line}");
            v["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert!(messages.iter().any(|m| m == "serving"), "{messages:?}");
    assert!(messages.iter().any(|m| m == "stopped"), "{messages:?}");
}

#[tokio::test]
async fn launched_by_a_host_it_serves_then_stops_on_shutdown() {
    let mut p = launch().await;
    use_it(&mut p).await;
    p.client
        .shutdown(authed(v1::ShutdownRequest {
            grace: Some(Duration::from_secs(2).try_into().unwrap()),
            reason: "test".into(),
        }))
        .await
        .unwrap();
    exits_cleanly(p).await;
}

#[tokio::test]
async fn sigterm_stops_it_gracefully() {
    let mut p = launch().await;
    use_it(&mut p).await;
    let pid = p.child.id().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    exits_cleanly(p).await;
}
