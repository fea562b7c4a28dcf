//! The checks against raw-frame servers in the test: one that follows
//! `invoke-fastpath/1` passes them all; each fault (a crash on a malformed
//! frame, the wrong id, a call after a CANCEL never answered…) fails the
//! check made for it, saying what was sent and what came back.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use outboard_proto::fastpath::{self, HEADER_LEN, Header, Kind};
use outboard_proto::json::json_to_value;
use outboard_proto::v1;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::{OwnedReadHalf, UCred};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex as AsyncMutex, watch};

use super::{Answer, FastPlugin, run};
use crate::check::{Check, CheckName, Outcome};

const TOKEN: &str = "s3cret-token";
const PHASE: &str = "pre_container";

/// What a test server does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing: it follows the protocol.
    None,
    /// Says HELLO to any token.
    AnyToken,
    /// Refuses a wrong token but keeps the connection open.
    NoCloseAfterRefusal,
    /// Answers every call with its id plus one.
    WrongId,
    /// Answers with the id cut to 32 bits.
    TruncatedIds,
    /// Reads one frame per read(): the rest of a write is lost.
    OneFramePerRead,
    /// Answers every call twice.
    AnswersTwice,
    /// The fast path's patch value differs from gRPC's.
    DiffersFromGrpc,
    /// Answers a call whose deadline passed as if it had not; gRPC does not.
    IgnoresDeadline,
    /// After a CANCEL, never answers on that connection again.
    DeafAfterCancel,
    /// The process dies on a payload that does not decode.
    CrashOnMalformed,
    /// Answers a malformed payload with INTERNAL.
    MalformedAsInternal,
    /// Closes the connection on an unknown kind.
    ClosesOnUnknownKind,
    /// Never answers an unknown kind.
    IgnoresUnknownKind,
    /// Closes the connection on a frame over the limit.
    ClosesOnOversize,
}

/// A raw-frame server in the test, and its make-believe gRPC side.
#[derive(Debug)]
struct TestPlugin {
    /// Where it listens (in `_dir`).
    socket: PathBuf,
    /// How its "process" ended: set when it crashes.
    exit: Arc<Mutex<Option<String>>>,
    /// Its fault.
    fault: Fault,
    /// Sent `true` when it crashes: every connection closes.
    _crash: watch::Sender<bool>,
    /// The short directory of the socket.
    _dir: tempfile::TempDir,
}

impl TestPlugin {
    /// Starts a server with `fault` on a fresh socket.
    fn start(fault: Fault) -> TestPlugin {
        let dir = tempfile::Builder::new()
            .prefix("fc")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let socket = dir.path().join("fast.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let exit = Arc::new(Mutex::new(None));
        let (crash, crashed) = watch::channel(false);
        let server = Server {
            fault,
            exit: exit.clone(),
            crash: crash.clone(),
        };
        tokio::spawn(server.accept(listener, crashed));
        TestPlugin {
            socket,
            exit,
            fault,
            _crash: crash,
            _dir: dir,
        }
    }
}

impl FastPlugin for TestPlugin {
    fn socket(&self) -> &Path {
        &self.socket
    }

    fn token(&self) -> &str {
        TOKEN
    }

    fn exit(&self) -> Option<String> {
        self.exit.lock().expect("exit lock").clone()
    }

    async fn settled_exit(&self) -> Option<String> {
        self.exit()
    }

    fn owns(&self, peer: &UCred) -> Result<(), String> {
        match peer.pid() {
            Some(pid) if pid as u32 == std::process::id() => Ok(()),
            other => Err(format!("the peer is pid {other:?}, not the test")),
        }
    }

