//! The client against a raw-frame server in the test, over a real Unix
//! socket: every frame the server writes is built by hand.

use std::time::Duration;

use outboard_proto::fastpath::{self as wire, Kind, MAX_PAYLOAD};
use outboard_proto::v1;
use prost::Message;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

use super::conn::{Frame, read_frame};
use super::*;

const TOKEN: &str = "s3cret";
const WAIT: Duration = Duration::from_secs(10);

/// A private directory with a listening `fast.sock`, and the check the
/// host would make of it.
struct Server {
    _dir: tempfile::TempDir,
    listener: UnixListener,
    check: PeerCheck,
}

/// A private directory, as a runtime directory is.
fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("fp-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

fn server() -> Server {
    let dir = private_dir();
    let socket = socket_in(dir.path());
    let listener = UnixListener::bind(&socket).expect("bind");
    let check = PeerCheck::new(&socket);
    Server {
        _dir: dir,
        listener,
        check,
    }
}

async fn next(stream: &mut UnixStream) -> Frame {
    read_frame(stream)
        .await
        .expect("read")
        .expect("a frame, not EOF")
}

/// Accepts the host's connection and answers its HELLO.
async fn accept(listener: &UnixListener) -> UnixStream {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let hello = next(&mut stream).await;
    assert_eq!((hello.header.kind, hello.header.id), (Kind::Hello, 0));
    let hello = v1::FastpathHello::decode(hello.payload.expect("small").as_slice()).expect("hello");
    assert_eq!(
        (hello.token.as_str(), hello.version),
        (TOKEN, wire::VERSION)
    );
    let answer = v1::FastpathHello {
        token: String::new(),
        version: wire::VERSION,
    };
    stream
        .write_all(&wire::frame(Kind::Hello, 0, &answer))
        .await
        .expect("write");
    stream
}

/// A connected client and the server's end.
async fn connected() -> (Server, FastPath, UnixStream) {
    let server = server();
    let (client, stream) = tokio::join!(
        FastPath::connect(&server.check, TOKEN, WAIT),
        accept(&server.listener)
    );
    (server, client.expect("connected"), stream)
}

fn request(phase: &str) -> v1::InvokeRequest {
    v1::InvokeRequest {
        phase: phase.into(),
        invocation_id: "inv".into(),
        attempt: 1,
        ..Default::default()
    }
}

fn context() -> Vec<u8> {
    let serde_json::Value::Object(map) = json!({"env": {"A": "1"}, "n": 3}) else {
        unreachable!()
    };
    struct_bytes(&map)
}

/// One call of phase `phase` with [`context`].
async fn call(client: &FastPath, phase: &str) -> Result<v1::InvokeResponse, Failure> {
    client.invoke(&request(phase), &context(), WAIT).await
}

/// The INVOKE the server reads next: its id and request.
async fn invoked(stream: &mut UnixStream) -> (u64, v1::InvokeRequest) {
    let frame = next(stream).await;
    assert_eq!(frame.header.kind, Kind::Invoke);
    let invoke =
        v1::FastpathInvoke::decode(frame.payload.expect("small").as_slice()).expect("invoke");
    (frame.header.id, invoke.request.expect("a request"))
}

fn result(id: u64, message: &str) -> Vec<u8> {
    let response = v1::InvokeResponse {
        outcome: v1::Outcome::Continue as i32,
        patch: Vec::new(),
        message: message.into(),
    };
    wire::frame(Kind::Result, id, &response)
}

#[tokio::test]
async fn a_call_carries_the_whole_request_and_gets_its_result() {
    let (_server, client, mut stream) = connected().await;
    let plugin = async {
        let (id, request) = invoked(&mut stream).await;
        assert_ne!(id, 0);
        let context = request.context.expect("the spliced context");
        assert_eq!(
            serde_json::Value::Object(outboard_proto::json::struct_to_json(&context)),
            json!({"env": {"A": "1"}, "n": 3})
        );
        stream
            .write_all(&result(id, &request.phase))
            .await
            .expect("write");
    };
    let (answer, ()) = tokio::join!(call(&client, "pre_container"), plugin);
    assert_eq!(answer.expect("answered").message, "pre_container");
}

#[tokio::test]
async fn answers_in_any_order_reach_their_own_calls() {
    let (_server, client, mut stream) = connected().await;
    let phases: Vec<String> = (0..16).map(|i| format!("p{i}")).collect();
    let plugin = async {
        let mut seen = Vec::new();
        for _ in 0..phases.len() {
            seen.push(invoked(&mut stream).await);
        }
        // Answered last first, in one write.
        let mut bytes = Vec::new();
        for (id, request) in seen.iter().rev() {
            bytes.extend(result(*id, &request.phase));
        }
        stream.write_all(&bytes).await.expect("write");
    };
    let calls = phases.iter().map(|phase| call(&client, phase));
    let (answers, ()) = tokio::join!(futures_util::future::join_all(calls), plugin);
    let messages: Vec<String> = answers
        .into_iter()
        .map(|a| a.expect("answered").message)
        .collect();
    assert_eq!(messages, phases);
}

#[tokio::test]
async fn a_call_given_up_sends_cancel_and_its_late_answer_is_ignored() {
    let (_server, client, mut stream) = connected().await;
    let gave_up = tokio::time::timeout(Duration::from_millis(50), call(&client, "slow"));
    let plugin = async {
        let (id, _) = invoked(&mut stream).await;
        let cancel = next(&mut stream).await;
        assert_eq!((cancel.header.kind, cancel.header.id), (Kind::Cancel, id));
        assert_eq!(cancel.payload.expect("small"), Vec::<u8>::new());
        // Crosses the CANCEL: ignored.
        stream.write_all(&result(id, "late")).await.expect("write");
    };
    let (gave_up, ()) = tokio::join!(gave_up, plugin);
    assert!(gave_up.is_err(), "timed out");
    let plugin = async {
        let (id, _) = invoked(&mut stream).await;
        stream.write_all(&result(id, "next")).await.expect("write");
    };
    let (answer, ()) = tokio::join!(call(&client, "next"), plugin);
    assert_eq!(answer.expect("answered").message, "next");
}

/// Sends one call; the plugin answers it with `answer(id)`.
async fn answered_with(
    client: &FastPath,
    stream: &mut UnixStream,
    answer: impl FnOnce(u64) -> Vec<u8>,
) -> Result<v1::InvokeResponse, Failure> {
    let plugin = async {
        let (id, _) = invoked(stream).await;
        stream.write_all(&answer(id)).await.expect("write");
    };
    let (answer, ()) = tokio::join!(call(client, "p"), plugin);
    answer
}

#[tokio::test]
async fn an_error_frame_is_the_status_the_grpc_call_would_fail_with() {
    let (_server, client, mut stream) = connected().await;
    let failed = answered_with(&client, &mut stream, |id| {
        wire::error_frame(id, tonic::Code::FailedPrecondition as i32, "no such volume")
    })
    .await;
    let Err(Failure::Status(status)) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::FailedPrecondition, "no such volume")
    );
    // Answered by the plugin, not raised by a transport.
    assert!(std::error::Error::source(&status).is_none());
}

