//! The invoke fast path (PROTOCOL.md §18) over real Unix sockets: each test
//! serves a fixture plugin with `serve_with` and a fast-path socket in a
//! short temp dir under /tmp, and talks to it with raw frames built from
//! `outboard_proto::fastpath`, as a host in any language would.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply, ServeError, Settings};
use outboard_proto::fastpath::{self, HEADER_LEN, Header, Kind, MAX_PAYLOAD};
use outboard_proto::json::json_to_struct;
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Barrier, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request};

mod common;

const TOKEN: &str = "fast-token-0123456789";

/// How many calls the multiplexing test runs at once.
const CONCURRENT: usize = 32;

/// What the fixture plugin lets a test observe and steer.
struct Probe {
    /// Receives the invocation id of every invoke as it starts.
    started: mpsc::UnboundedSender<String>,
    /// Receives the invocation id of every invoke future dropped unfinished.
    dropped: mpsc::UnboundedSender<String>,
    /// Calls with `/metadata/barrier` wait here: none finishes before
    /// [`CONCURRENT`] of them run at once.
    barrier: Barrier,
    /// Calls with `/metadata/gate` wait for a permit.
    gate: Semaphore,
}

/// Reports its invocation id to the probe when dropped unfinished.
struct DropGuard {
    id: String,
    probe: Arc<Probe>,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.probe.dropped.send(self.id.clone());
        }
    }
}

struct Fixture(Arc<Probe>);

impl Plugin for Fixture {
    fn manifest(&self) -> Manifest {
        Manifest::new("fasty", "1.0.0")
            .describe("a plugin for the fast path's tests")
            .subscribe("pre_container", 0)
    }

    async fn invoke(&self, inv: Invocation) -> Result<Reply, PluginError> {
        let mut guard = DropGuard {
            id: inv.invocation_id.clone(),
            probe: self.0.clone(),
            finished: false,
        };
        let _ = self.0.started.send(inv.invocation_id.clone());
        if inv.get("/metadata/barrier").is_some() {
            self.0.barrier.wait().await;
        }
        if let Some(ms) = inv.get("/metadata/sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if inv.get("/metadata/panic").is_some() {
            guard.finished = true;
            panic!("asked to panic");
        }
        if inv.get("/metadata/gate").is_some() {
            self.0.gate.acquire().await.unwrap().forget();
        }
        guard.finished = true;
        if inv.get("/metadata/fail").is_some() {
            return Err(PluginError::invalid_context("metadata.fail is set"));
        }
        let pad = inv
            .get("/metadata/answer_kib")
            .and_then(Value::as_u64)
            .map(|kib| "x".repeat(kib as usize * 1024));
        let reply = match pad {
            Some(pad) => Reply::ok().set("/metadata/pad", pad),
            None => Reply::ok(),
        };
        Ok(reply
            .set("/metadata/echo", inv.invocation_id.clone())
            .set("/metadata/attempt", inv.attempt)
            .set("/metadata/had_deadline", inv.deadline.is_some())
            .set(
                "/metadata/traceparent",
                inv.trace_context
                    .get("traceparent")
                    .cloned()
                    .unwrap_or_default(),
            )
            .remove("/env/DROP_ME")
            .with_message("fasty was here"))
    }
}

/// A fixture plugin served in its own temp dir.
struct Served {
    /// Holds the directory until the test ends.
    dir: tempfile::TempDir,
    grpc_socket: PathBuf,
    fast_socket: PathBuf,
    task: JoinHandle<Result<(), ServeError>>,
    client: PluginServiceClient<Channel>,
    started: mpsc::UnboundedReceiver<String>,
    dropped: mpsc::UnboundedReceiver<String>,
    probe: Arc<Probe>,
}