    async fn grpc_invoke(
        &self,
        request: v1::InvokeRequest,
        _timeout: Duration,
    ) -> Result<Answer, String> {
        Ok(answer(&request, false, Fault::None))
    }
}

/// The plugin's work: past its deadline, DEADLINE_EXCEEDED; else CONTINUE
/// with a patch whose value is the same on both paths, unless the fault
/// says otherwise.
fn answer(request: &v1::InvokeRequest, spent: bool, fault: Fault) -> Answer {
    let passed = request
        .deadline
        .and_then(|d| SystemTime::try_from(d).ok())
        .is_some_and(|at| at <= SystemTime::now());
    if (passed || spent) && fault != Fault::IgnoresDeadline {
        return Answer::Error {
            code: tonic::Code::DeadlineExceeded as i32,
            message: "the deadline had passed when the call arrived".to_owned(),
        };
    }
    let value = if fault == Fault::DiffersFromGrpc {
        "fast"
    } else {
        "same"
    };
    Answer::Result(v1::InvokeResponse {
        outcome: v1::Outcome::Continue as i32,
        patch: vec![v1::PatchOperation {
            op: v1::PatchOp::Set as i32,
            path: "/metadata/answer".to_owned(),
            value: Some(json_to_value(&serde_json::json!(value))),
        }],
        message: String::new(),
    })
}

/// The server side of the test plugin.
#[derive(Debug, Clone)]
struct Server {
    fault: Fault,
    exit: Arc<Mutex<Option<String>>>,
    crash: watch::Sender<bool>,
}

impl Server {
    async fn accept(self, listener: UnixListener, mut crashed: watch::Receiver<bool>) {
        let watch = crashed.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { return };
                    let server = self.clone();
                    let mut crashed = watch.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = server.serve(stream) => {}
                            _ = crashed.wait_for(|c| *c) => {}
                        }
                    });
                }
                _ = crashed.wait_for(|c| *c) => return,
            }
        }
    }

    /// Serves one connection until it ends or the server closes it.
    async fn serve(self, stream: UnixStream) {
        let (mut read, write) = stream.into_split();
        let write = Arc::new(AsyncMutex::new(write));
        let mut said_hello = false;
        let mut deaf = false;
        while let Some((header, payload)) = self.read_frame(&mut read).await {
            let reply = |bytes: Vec<u8>| {
                let write = write.clone();
                async move {
                    let _ = write.lock().await.write_all(&bytes).await;
                }
            };
            if !said_hello {
                let hello = (header.kind == Kind::Hello)
                    .then(|| v1::FastpathHello::decode(payload.as_slice()).ok())
                    .flatten();
                let right = hello.is_some_and(|h| h.token == TOKEN);
                if right || (self.fault == Fault::AnyToken && header.kind == Kind::Hello) {
                    said_hello = true;
                    let hello = v1::FastpathHello {
                        token: String::new(),
                        version: fastpath::VERSION,
                    };
                    reply(fastpath::frame(Kind::Hello, 0, &hello)).await;
                    continue;
                }
                reply(fastpath::error_frame(0, 16, "wrong token")).await;
                if self.fault == Fault::NoCloseAfterRefusal {
                    continue;
                }
                return;
            }
            if header.too_long() {
                if self.fault == Fault::ClosesOnOversize {
                    return;
                }
                reply(fastpath::error_frame(header.id, 8, "over the limit")).await;
                continue;
            }
            match header.kind {
                Kind::Invoke => {
                    let Ok(invoke) = v1::FastpathInvoke::decode(payload.as_slice()) else {
                        match self.fault {
                            Fault::CrashOnMalformed => {
                                *self.exit.lock().expect("exit lock") =
                                    Some("killed by signal 11 (SIGSEGV)".to_owned());
                                self.crash.send_replace(true);
                                return;
                            }
                            Fault::MalformedAsInternal => {
                                reply(fastpath::error_frame(header.id, 13, "oops")).await;
                            }
                            _ => {
                                reply(fastpath::error_frame(header.id, 3, "malformed frame")).await;
                            }
                        }
                        continue;
                    };
                    if header.id == 0 {
                        reply(fastpath::error_frame(0, 3, "INVOKE with id 0")).await;
                        return;
                    }
                    if deaf {
                        continue;
                    }
                    let spent = invoke
                        .timeout
                        .is_some_and(|t| t.seconds == 0 && t.nanos == 0);
                    let request = invoke.request.unwrap_or_default();
                    let id = match self.fault {
                        Fault::WrongId => header.id + 1,
                        Fault::TruncatedIds => header.id & 0xffff_ffff,
                        _ => header.id,
                    };
                    let bytes = match answer(&request, spent, self.fault) {
                        Answer::Result(response) => fastpath::frame(Kind::Result, id, &response),
                        Answer::Error { code, message } => fastpath::error_frame(id, code, message),
                    };
                    if self.fault == Fault::AnswersTwice {
                        reply(bytes.clone()).await;
                    }
                    reply(bytes).await;
                }
                Kind::Cancel => deaf = self.fault == Fault::DeafAfterCancel,
                Kind::Unknown(_) => match self.fault {
                    Fault::ClosesOnUnknownKind => return,
                    Fault::IgnoresUnknownKind => {}
                    _ => reply(fastpath::error_frame(header.id, 12, "unknown kind")).await,
                },
                _ => reply(fastpath::error_frame(header.id, 3, "unexpected kind")).await,
            }
        }
    }

    /// The next frame; a payload over the limit is read and dropped
    /// (empty). `None` at the end of the connection.
    async fn read_frame(&self, read: &mut OwnedReadHalf) -> Option<(Header, Vec<u8>)> {
        let mut head = [0u8; HEADER_LEN];
        read.read_exact(&mut head).await.ok()?;
        let header = Header::decode(&head);
        let mut payload = vec![
            0u8;
            if header.too_long() {
                0
            } else {
                header.len as usize
            }
        ];
        if header.too_long() {
            let mut rest = u64::from(header.len);
            let mut sink = vec![0u8; 64 * 1024];
            while rest > 0 {
                let n = read.read(&mut sink).await.ok()?;
                if n == 0 {
                    return None;
                }
                rest = rest.saturating_sub(n as u64);
            }
        } else {
            read.read_exact(&mut payload).await.ok()?;
        }
        if self.fault == Fault::OneFramePerRead {
            // Whatever else that read brought is lost.
            let mut lost = vec![0u8; 1 << 20];
            let _ = tokio::time::timeout(Duration::from_millis(1), read.read(&mut lost)).await;
        }
        Some((header, payload))
    }
}