/// How the plugin answers a call, given its id.
type Answer<'a> = Box<dyn FnOnce(u64) -> Vec<u8> + 'a>;

#[tokio::test]
async fn malformed_answers_fail_their_call_naming_the_fast_path_and_the_connection_goes_on() {
    let (_server, client, mut stream) = connected().await;
    let header = |kind: Kind, id: u64, len: u32| wire::Header { len, kind, id }.encode().to_vec();
    let over = MAX_PAYLOAD + 1;
    let cases: Vec<(Answer, &str)> = vec![
        (
            Box::new(|id| [header(Kind::Result, id, 3), vec![0xff, 0xff, 0xff]].concat()),
            "a RESULT that does not decode",
        ),
        (
            Box::new(|id| [header(Kind::Error, id, 2), vec![0x0a, 0x05]].concat()),
            "an ERROR that does not decode",
        ),
        (
            Box::new(move |id| [header(Kind::Result, id, over), vec![0; over as usize]].concat()),
            "a frame of 4194305 bytes, over the 4194304-byte limit,",
        ),
        (
            Box::new(|id| header(Kind::Unknown(9), id, 0)),
            "a frame of kind 9",
        ),
        (
            Box::new(|id| header(Kind::Invoke, id, 0)),
            "a frame of kind 2",
        ),
    ];
    for (answer, what) in cases {
        let failed = answered_with(&client, &mut stream, answer).await;
        let Err(Failure::Invalid(why)) = failed else {
            panic!("{what}: {failed:?}")
        };
        assert!(why.starts_with(what), "{why}");
        assert!(
            why.ends_with(" on its fast path") || why.contains("on its fast path"),
            "{why}"
        );
    }
    let fine = answered_with(&client, &mut stream, |id| result(id, "fine")).await;
    assert_eq!(fine.expect("answered").message, "fine");
    assert!(!client.is_closed());
}