/// Serves the fixture with `settings` (given the socket paths) applied.
async fn serve_as(configure: impl FnOnce(Settings, &Path) -> Settings) -> Served {
    // Short on purpose: socket paths are limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("ob-fp-")
        .tempdir_in("/tmp")
        .unwrap();
    let grpc_socket = dir.path().join("p.sock");
    let fast_socket = dir.path().join("fast.sock");
    let (started_tx, started) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        started: started_tx,
        dropped: dropped_tx,
        barrier: Barrier::new(CONCURRENT),
        gate: Semaphore::new(0),
    });
    let settings = configure(
        Settings::new(&grpc_socket, TOKEN).handle_signals(false),
        &fast_socket,
    );
    let task = tokio::spawn(outboard_plugin::serve_with(
        Fixture(probe.clone()),
        settings,
    ));
    let channel = common::connect(&grpc_socket).await;
    Served {
        dir,
        grpc_socket,
        fast_socket,
        task,
        client: PluginServiceClient::new(channel),
        started,
        dropped,
        probe,
    }
}

/// Serves the fixture with the fast path offered.
async fn serve() -> Served {
    serve_as(|settings, fast| settings.with_fastpath_socket(fast)).await
}

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(30);

/// A host's end of a fast-path connection, speaking raw frames.
struct Raw {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
}

