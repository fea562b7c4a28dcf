//! The SDK's server over a real Unix socket: each test serves a fixture
//! plugin with `serve_with` in a short temp dir under /tmp and talks to it
//! with tonic's generated clients, as the host would.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use outboard_plugin::{
    Config, Health, Invocation, Manifest, Plugin, PluginError, Reply, ServeError, Settings,
    serve_with,
};
use outboard_proto::json::{json_to_struct, struct_to_json};
use outboard_proto::patch;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use serde_json::{Map, Value, json};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::codegen::http;
use tonic::transport::{Channel, Uri};
use tonic::{Code, Request};

mod common;
use common::{connect, stopped, with_token};

const TOKEN: &str = "test-token-0123456789";

/// What the fixture plugin lets a test observe.
#[derive(Default)]
struct Probe {
    /// The config from the last successful Configure.
    config: Mutex<Option<Map<String, Value>>>,
    /// Set by `Plugin::shutdown`.
    shut_down: AtomicBool,
    /// Receives the phase of every invoke future dropped before finishing.
    dropped: std::sync::Mutex<Option<mpsc::UnboundedSender<String>>>,
    /// The health handle from the last successful Configure.
    health: std::sync::Mutex<Option<Health>>,
    /// Notified when an invoke reaches the plugin.
    invoked: Notify,
}

/// Sends its phase to the probe when dropped unfinished.
struct DropGuard {
    phase: String,
    probe: Arc<Probe>,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished
            && let Some(tx) = self.probe.dropped.lock().unwrap().as_ref()
        {
            let _ = tx.send(self.phase.clone());
        }
    }
}

struct Fixture(Arc<Probe>);

impl Plugin for Fixture {
    fn manifest(&self) -> Manifest {
        Manifest::new("fixture", "2.3.4")
            .describe("a plugin for the SDK's tests")
            .subscribe("pre_container", 10)
            .subscribe_idempotent("post_container", -1)
            .permission("env:write", "to set variables")
            .config_schema(json!({"type": "object"}))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        if let Some(mode) = config.get("mode").and_then(Value::as_str)
            && mode != "quiet"
        {
            return Err(PluginError::invalid_config(format!(
                "mode: {mode:?} is not one of quiet"
            )));
        }
        *self.0.health.lock().unwrap() = Some(config.health.clone());
        *self.0.config.lock().await = Some(config.values);
        Ok(())
    }

    async fn invoke(&self, inv: Invocation) -> Result<Reply, PluginError> {
        let mut guard = DropGuard {
            phase: inv.phase.clone(),
            probe: self.0.clone(),
            finished: false,
        };
        self.0.invoked.notify_one();
        if let Some(ms) = inv.get("/metadata/sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if inv.get("/metadata/fail").is_some() {
            guard.finished = true;
            return Err(PluginError::invalid_context("metadata.fail is set"));
        }
        let configured = self.0.config.lock().await.clone();
        guard.finished = true;
        Ok(Reply::ok()
            .set("/env/SEEN_BY", "fixture")
            .set("/metadata/invocation_id", inv.invocation_id.clone())
            .set("/metadata/attempt", inv.attempt)
            .set(
                "/metadata/traceparent",
                inv.trace_context
                    .get("traceparent")
                    .cloned()
                    .unwrap_or_default(),
            )
            .set("/metadata/had_deadline", inv.deadline.is_some())
            .set(
                "/metadata/config",
                configured.map(Value::Object).unwrap_or(Value::Null),
            )
            .remove("/env/DROP_ME")
            .with_message("fixture was here"))
    }

    async fn shutdown(&self) {
        self.0.shut_down.store(true, Ordering::SeqCst);
    }
}

/// A fixture plugin served on a socket in its own temp dir.
struct Served {
    /// Holds the directory until the test ends.
    _dir: tempfile::TempDir,
    socket: PathBuf,
    probe: Arc<Probe>,
    dropped: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<Result<(), ServeError>>,
    client: PluginServiceClient<Channel>,
    channel: Channel,
}

async fn serve() -> Served {
    // Short on purpose: socket paths are limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("ob-sdk-")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("p.sock");
    let (tx, dropped) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe::default());
    *probe.dropped.lock().unwrap() = Some(tx);
    let settings = Settings::new(&socket, TOKEN).handle_signals(false);
    let task = tokio::spawn(serve_with(Fixture(probe.clone()), settings));
    let channel = connect(&socket).await;
    Served {
        _dir: dir,
        socket,
        probe,
        dropped,
        task,
        client: PluginServiceClient::new(channel.clone()),
        channel,
    }
}

/// Waits until an invoke has reached the fixture plugin.
async fn invoke_started(s: &Served) {
    tokio::time::timeout(Duration::from_secs(10), s.probe.invoked.notified())
        .await
        .expect("the call never reached the plugin");
}