/// Runs every check against a server with `fault`.
async fn checks(fault: Fault) -> Vec<Check> {
    let plugin = TestPlugin::start(fault);
    assert_eq!(plugin.fault, fault);
    run(&plugin, Some(PHASE))
        .await
        .into_iter()
        .map(|(name, check)| {
            assert_eq!(check.name, name.as_str());
            check
        })
        .collect()
}

/// The result of `name` in `checks`.
fn result(checks: &[Check], name: CheckName) -> &Check {
    checks
        .iter()
        .find(|c| c.name == name.as_str())
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

/// Asserts that `name` failed with a detail containing each of `words`.
fn failed(checks: &[Check], name: CheckName, words: &[&str]) {
    let check = result(checks, name);
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    for word in words {
        assert!(check.detail.contains(word), "no {word:?} in {check:#?}");
    }
}

/// Asserts that every check but `except` passed.
fn others_passed(checks: &[Check], except: &[CheckName]) {
    for check in checks {
        if except.iter().any(|name| check.name == name.as_str()) {
            continue;
        }
        assert_eq!(check.outcome, Outcome::Passed, "{check:#?}");
    }
}

#[tokio::test]
async fn a_server_that_follows_the_protocol_passes_every_check() {
    let checks = checks(Fault::None).await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let expected: Vec<&str> = super::CHECKS.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, expected);
    others_passed(&checks, &[]);
    assert!(
        result(&checks, CheckName::FastpathDeadline)
            .detail
            .contains("a past deadline: 4 DeadlineExceeded as over gRPC"),
        "{checks:#?}"
    );
}

#[tokio::test]
async fn a_server_taking_any_token_fails_hello_and_blocks_the_rest() {
    let checks = checks(Fault::AnyToken).await;
    failed(
        &checks,
        CheckName::FastpathHello,
        &[
            "sent HELLO id 0 with a wrong token; expected ERROR id 0 code 16 UNAUTHENTICATED",
            "came back HELLO id 0 {token: \"\", version: 1}",
        ],
    );
    assert_eq!(
        result(&checks, CheckName::FastpathFraming).outcome,
        Outcome::Blocked
    );
}