impl Raw {
    /// Connects, retrying while the server is still binding.
    async fn connect(socket: &Path) -> Raw {
        let stream = tokio::time::timeout(PATIENCE, async {
            loop {
                match UnixStream::connect(socket).await {
                    Ok(stream) => return stream,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("cannot connect to {}", socket.display()));
        let (read, write) = stream.into_split();
        Raw { read, write }
    }

    /// Connects and says HELLO with the launch token.
    async fn open(socket: &Path) -> Raw {
        let mut raw = Raw::connect(socket).await;
        raw.send(&hello(TOKEN)).await;
        let (header, payload) = raw.recv().await.expect("an answer to HELLO");
        assert_eq!((header.kind, header.id), (Kind::Hello, 0), "{header:?}");
        let answer = v1::FastpathHello::decode(&payload[..]).unwrap();
        assert_eq!(
            answer,
            v1::FastpathHello {
                token: String::new(),
                version: fastpath::VERSION
            }
        );
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the plugin closed the connection.
    async fn recv(&mut self) -> Option<(Header, Vec<u8>)> {
        tokio::time::timeout(PATIENCE, async {
            let mut head = [0u8; HEADER_LEN];
            match self.read.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
            let header = Header::decode(&head);
            let mut payload = vec![0; header.len as usize];
            self.read.read_exact(&mut payload).await.unwrap();
            Some((header, payload))
        })
        .await
        .expect("no frame and no close")
    }

    /// The next frame, which must be an ERROR for `id`: its code and message.
    async fn error_for(&mut self, id: u64) -> (Code, String) {
        let (header, payload) = self.recv().await.expect("an ERROR frame");
        assert_eq!((header.kind, header.id), (Kind::Error, id), "{header:?}");
        let error = v1::FastpathError::decode(&payload[..]).unwrap();
        (Code::from_i32(error.code), error.message)
    }

    /// The next frame, which must be a RESULT for `id`.
    async fn result_for(&mut self, id: u64) -> v1::InvokeResponse {
        let (header, payload) = self.recv().await.expect("a RESULT frame");
        assert_eq!((header.kind, header.id), (Kind::Result, id), "{header:?}");
        v1::InvokeResponse::decode(&payload[..]).unwrap()
    }

    /// Sends a quick call with `id` and checks that it is answered: the
    /// connection still works.
    async fn still_answers(&mut self, id: u64) {
        self.send(&invoke(
            id,
            &request(&format!("alive-{id}"), json!({})),
            None,
        ))
        .await;
        let response = self.result_for(id).await;
        assert_eq!(response.message, "fasty was here");
    }
}

fn hello(token: &str) -> Vec<u8> {
    fastpath::frame(
        Kind::Hello,
        0,
        &v1::FastpathHello {
            token: token.into(),
            version: fastpath::VERSION,
        },
    )
}

/// A frame with any payload, valid or not, of any length.
fn raw_frame(kind: Kind, id: u64, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        len: u32::try_from(payload.len()).unwrap(),
        kind,
        id,
    };
    [&header.encode()[..], payload].concat()
}

fn request(invocation_id: &str, metadata: Value) -> v1::InvokeRequest {
    let context = json!({
        "command": ["make"],
        "env": {"DROP_ME": "1", "KEEP": "2"},
        "metadata": metadata,
    });
    v1::InvokeRequest {
        phase: "pre_container".into(),
        invocation_id: invocation_id.into(),
        attempt: 3,
        deadline: None,
        trace_context: [("traceparent".to_owned(), "00-abc-def-01".to_owned())].into(),
        context: Some(json_to_struct(context.as_object().unwrap())),
    }
}

fn invoke(id: u64, request: &v1::InvokeRequest, timeout: Option<Duration>) -> Vec<u8> {
    fastpath::frame(
        Kind::Invoke,
        id,
        &v1::FastpathInvoke {
            request: Some(request.clone()),
            timeout: timeout.map(|t| t.try_into().unwrap()),
        },
    )
}

fn authed<T>(message: T) -> Request<T> {
    common::with_token(message, Some(TOKEN))
}

async fn features(s: &mut Served) -> Vec<String> {
    s.client
        .describe(authed(v1::DescribeRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .manifest
        .unwrap()
        .features
}

async fn shutdown(s: &mut Served, grace: Duration) {
    common::shutdown(&mut s.client, TOKEN, grace).await;
}

async fn stopped(task: JoinHandle<Result<(), ServeError>>) {
    common::stopped(task, PATIENCE).await;
}

/// Waits until the call with `id` has reached the plugin.
async fn started(s: &mut Served, id: &str) {
    let got = tokio::time::timeout(PATIENCE, s.started.recv())
        .await
        .expect("the call never reached the plugin");
    assert_eq!(got.as_deref(), Some(id));
}

#[tokio::test]
async fn the_socket_is_private_listed_as_a_feature_and_removed_at_exit() {
    let mut s = serve().await;
    let _raw = Raw::open(&s.fast_socket).await;
    let mode = std::fs::metadata(&s.fast_socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(features(&mut s).await, [fastpath::FEATURE]);
    shutdown(&mut s, Duration::from_secs(2)).await;
    stopped(s.task).await;
    assert!(!s.fast_socket.exists(), "fast-path socket left behind");
    assert!(!s.grpc_socket.exists());
    assert!(UnixStream::connect(&s.fast_socket).await.is_err());
}

#[tokio::test]
async fn without_the_variable_or_with_the_knob_off_nothing_is_bound_or_listed() {
    let mut s = serve_as(|settings, _| settings).await;
    assert!(features(&mut s).await.is_empty());
    let names: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["p.sock"]);

    let mut s =
        serve_as(|settings, fast| settings.with_fastpath_socket(fast).fastpath(false)).await;
    assert!(features(&mut s).await.is_empty());
    assert!(!s.fast_socket.exists());
}

#[tokio::test]
async fn hello_with_the_token_opens_and_anything_else_is_refused() {
    let s = serve().await;
    // The right token: HELLO back (checked by `open`), then calls work.
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.still_answers(1).await;

    for (first, says) in [
        (hello("not-the-token"), "wrong token in the HELLO"),
        (hello(""), "wrong token in the HELLO"),
        (
            invoke(1, &request("early", json!({})), None),
            "the first frame must be a HELLO carrying OUTBOARD_TOKEN, not INVOKE",
        ),
        (
            raw_frame(Kind::Hello, 0, &[0xFF, 0xFF, 0xFF]),
            "malformed frame: the HELLO does not decode",
        ),
        (
            // Refused on its header: the payload is never awaited.
            Header {
                len: MAX_PAYLOAD,
                kind: Kind::Hello,
                id: 0,
            }
            .encode()
            .to_vec(),
            "a HELLO of 4194304 bytes is over the 4096-byte limit for a HELLO",
        ),
    ] {
        let mut raw = Raw::connect(&s.fast_socket).await;
        raw.send(&first).await;
        let (code, message) = raw.error_for(0).await;
        assert_eq!(code, Code::Unauthenticated, "{message}");
        assert!(message.starts_with(says), "{message}");
        assert!(raw.recv().await.is_none(), "the connection stays open");
    }
}

#[tokio::test]
async fn a_call_is_answered_as_grpc_answers_it() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    let mut in_time = request("inv-same", json!({"k": [1, 2]}));
    in_time.deadline = Some((SystemTime::now() + Duration::from_secs(600)).into());
    let failing = request("inv-fail", json!({"fail": true}));

    let grpc = s
        .client
        .invoke(authed(in_time.clone()))
        .await
        .unwrap()
        .into_inner();
    raw.send(&invoke(41, &in_time, Some(Duration::from_secs(60))))
        .await;
    let fast = raw.result_for(41).await;
    assert_eq!(fast, grpc);
    assert_eq!(fast.message, "fasty was here");
    assert_eq!(fast.patch.len(), 5);

    let status = s.client.invoke(authed(failing.clone())).await.unwrap_err();
    raw.send(&invoke(42, &failing, None)).await;
    let (code, message) = raw.error_for(42).await;
    assert_eq!((code, message.as_str()), (status.code(), status.message()));
    assert_eq!(message, "invalid context: metadata.fail is set");

    // A request gRPC refuses is refused the same way.
    let mut bad_deadline = request("inv-bad", json!({}));
    bad_deadline.deadline = Some(prost_types::Timestamp {
        seconds: i64::MIN,
        nanos: 0,
    });
    let status = s
        .client
        .invoke(authed(bad_deadline.clone()))
        .await
        .unwrap_err();
    raw.send(&invoke(43, &bad_deadline, None)).await;
    let (code, message) = raw.error_for(43).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!((code, message.as_str()), (status.code(), status.message()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_concurrently_and_each_is_answered_once() {
    let s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    // Every call waits at a barrier for all the others, so none can be
    // answered unless all run at once; then each sleeps by its own
    // amount, the first sent the longest, so answers come out of order.
    let mut burst = Vec::new();
    for id in 1..=CONCURRENT as u64 {
        let sleep_ms = (CONCURRENT as u64 - id) * 3;
        let metadata = json!({"barrier": true, "sleep_ms": sleep_ms});
        burst.extend(invoke(id, &request(&format!("call-{id}"), metadata), None));
    }
    // All of them in one write, as a host's writer batches them.
    raw.send(&burst).await;
    let mut answered = Vec::new();
    for _ in 0..CONCURRENT {
        let (header, payload) = raw.recv().await.expect("an answer");
        assert_eq!(header.kind, Kind::Result, "{header:?}");
        let response = v1::InvokeResponse::decode(&payload[..]).unwrap();
        let echo = response
            .patch
            .iter()
            .find(|op| op.path == "/metadata/echo")
            .and_then(|op| op.value.clone())
            .map(|v| outboard_proto::json::value_to_json(&v));
        assert_eq!(
            echo,
            Some(json!(format!("call-{}", header.id))),
            "answer for the wrong call"
        );
        answered.push(header.id);
    }
    let mut sorted = answered.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=CONCURRENT as u64).collect::<Vec<_>>());
    // Nothing more comes: each call was answered exactly once.
    raw.still_answers(100).await;
    drop(s.started);
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_is_deadline_exceeded_and_its_work_dropped() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    let long = request("slow", json!({"sleep_ms": 60_000}));

    // The frame's timeout.
    raw.send(&invoke(5, &long, Some(Duration::from_millis(200))))
        .await;
    let (code, message) = raw.error_for(5).await;
    assert_eq!(code, Code::DeadlineExceeded, "{message}");
    assert!(
        message.starts_with("fasty did not finish phase \"pre_container\" before the deadline"),
        "{message}"
    );
    assert_eq!(s.dropped.recv().await.as_deref(), Some("slow"));

    // The request's own deadline, earlier than the frame's timeout.
    let mut with_deadline = long.clone();
    with_deadline.deadline = Some((SystemTime::now() + Duration::from_millis(300)).into());
    raw.send(&invoke(6, &with_deadline, Some(Duration::from_secs(3600))))
        .await;
    let (code, _) = raw.error_for(6).await;
    assert_eq!(code, Code::DeadlineExceeded);
    assert_eq!(s.dropped.recv().await.as_deref(), Some("slow"));

    // A negative timeout has already run out.
    let negative = prost_types::Duration {
        seconds: -1,
        nanos: 0,
    };
    let frame = fastpath::frame(
        Kind::Invoke,
        7,
        &v1::FastpathInvoke {
            request: Some(long),
            timeout: Some(negative),
        },
    );
    raw.send(&frame).await;
    let (code, _) = raw.error_for(7).await;
    assert_eq!(code, Code::DeadlineExceeded);
}

#[tokio::test]
async fn cancel_drops_the_work_and_nothing_is_answered_for_it() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.send(&invoke(7, &request("hung", json!({"gate": true})), None))
        .await;
    started(&mut s, "hung").await;
    raw.send(&fastpath::cancel_frame(7)).await;
    let dropped = tokio::time::timeout(PATIENCE, s.dropped.recv())
        .await
        .expect("the cancelled call's future was not dropped");
    assert_eq!(dropped.as_deref(), Some("hung"));
    // A cancel for an unknown id is ignored, and a call with the
    // cancelled id is a new call. The first frame back is its answer:
    // nothing came for the cancelled one.
    raw.send(&fastpath::cancel_frame(999)).await;
    raw.still_answers(7).await;
    // Released now, a cancelled call could not answer any more.
    s.probe.gate.add_permits(1);
    raw.still_answers(8).await;
}

#[tokio::test]
async fn bad_frames_are_answered_with_errors_and_the_connection_goes_on() {
    let s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;

    // A payload that is not a FastpathInvoke.
    raw.send(&raw_frame(Kind::Invoke, 11, &[0xFF; 4])).await;
    let (code, message) = raw.error_for(11).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.starts_with("malformed frame: the INVOKE payload is not a FastpathInvoke"),
        "{message}"
    );
    raw.still_answers(12).await;

    // An INVOKE without its request.
    raw.send(&fastpath::frame(
        Kind::Invoke,
        13,
        &v1::FastpathInvoke::default(),
    ))
    .await;
    let (code, message) = raw.error_for(13).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "malformed frame: the FastpathInvoke has no request"
    );

    // A kind this version does not define, with a payload to skip.
    raw.send(&raw_frame(Kind::Unknown(9), 14, &[1, 2])).await;
    let (code, message) = raw.error_for(14).await;
    assert_eq!(code, Code::Unimplemented);
    assert!(message.starts_with("unknown frame kind 9"), "{message}");
    raw.still_answers(15).await;

    // A kind that goes the other way.
    raw.send(&fastpath::error_frame(16, 2, "from the host?"))
        .await;
    let (code, message) = raw.error_for(16).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(message, "ERROR frames go from the plugin to the host");

    // A frame over the limit: its payload is read and dropped.
    let huge = vec![0x5A; MAX_PAYLOAD as usize + 1];
    raw.send(&raw_frame(Kind::Invoke, 17, &huge)).await;
    let (code, message) = raw.error_for(17).await;
    assert_eq!(code, Code::ResourceExhausted);
    assert_eq!(
        message,
        "frame of 4194305 bytes is over the 4194304-byte limit"
    );
    raw.still_answers(18).await;

    // A frame exactly at the limit is read (and here, not a valid call).
    let at_limit = vec![0xFF; MAX_PAYLOAD as usize];
    raw.send(&raw_frame(Kind::Invoke, 19, &at_limit)).await;
    let (code, _) = raw.error_for(19).await;
    assert_eq!(code, Code::InvalidArgument);
    raw.still_answers(20).await;

    // An id already in flight.
    raw.send(&invoke(21, &request("held", json!({"gate": true})), None))
        .await;
    raw.send(&invoke(21, &request("again", json!({})), None))
        .await;
    let (code, message) = raw.error_for(21).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "call id 21 is already in flight on this connection"
    );
    s.probe.gate.add_permits(1);
    let held = raw.result_for(21).await;
    assert_eq!(held.message, "fasty was here");

    // A call whose plugin code panics is answered, and the plugin goes on.
    raw.send(&invoke(22, &request("boom", json!({"panic": true})), None))
        .await;
    let (code, message) = raw.error_for(22).await;
    assert_eq!(code, Code::Internal);
    assert_eq!(
        message,
        "fasty failed the call without an answer: the plugin panicked (its stderr says where)"
    );
    raw.still_answers(23).await;

    // Call id 0: refused, and the connection closed.
    raw.send(&invoke(0, &request("zero", json!({})), None))
        .await;
    let (code, message) = raw.error_for(0).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("INVOKE with call id 0"), "{message}");
    assert!(raw.recv().await.is_none(), "still open after call id 0");
    // The plugin itself goes on.
    let mut again = Raw::open(&s.fast_socket).await;
    again.still_answers(1).await;
}

