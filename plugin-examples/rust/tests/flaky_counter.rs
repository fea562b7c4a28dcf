//! `flaky-counter` as a real process, launched as a host launches it with
//! host services: a `FakeHost` from the SDK's test support, served on a
//! Unix socket in the plugin's runtime directory with its own token, plays
//! the host's side.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

use outboard_plugin::testing::FakeHost;
use outboard_proto::json::{json_to_struct, value_to_json};
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Server};

const BIN: &str = env!("CARGO_BIN_EXE_flaky-counter");
const TOKEN: &str = "plugin-token-flaky";
const HOST_TOKEN: &str = "host-token-flaky";

fn invoke(exit_code: i64) -> v1::InvokeRequest {
    let Value::Object(context) = json!({
        "job_id": format!("job-{exit_code}"),
        "command": ["make", "test"],
        "env": {},
        "metadata": {},
        "exit_code": exit_code,
    }) else {
        unreachable!("an object")
    };
    v1::InvokeRequest {
        phase: "post_container".into(),
        invocation_id: format!("inv-{exit_code}"),
        attempt: 1,
        context: Some(json_to_struct(&context)),
        ..v1::InvokeRequest::default()
    }
}

#[tokio::test]
async fn counts_through_the_host_socket_and_reports_the_flaky_command() {
    let dir = tempfile::Builder::new()
        .prefix("ob-fc-")
        .tempdir_in("/tmp")
        .unwrap();
    let host = FakeHost::new()
        .with_plugin("flaky-counter")
        .with_token(HOST_TOKEN)
        .with_grants(["kv"]);
    let host_socket = dir.path().join("host.sock");
    let listener = UnixListener::bind(&host_socket).unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(host.server())
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );

    let socket = dir.path().join("plugin.sock");
    let mut child = common::plugin_command(BIN, &socket, TOKEN, "flaky-counter")
        .env("OUTBOARD_HOST_SOCKET", &host_socket)
        .env("OUTBOARD_HOST_TOKEN", HOST_TOKEN)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let handshake = common::handshake(&mut stdout).await;
    assert_eq!(handshake.socket_path, socket.to_str().unwrap());
    let mut client: PluginServiceClient<Channel> =
        PluginServiceClient::new(common::connect(&socket).await);

    client
        .configure(common::authed(
            v1::ConfigureRequest {
                config: Some(json_to_struct(&serde_json::Map::new())),
                granted_permissions: vec!["kv".into()],
                instance_name: "flaky-counter".into(),
                protocol_version: 1,
            },
            TOKEN,
        ))
        .await
        .unwrap();

    // Two jobs of one command finishing at once, one passing, one failing.
    let (mut first, mut second) = (client.clone(), client.clone());
    let (a, b) = tokio::join!(
        first.invoke(common::authed(invoke(0), TOKEN)),
        second.invoke(common::authed(invoke(1), TOKEN)),
    );
    let (a, b) = (a.unwrap().into_inner(), b.unwrap().into_inner());
    let flaky_message = "flaky: `make test` passed and failed in its last 2 runs";
    assert!(
        [&a.message, &b.message]
            .iter()
            .any(|m| m.starts_with(flaky_message)),
        "{a:?} {b:?}"
    );
    let last = if a.message.is_empty() { &b } else { &a };
    let patched = &last.patch[0];
    assert_eq!(patched.path, "/metadata/flaky_counter");
    let value = value_to_json(patched.value.as_ref().unwrap());
    assert_eq!(value["runs"].as_f64(), Some(2.0), "{value}");
    assert_eq!(value["failures"].as_f64(), Some(1.0), "{value}");
    assert_eq!(value["flaky"], json!(true));
    assert_eq!(value["recent"].as_str().map(str::len), Some(2));
}