#[tokio::test]
async fn frames_for_unknown_ids_are_ignored() {
    let (_server, client, mut stream) = connected().await;
    let answer = answered_with(&client, &mut stream, |id| {
        [result(id + 1000, "stray"), result(id, "mine")].concat()
    })
    .await;
    assert_eq!(answer.expect("answered").message, "mine");
}

#[tokio::test]
async fn a_closed_connection_fails_the_calls_in_flight_and_every_call_after() {
    let (_server, client, mut stream) = connected().await;
    let plugin = async {
        let _ = invoked(&mut stream).await;
        drop(stream);
    };
    let (failed, ()) = tokio::join!(call(&client, "p"), plugin);
    let Err(Failure::Closed(why)) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(why, "end of stream");
    assert_eq!(client.closed().await, "end of stream");
    assert!(client.is_closed());
    let after = call(&client, "p").await;
    assert!(
        matches!(&after, Err(Failure::Closed(why)) if why == "end of stream"),
        "{after:?}"
    );
}

#[tokio::test]
async fn an_error_for_the_connection_closes_it_with_the_plugins_words() {
    let (_server, client, mut stream) = connected().await;
    stream
        .write_all(&wire::error_frame(
            0,
            tonic::Code::Unavailable as i32,
            "going away",
        ))
        .await
        .expect("write");
    assert_eq!(
        client.closed().await,
        "it sent ERROR Unavailable: going away"
    );
}

#[tokio::test]
async fn dropping_the_client_closes_the_socket() {
    let (_server, client, mut stream) = connected().await;
    drop(client);
    let eof = tokio::time::timeout(WAIT, read_frame(&mut stream))
        .await
        .expect("in time");
    assert!(matches!(eof, Ok(None)), "EOF");
}

#[tokio::test]
async fn a_refused_hello_fails_the_connect_with_the_plugins_answer() {
    let server = server();
    let plugin = async {
        let (mut stream, _) = server.listener.accept().await.expect("accept");
        let _ = next(&mut stream).await;
        stream
            .write_all(&wire::error_frame(0, 16, "wrong token"))
            .await
            .expect("write");
    };
    let (client, ()) = tokio::join!(FastPath::connect(&server.check, TOKEN, WAIT), plugin);
    assert_eq!(
        client.expect_err("refused"),
        "it refused the HELLO: Unauthenticated: wrong token"
    );
}

#[tokio::test]
async fn a_connection_closed_before_the_hello_answer_fails_the_connect() {
    let server = server();
    let plugin = async {
        let (stream, _) = server.listener.accept().await.expect("accept");
        drop(stream);
    };
    let (client, ()) = tokio::join!(FastPath::connect(&server.check, TOKEN, WAIT), plugin);
    let why = client.expect_err("closed");
    assert!(
        why == "it closed the connection without answering HELLO"
            || why.starts_with("cannot send HELLO"),
        "{why}"
    );
}

#[tokio::test]
async fn a_socket_never_bound_fails_the_connect_saying_so() {
    let dir = private_dir();
    let check = PeerCheck::new(&socket_in(dir.path()));
    let why = FastPath::connect(&check, TOKEN, WAIT)
        .await
        .expect_err("nothing there");
    assert!(why.contains("No such file or directory"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn a_plugin_that_never_answers_hello_fails_the_connect_at_the_timeout() {
    let server = server();
    let check = PeerCheck::new(server.check.socket());
    let _held = tokio::spawn(async move {
        let (stream, _) = server.listener.accept().await.expect("accept");
        std::future::pending::<()>().await;
        drop((stream, server));
    });
    let why = FastPath::connect(&check, TOKEN, Duration::from_secs(1))
        .await
        .expect_err("no answer");
    assert_eq!(why, "no connection and HELLO within 1s");
}