#[tokio::test]
async fn a_stop_lets_calls_finish_refuses_new_ones_then_closes() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.send(&invoke(1, &request("running", json!({"gate": true})), None))
        .await;
    started(&mut s, "running").await;
    shutdown(&mut s, Duration::from_secs(60)).await;

    raw.send(&invoke(2, &request("late", json!({})), None))
        .await;
    let (code, message) = raw.error_for(2).await;
    assert_eq!(code, Code::Unavailable);
    assert_eq!(message, "fasty is shutting down and takes no new calls");
    // No new connections either.
    tokio::time::timeout(PATIENCE, async {
        while UnixStream::connect(&s.fast_socket).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("still accepting after the stop");

    s.probe.gate.add_permits(1);
    let response = raw.result_for(1).await;
    assert_eq!(response.message, "fasty was here");
    assert!(raw.recv().await.is_none(), "open after its last call");
    stopped(s.task).await;
    assert!(!s.fast_socket.exists());
}

#[tokio::test(start_paused = true)]
async fn calls_still_running_when_the_grace_ends_are_unavailable() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.send(&invoke(1, &request("stuck", json!({"gate": true})), None))
        .await;
    started(&mut s, "stuck").await;
    shutdown(&mut s, Duration::from_millis(800)).await;
    let (code, message) = raw.error_for(1).await;
    assert_eq!(code, Code::Unavailable);
    assert_eq!(
        message,
        "fasty is shutting down and cancelled the call for phase \"pre_container\" when the \
         grace period ran out"
    );
    assert_eq!(s.dropped.recv().await.as_deref(), Some("stuck"));
    assert!(raw.recv().await.is_none());
    stopped(s.task).await;
    assert!(!s.fast_socket.exists());
}