fn authed<T>(message: T) -> Request<T> {
    with_token(message, Some(TOKEN))
}

fn describe() -> v1::DescribeRequest {
    v1::DescribeRequest {
        host_protocol_versions: vec![1],
        host_version: "0.1.0".into(),
    }
}

fn invoke_request(phase: &str, context: Value) -> v1::InvokeRequest {
    let Value::Object(context) = context else {
        panic!("context must be an object")
    };
    v1::InvokeRequest {
        phase: phase.into(),
        invocation_id: "inv-0001".into(),
        attempt: 2,
        deadline: None,
        trace_context: [("traceparent".to_owned(), "00-abc-def-01".to_owned())].into(),
        context: Some(json_to_struct(&context)),
    }
}

async fn shutdown(s: &mut Served, grace: Duration) {
    common::shutdown(&mut s.client, TOKEN, grace).await;
}

#[tokio::test]
async fn describe_with_token_returns_the_manifest() {
    let mut s = serve().await;
    let manifest = s
        .client
        .describe(authed(describe()))
        .await
        .unwrap()
        .into_inner()
        .manifest
        .unwrap();
    assert_eq!(manifest.name, "fixture");
    assert_eq!(manifest.version, "2.3.4");
    assert_eq!(manifest.protocol_version, 1);
    assert_eq!(manifest.description, "a plugin for the SDK's tests");
    let subs: Vec<(&str, i32, bool)> = manifest
        .subscriptions
        .iter()
        .map(|s| (s.phase.as_str(), s.priority, s.idempotent))
        .collect();
    assert_eq!(
        subs,
        [("pre_container", 10, false), ("post_container", -1, true)]
    );
    assert_eq!(manifest.permissions[0].name, "env:write");
    assert_eq!(
        Value::Object(struct_to_json(&manifest.config_schema.unwrap())),
        json!({"type": "object"})
    );
}