#[tokio::test]
async fn a_server_keeping_a_refused_connection_open_fails_hello() {
    let checks = checks(Fault::NoCloseAfterRefusal).await;
    failed(
        &checks,
        CheckName::FastpathHello,
        &["then the connection must close, but nothing came back within 3s"],
    );
}

#[tokio::test]
async fn a_server_answering_the_wrong_id_fails_framing() {
    let checks = checks(Fault::WrongId).await;
    failed(
        &checks,
        CheckName::FastpathFraming,
        &[
            "sent HELLO, then INVOKE id 1099511627783 (phase \"pre_container\", timeout 2s)",
            "expected the answer for id 1099511627783, came back RESULT id 1099511627784",
        ],
    );
}

#[tokio::test]
async fn a_server_cutting_ids_to_32_bits_fails_framing_and_multiplexing() {
    let checks = checks(Fault::TruncatedIds).await;
    failed(
        &checks,
        CheckName::FastpathFraming,
        &["came back RESULT id 7 "],
    );
    failed(
        &checks,
        CheckName::FastpathMultiplexing,
        &["came back RESULT id 1 {", "}, an id never sent"],
    );
}

#[tokio::test]
async fn a_server_losing_frames_of_one_write_fails_multiplexing_and_cancellation() {
    let checks = checks(Fault::OneFramePerRead).await;
    failed(
        &checks,
        CheckName::FastpathMultiplexing,
        &[
            "16 INVOKEs in one write",
            "1 answered, then nothing came back within 3s; never answered: ",
        ],
    );
    failed(
        &checks,
        CheckName::FastpathCancellation,
        &["expected the answer for id 8, but nothing came back within 3s"],
    );
}

#[tokio::test]
async fn a_server_answering_twice_fails_multiplexing() {
    let checks = checks(Fault::AnswersTwice).await;
    failed(
        &checks,
        CheckName::FastpathMultiplexing,
        &["was answered twice: RESULT id "],
    );
}

#[tokio::test]
async fn a_fast_path_answering_otherwise_than_grpc_fails_same_answer() {
    let checks = checks(Fault::DiffersFromGrpc).await;
    failed(
        &checks,
        CheckName::FastpathSameAnswer,
        &[
            "came back RESULT id 1099511627777 {outcome: 1, patch on [/metadata/answer]",
            "patch op 0 on \"/metadata/answer\" sets \"fast\" instead of \"same\"",
        ],
    );
    others_passed(&checks, &[CheckName::FastpathSameAnswer]);
}

#[tokio::test]
async fn a_server_ignoring_deadlines_fails_deadline() {
    let checks = checks(Fault::IgnoresDeadline).await;
    failed(
        &checks,
        CheckName::FastpathDeadline,
        &[
            "whose deadline passed 1 s ago",
            "came back RESULT id 41",
            "over gRPC the same request was answered 4 DeadlineExceeded",
        ],
    );
}

#[tokio::test]
async fn a_server_deaf_after_a_cancel_fails_cancellation() {
    let checks = checks(Fault::DeafAfterCancel).await;
    failed(
        &checks,
        CheckName::FastpathCancellation,
        &[
            "INVOKE id 7 (phase \"pre_container\", timeout 2s) and CANCEL id 7 in one write",
            "expected the answer for id 8, but nothing came back within 3s",
        ],
    );
    others_passed(&checks, &[CheckName::FastpathCancellation]);
}

#[tokio::test]
async fn a_server_crashing_on_a_malformed_frame_fails_and_blocks_the_rest() {
    let checks = checks(Fault::CrashOnMalformed).await;
    failed(
        &checks,
        CheckName::FastpathMalformed,
        &[
            "INVOKE id 21 with the payload 0a 05 01",
            "the plugin closed the connection",
            "the plugin exited (killed by signal 11 (SIGSEGV))",
        ],
    );
    for name in [
        CheckName::FastpathUnknownKind,
        CheckName::FastpathOversize,
        CheckName::FastpathAlive,
    ] {
        assert_eq!(
            result(&checks, name).outcome,
            Outcome::Blocked,
            "{checks:#?}"
        );
    }
    others_passed(
        &checks,
        &[
            CheckName::FastpathMalformed,
            CheckName::FastpathUnknownKind,
            CheckName::FastpathOversize,
            CheckName::FastpathAlive,
        ],
    );
}