#[tokio::test]
async fn the_host_going_away_cancels_its_calls() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.send(&invoke(3, &request("orphan", json!({"gate": true})), None))
        .await;
    started(&mut s, "orphan").await;
    drop(raw);
    let dropped = tokio::time::timeout(PATIENCE, s.dropped.recv())
        .await
        .expect("the orphaned call kept running");
    assert_eq!(dropped.as_deref(), Some("orphan"));
    let mut again = Raw::open(&s.fast_socket).await;
    again.still_answers(3).await;
}

/// How many calls [`big_answers_unread`] sends.
const BIG_CALLS: u64 = 40;

/// Sends [`BIG_CALLS`] calls answered with 256 KiB each (10 MiB, more than
/// the plugin queues) and reads none of the answers; returns once every
/// call has started.
async fn big_answers_unread(s: &mut Served, raw: &mut Raw) {
    let mut burst = Vec::new();
    for id in 1..=BIG_CALLS {
        let metadata = json!({"answer_kib": 256});
        burst.extend(invoke(id, &request(&format!("big-{id}"), metadata), None));
    }
    raw.send(&burst).await;
    for _ in 1..=BIG_CALLS {
        tokio::time::timeout(PATIENCE, s.started.recv())
            .await
            .expect("a call did not start");
    }
}