#[tokio::test]
async fn socket_is_private_to_the_owner() {
    let mut s = serve().await;
    // A successful call proves the server finished its setup.
    s.client.describe(authed(describe())).await.unwrap();
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let mut s = serve().await;
    let status = s
        .client
        .describe(with_token(describe(), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status
            .message()
            .starts_with("missing `authorization` metadata"),
        "{status:?}"
    );
}

#[tokio::test]
async fn wrong_token_is_unauthenticated_on_every_call() {
    let mut s = serve().await;
    let status = s
        .client
        .describe(with_token(describe(), Some("not-the-token")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().starts_with("wrong token"), "{status:?}");
    // Shutdown too: otherwise any local process could stop the plugin.
    let status = s
        .client
        .shutdown(with_token(v1::ShutdownRequest::default(), Some("nope")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(s.socket.exists(), "an unauthenticated Shutdown stopped it");
}

#[tokio::test]
async fn health_is_serving_without_a_token() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let s = serve().await;
    let mut health = HealthClient::new(s.channel.clone());
    for service in ["", "outboard.v1.PluginService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn the_plugin_controls_its_health_from_configure_on() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let mut s = serve().await;
    s.client
        .configure(authed(v1::ConfigureRequest {
            protocol_version: 1,
            instance_name: "fixture".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let handle = s.probe.health.lock().unwrap().clone().unwrap();
    let mut health = HealthClient::new(s.channel.clone());
    let check = |service: &str| {
        let mut request = Request::new(HealthCheckRequest {
            service: service.into(),
        });
        request.set_timeout(Duration::from_millis(300));
        request
    };
    let mut updates = health.watch(check("")).await.unwrap().into_inner();
    assert_eq!(
        updates.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    handle.set_serving(false);
    for service in ["", "outboard.v1.PluginService"] {
        let status = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(
            status.status,
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    assert_eq!(
        updates.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    // NOT_SERVING asks for a restart; calls are still served meanwhile.
    s.client
        .invoke(authed(invoke_request("pre_container", json!({}))))
        .await
        .unwrap();

    handle.set_serving(true);
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // Stalled: the check gets no answer before its deadline, and is answered
    // again once released.
    handle.set_stalled(true);
    let started = Instant::now();
    let status = health.check(check("")).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    handle.set_stalled(false);
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // Stopping reports NOT_SERVING through the same handle.
    shutdown(&mut s, Duration::from_secs(2)).await;
    stopped(s.task, Duration::from_secs(5)).await;
    assert!(!handle.is_serving());
}

#[tokio::test]
async fn reflection_lists_the_plugin_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = serve().await;
    let mut reflection = ServerReflectionClient::new(s.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"outboard.v1.PluginService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // The host serves HostService, on its own socket; a plugin must not
    // advertise it.
    assert!(!names.contains(&"outboard.v1.HostService"), "{names:?}");

    // The older v1alpha, which many grpcurl builds still ask first.
    use tonic_reflection::pb::v1alpha as alpha;
    let mut old = alpha::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
    let request = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let response = old
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected v1alpha answer: {response:?}")
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "outboard.v1.PluginService")
    );
}

#[tokio::test]
async fn invoke_returns_the_patch() {
    let mut s = serve().await;
    let context = json!({
        "command": ["make", "test"],
        "env": {"DROP_ME": "x", "KEEP": "y"},
        "metadata": {},
    });
    let response = s
        .client
        .invoke(authed(invoke_request("pre_container", context.clone())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.outcome, v1::Outcome::Continue as i32);
    assert_eq!(response.message, "fixture was here");
    let ops = patch::from_proto(&response.patch).unwrap();
    let paths: Vec<String> = ops.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/env/SEEN_BY",
            "/metadata/invocation_id",
            "/metadata/attempt",
            "/metadata/traceparent",
            "/metadata/had_deadline",
            "/metadata/config",
            "/env/DROP_ME",
        ]
    );
    let mut patched = context;
    patch::apply(&mut patched, &ops).unwrap();
    assert_eq!(
        patched,
        json!({
            "command": ["make", "test"],
            "env": {"KEEP": "y", "SEEN_BY": "fixture"},
            "metadata": {
                "invocation_id": "inv-0001",
                "attempt": 2,
                "traceparent": "00-abc-def-01",
                "had_deadline": false,
                "config": null,
            },
        })
    );
}

#[tokio::test]
async fn plugin_errors_keep_their_code_and_message() {
    let mut s = serve().await;
    let status = s
        .client
        .invoke(authed(invoke_request(
            "post_container",
            json!({"metadata": {"fail": true}}),
        )))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "invalid context: metadata.fail is set");
}

#[tokio::test]
async fn configure_passes_the_config_and_rejection_is_invalid_argument() {
    let mut s = serve().await;
    let config = |v: Value| v1::ConfigureRequest {
        config: Some(json_to_struct(v.as_object().unwrap())),
        granted_permissions: vec!["env:write".into()],
        protocol_version: 1,
        instance_name: "fixture-a".into(),
    };
    let status = s
        .client
        .configure(authed(config(json!({"mode": "loud"}))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid config: mode: \"loud\" is not one of quiet"
    );
    assert_eq!(*s.probe.config.lock().await, None);

    s.client
        .configure(authed(config(json!({"mode": "quiet", "n": 3}))))
        .await
        .unwrap();
    let response = s
        .client
        .invoke(authed(invoke_request("pre_container", json!({}))))
        .await
        .unwrap()
        .into_inner();
    let mut ctx = json!({});
    patch::apply(&mut ctx, &patch::from_proto(&response.patch).unwrap()).unwrap();
    assert_eq!(ctx["metadata"]["config"], json!({"mode": "quiet", "n": 3}));
}

#[tokio::test]
async fn grpc_timeout_is_answered_with_deadline_exceeded() {
    let mut s = serve().await;
    // tonic's Channel enforces grpc-timeout on the client side too (and
    // reports CANCELLED "Timeout expired" before any answer can arrive), so
    // a bare HTTP/2 connection is used to see what the server itself says.
    let stream = UnixStream::connect(&s.socket).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let bare = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let mut sender = sender.clone();
        async move { sender.send_request(request).await }
    });
    let mut client =
        PluginServiceClient::with_origin(bare, Uri::from_static("http://plugin.invalid"));

    let mut request = authed(invoke_request(
        "pre_container",
        json!({"metadata": {"sleep_ms": 60_000}}),
    ));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = client.invoke(request).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("fixture did not finish phase \"pre_container\" before the deadline"),
        "{status:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    // The plugin's future was dropped, not left running.
    let dropped = tokio::time::timeout(Duration::from_secs(1), s.dropped.recv())
        .await
        .expect("the invoke future was not dropped");
    assert_eq!(dropped.as_deref(), Some("pre_container"));
}

#[tokio::test]
async fn tonic_client_timeout_cancels_the_plugins_future() {
    let mut s = serve().await;
    let mut request = authed(invoke_request(
        "pre_container",
        json!({"metadata": {"sleep_ms": 60_000}}),
    ));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = s.client.invoke(request).await.unwrap_err();
    // What a tonic host sees: its own timer's CANCELLED, or the server's
    // DEADLINE_EXCEEDED if that arrives first.
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    let dropped = tokio::time::timeout(Duration::from_secs(1), s.dropped.recv())
        .await
        .expect("the invoke future was not dropped");
    assert_eq!(dropped.as_deref(), Some("pre_container"));
}

#[tokio::test]
async fn deadline_in_the_message_alone_is_honoured() {
    let mut s = serve().await;
    let mut message = invoke_request("post_container", json!({"metadata": {"sleep_ms": 60_000}}));
    message.deadline = Some((SystemTime::now() + Duration::from_millis(200)).into());
    let started = Instant::now();
    let status = s.client.invoke(authed(message)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let dropped = tokio::time::timeout(Duration::from_secs(1), s.dropped.recv())
        .await
        .expect("the invoke future was not dropped");
    assert_eq!(dropped.as_deref(), Some("post_container"));

    // A deadline in time is passed to the plugin and does not get in the way.
    let mut message = invoke_request("post_container", json!({}));
    message.deadline = Some((SystemTime::now() + Duration::from_secs(30)).into());
    let response = s.client.invoke(authed(message)).await.unwrap().into_inner();
    let ops = patch::from_proto(&response.patch).unwrap();
    let mut ctx = json!({});
    patch::apply(&mut ctx, &ops).unwrap();
    assert_eq!(ctx["metadata"]["had_deadline"], json!(true));
}

#[tokio::test]
async fn shutdown_answers_then_stops_and_removes_the_socket() {
    let mut s = serve().await;
    assert!(s.socket.exists());
    shutdown(&mut s, Duration::from_secs(2)).await;
    stopped(s.task, Duration::from_secs(5)).await;
    assert!(!s.socket.exists(), "socket file left behind");
    assert!(
        s.probe.shut_down.load(Ordering::SeqCst),
        "Plugin::shutdown not called"
    );
    // Nothing listens any more.
    assert!(UnixStream::connect(&s.socket).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish_within_the_grace() {
    let mut s = serve().await;
    let mut slow_client = s.client.clone();
    let slow = tokio::spawn(async move {
        slow_client
            .invoke(authed(invoke_request(
                "pre_container",
                json!({"metadata": {"sleep_ms": 400}}),
            )))
            .await
    });
    // The slow call must be in flight before the stop is asked for.
    invoke_started(&s).await;
    let asked = Instant::now();
    shutdown(&mut s, Duration::from_secs(5)).await;
    let answer = slow.await.unwrap().unwrap().into_inner();
    assert_eq!(answer.message, "fixture was here");
    stopped(s.task, Duration::from_secs(5)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "waited the whole grace: {:?}",
        asked.elapsed()
    );
    assert!(s.probe.shut_down.load(Ordering::SeqCst));
    assert!(!s.socket.exists());
}

#[tokio::test]
async fn shutdown_cancels_calls_still_running_after_the_grace() {
    let mut s = serve().await;
    let mut hung_client = s.client.clone();
    let hung = tokio::spawn(async move {
        hung_client
            .invoke(authed(invoke_request(
                "pre_container",
                json!({"metadata": {"sleep_ms": 60_000}}),
            )))
            .await
    });
    invoke_started(&s).await;
    let asked = Instant::now();
    shutdown(&mut s, Duration::from_millis(200)).await;
    stopped(s.task, Duration::from_secs(5)).await;
    let elapsed = asked.elapsed();
    // Calls get 3/4 of the grace, the rest is for cancelling and closing.
    assert!(
        elapsed >= Duration::from_millis(140) && elapsed < Duration::from_secs(2),
        "stopped after {elapsed:?}"
    );
    let status = hung.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("grace period ran out"),
        "{status:?}"
    );
    assert_eq!(s.dropped.recv().await.as_deref(), Some("pre_container"));
    assert!(s.probe.shut_down.load(Ordering::SeqCst));
    assert!(!s.socket.exists());
}

#[tokio::test]
async fn an_occupied_socket_path_is_an_error_naming_it() {
    let dir = tempfile::Builder::new()
        .prefix("ob-sdk-")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("p.sock");
    std::fs::write(&socket, b"").unwrap();
    let settings = Settings::new(&socket, TOKEN).handle_signals(false);
    let err = serve_with(Fixture(Arc::default()), settings)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("fixture: cannot bind socket {}", socket.display())),
        "{message}"
    );
    // Not ours, so not removed.
    assert!(socket.exists());
}

#[tokio::test]
async fn an_invalid_manifest_is_refused_before_binding() {
    struct Bad;
    impl Plugin for Bad {
        fn manifest(&self) -> Manifest {
            Manifest::new("Bad Name", "1.0.0")
        }
        async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
            Ok(Reply::ok())
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("ob-sdk-")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("p.sock");
    let err = serve_with(Bad, Settings::new(&socket, TOKEN).handle_signals(false))
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Manifest { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("Bad Name: the plugin's manifest is invalid: name: \"Bad Name\""),
        "{err}"
    );
    assert!(!socket.exists());
}
