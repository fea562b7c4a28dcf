//! Host services over a real Unix socket: a `FakeHost` served by tonic in a
//! short temp dir stands in for the host; a plugin served with
//! `serve_with` reaches it through `Settings::with_host`, as it would
//! through `OUTBOARD_HOST_SOCKET` and `OUTBOARD_HOST_TOKEN`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use outboard_plugin::host::StatusCode;
use outboard_plugin::host::{Cas, Expected, HostEndpoint, HostServices};
use outboard_plugin::testing::FakeHost;
use outboard_plugin::{
    Event, Invocation, Manifest, Plugin, PluginError, Reply, Settings, serve_with,
};
use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::json::json_to_struct;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::{Code, Request};

mod common;
use common::{connect, increment};

const HOST_TOKEN: &str = "host-token-abcdef";
const PLUGIN_TOKEN: &str = "plugin-token-012345";

/// The fake host served on `<dir>/h.sock`.
fn serve_host(dir: &Path, host: &FakeHost) -> PathBuf {
    let socket = dir.join("h.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = Server::builder()
        .add_service(host.server())
        .serve_with_incoming(UnixListenerStream::new(listener));
    tokio::spawn(server);
    socket
}

fn endpoint(socket: &Path, token: &str) -> HostEndpoint {
    HostEndpoint {
        socket: socket.to_owned(),
        token: token.to_owned(),
    }
}

fn temp_dir() -> tempfile::TempDir {
    // Short on purpose: socket paths are limited to 108 bytes.
    tempfile::Builder::new()
        .prefix("ob-hs-")
        .tempdir_in("/tmp")
        .unwrap()
}

#[tokio::test]
async fn the_client_carries_the_token_and_the_host_decides() {
    let dir = temp_dir();
    let host = FakeHost::new()
        .with_plugin("counter")
        .with_token(HOST_TOKEN)
        .with_grants(["kv", "secret:key"])
        .with_secret("key", "s3cret");
    let socket = serve_host(dir.path(), &host);

    let services = HostServices::connect(endpoint(&socket, HOST_TOKEN));
    assert!(!format!("{services:?}").contains(HOST_TOKEN));
    let kv = services.kv();
    kv.set("k", "v", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(kv.get("k").await.unwrap().unwrap().value, b"v");
    assert_eq!(
        kv.compare_and_set("k", Expected::Value(b"v".to_vec()), "w", None)
            .await
            .unwrap(),
        Cas::Swapped
    );
    assert_eq!(
        services.secrets().get("key").await.unwrap().expose(),
        b"s3cret"
    );
    let err = kv.shared("jobs").get("k").await.unwrap_err();
    assert_eq!(err.code(), StatusCode::PermissionDenied);
    assert!(err.to_string().contains("kv:shared:jobs"), "{err}");

    let stranger = HostServices::connect(endpoint(&socket, "guessed-token"));
    let err = stranger.kv().get("k").await.unwrap_err();
    assert_eq!(err.code(), StatusCode::Unauthenticated, "{err}");
}

#[tokio::test]
async fn an_unreachable_host_is_named_by_its_variable() {
    let dir = temp_dir();
    let services = HostServices::connect(endpoint(&dir.path().join("none.sock"), HOST_TOKEN));
    let err = services.kv().get("k").await.unwrap_err();
    assert_eq!(err.code(), StatusCode::Unavailable, "{err}");
    assert!(err.to_string().contains("OUTBOARD_HOST_SOCKET="), "{err}");
    assert!(!err.to_string().contains(HOST_TOKEN));
}

/// Counts its invocations in a shared namespace with compare-and-set, and
/// job events in its own; subscribes to `job.*` events.
struct Counter;

impl Plugin for Counter {
    fn manifest(&self) -> Manifest {
        Manifest::new("counter", "0.1.0")
            .subscribe("pre_container", 0)
            .subscribe_event("job.*")
    }

    async fn invoke(&self, inv: Invocation) -> Result<Reply, PluginError> {
        let n = increment(&inv.kv().shared("jobs"), "runs").await?;
        Ok(Reply::ok().set("/metadata/runs", n))
    }

    async fn on_event(&self, event: Event) -> Result<(), PluginError> {
        increment(&event.kv(), &event.name).await?;
        Ok(())
    }
}

fn invoke(phase: &str, context: Value) -> Request<v1::InvokeRequest> {
    let Value::Object(context) = context else {
        panic!("an object")
    };
    let mut request = Request::new(v1::InvokeRequest {
        phase: phase.into(),
        invocation_id: "ev-1".into(),
        attempt: 1,
        context: Some(json_to_struct(&context)),
        ..v1::InvokeRequest::default()
    });
    request
        .metadata_mut()
        .insert(TOKEN_METADATA_KEY, bearer(PLUGIN_TOKEN).parse().unwrap());
    request
}

#[tokio::test]
async fn a_served_plugin_calls_back_and_events_without_handler_are_unimplemented() {
    let dir = temp_dir();
    let host = FakeHost::new()
        .with_token(HOST_TOKEN)
        .with_grants(["kv", "kv:shared:jobs"]);
    let host_socket = serve_host(dir.path(), &host);
    let socket = dir.path().join("p.sock");
    let settings = Settings::new(&socket, PLUGIN_TOKEN)
        .handle_signals(false)
        .with_host(endpoint(&host_socket, HOST_TOKEN));
    tokio::spawn(serve_with(Counter, settings));
    let client = PluginServiceClient::new(connect(&socket).await);

    // 16 concurrent invocations, each a compare-and-set loop: none lost.
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.invoke(invoke("pre_container", json!({}))).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(host.value(Some("jobs"), "runs"), Some(b"16".to_vec()));

    let event = json!({"event": {"id": "ev-1", "name": "job.finished", "source": "host",
        "time": "2026-12-05T07:00:00Z", "payload": {"exit_code": 0}}});
    let answer = client
        .clone()
        .invoke(invoke("event:job.finished", event))
        .await
        .unwrap();
    let answer = answer.into_inner();
    assert_eq!(answer.outcome, v1::Outcome::Continue as i32);
    assert!(answer.patch.is_empty());
    assert_eq!(host.value(None, "job.finished"), Some(b"1".to_vec()));

    let other = json!({"event": {"id": "ev-2", "name": "deploy.done", "source": "plugin:x",
        "time": "2026-12-05T07:00:00Z", "payload": null}});
    let status = client
        .clone()
        .invoke(invoke("event:deploy.done", other))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(status.message().contains("deploy.done"), "{status:?}");
}