#[tokio::test(start_paused = true)]
async fn a_host_that_does_not_read_its_answers_stops_the_plugin_reading() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    big_answers_unread(&mut s, &mut raw).await;
    raw.send(&invoke(BIG_CALLS + 1, &request("waits", json!({})), None))
        .await;
    // With the clock paused this returns only once every task is idle:
    // the plugin has done all it would do without the host reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        s.started.try_recv().is_err(),
        "the plugin took a new call while its answers were not read"
    );
    let mut answered = Vec::new();
    for _ in 0..=BIG_CALLS {
        let (header, _) = raw.recv().await.expect("an answer");
        assert_eq!(header.kind, Kind::Result, "{header:?}");
        answered.push(header.id);
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=BIG_CALLS + 1).collect::<Vec<_>>());
    assert_eq!(s.started.recv().await.as_deref(), Some("waits"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_does_not_wait_past_the_grace_for_a_host_that_does_not_read() {
    let mut s = serve().await;
    let mut raw = Raw::open(&s.fast_socket).await;
    big_answers_unread(&mut s, &mut raw).await;
    shutdown(&mut s, Duration::from_secs(1)).await;
    stopped(s.task).await;
    assert!(!s.fast_socket.exists());
    // Nothing of the connection outlives the server: what was written can
    // be read, and then the stream ends.
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, raw.read.read_to_end(&mut rest))
        .await
        .expect("the connection outlived the server")
        .unwrap();
    assert!(
        rest.len() < (BIG_CALLS as usize) * 256 * 1024,
        "all was written"
    );
}

#[tokio::test]
async fn a_frame_refused_for_call_id_0_closes_the_connection() {
    let s = serve().await;
    for (frame, code, says) in [
        (
            hello(TOKEN),
            Code::InvalidArgument,
            "HELLO is only the connection's first frame",
        ),
        (
            raw_frame(Kind::Unknown(200), 0, b""),
            Code::Unimplemented,
            "unknown frame kind 200",
        ),
        (
            fastpath::error_frame(0, 13, "from the host?"),
            Code::InvalidArgument,
            "ERROR frames go from the plugin to the host",
        ),
    ] {
        let mut raw = Raw::open(&s.fast_socket).await;
        raw.send(&frame).await;
        let (got, message) = raw.error_for(0).await;
        assert_eq!(got, code, "{message}");
        assert!(message.starts_with(says), "{message}");
        assert!(raw.recv().await.is_none(), "still open after {says:?}");
    }
    // A CANCEL for id 0 names no call: ignored, the connection goes on.
    let mut raw = Raw::open(&s.fast_socket).await;
    raw.send(&fastpath::cancel_frame(0)).await;
    raw.still_answers(1).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_says_nothing_is_refused_after_10_s() {
    let s = serve().await;
    let mut raw = Raw::connect(&s.fast_socket).await;
    // Half a HELLO: the header promises more than ever comes.
    raw.send(&hello(TOKEN)[..HEADER_LEN + 2]).await;
    let (code, message) = raw.error_for(0).await;
    assert_eq!(code, Code::Unauthenticated);
    assert_eq!(message, "no HELLO within 10 s");
    assert!(raw.recv().await.is_none());
}

#[tokio::test]
async fn an_occupied_fast_path_socket_is_an_error_naming_it() {
    let dir = tempfile::Builder::new()
        .prefix("ob-fp-")
        .tempdir_in("/tmp")
        .unwrap();
    let grpc = dir.path().join("p.sock");
    let fast = dir.path().join("fast.sock");
    std::fs::write(&fast, b"").unwrap();
    let (started, _) = mpsc::unbounded_channel();
    let (dropped, _) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        started,
        dropped,
        barrier: Barrier::new(1),
        gate: Semaphore::new(0),
    });
    let settings = Settings::new(&grpc, TOKEN)
        .handle_signals(false)
        .with_fastpath_socket(&fast);
    let err = outboard_plugin::serve_with(Fixture(probe), settings)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("fasty: cannot bind socket {}", fast.display())),
        "{err}"
    );
    assert!(!grpc.exists(), "the gRPC socket was left behind");
    assert!(fast.exists(), "not ours, so not removed");
}