#[tokio::test]
async fn a_server_answering_a_malformed_frame_with_internal_fails_malformed() {
    let checks = checks(Fault::MalformedAsInternal).await;
    failed(
        &checks,
        CheckName::FastpathMalformed,
        &[
            "expected ERROR id 21 code 3 InvalidArgument",
            "came back ERROR id 21 {code: 13 Internal, message: \"oops\"}",
        ],
    );
    others_passed(&checks, &[CheckName::FastpathMalformed]);
}

#[tokio::test]
async fn a_server_closing_or_silent_on_an_unknown_kind_fails_unknown_kind() {
    let closing = checks(Fault::ClosesOnUnknownKind).await;
    failed(
        &closing,
        CheckName::FastpathUnknownKind,
        &[
            "a frame of kind 42 id 21 with 11 payload bytes",
            "expected ERROR id 21 code 12 Unimplemented, but the plugin closed the connection",
        ],
    );
    others_passed(&closing, &[CheckName::FastpathUnknownKind]);
    let silent = checks(Fault::IgnoresUnknownKind).await;
    failed(
        &silent,
        CheckName::FastpathUnknownKind,
        &["but nothing came back within 3s"],
    );
}

#[tokio::test]
async fn a_server_closing_on_an_oversize_frame_fails_oversize() {
    let checks = checks(Fault::ClosesOnOversize).await;
    failed(
        &checks,
        CheckName::FastpathOversize,
        &[
            "a header claiming 4194305 payload bytes",
            "expected ERROR id 21 code 8 ResourceExhausted, but the plugin closed the connection",
        ],
    );
    others_passed(&checks, &[CheckName::FastpathOversize]);
}

#[tokio::test]
async fn without_subscriptions_the_calls_are_not_applicable() {
    let plugin = TestPlugin::start(Fault::None);
    let checks: Vec<Check> = run(&plugin, None)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    for check in &checks {
        assert!(check.passed, "{check:#?}");
    }
    assert_eq!(
        result(&checks, CheckName::FastpathFraming).outcome,
        Outcome::NotApplicable
    );
    assert!(
        result(&checks, CheckName::FastpathMalformed)
            .detail
            .ends_with("a fresh connection still says HELLO"),
        "{checks:#?}"
    );
}

#[test]
fn skips_say_why() {
    let features = vec![fastpath::FEATURE.to_owned()];
    let socket = Path::new("/run/x/fast.sock");
    assert_eq!(
        super::offered(&features, Some(socket)),
        Ok(socket.to_owned())
    );
    assert!(
        super::offered(&[], Some(socket))
            .expect_err("not listed")
            .contains("does not list invoke-fastpath/1")
    );
    assert!(
        super::offered(&features, None)
            .expect_err("not offered")
            .contains("was not offered (--fastpath off, or fastpath = false in its config)")
    );
    for (_, check) in super::skipped("why") {
        assert_eq!(check.outcome, Outcome::NotApplicable);
        assert_eq!(check.detail, "skipped: why");
    }
}

#[test]
fn a_frame_is_shown_escaped() {
    let frame = super::wire::Frame {
        header: Header {
            len: 0,
            kind: Kind::Error,
            id: 3,
        },
        reserved: [0, 0, 1],
        payload: v1::FastpathError {
            code: 3,
            message: "bad\x1b[2J".to_owned(),
        }
        .encode_to_vec(),
    };
    let mut frame = frame;
    frame.header.len = frame.payload.len() as u32;
    assert_eq!(
        super::wire::show(&frame),
        "ERROR id 3 (reserved bytes 00 00 01) {code: 3 InvalidArgument, message: \"bad\\u{1b}[2J\"}"
    );
}
