//! The invoke fast path (`invoke-fastpath/1`, PROTOCOL.md §18), checked
//! over its real socket with a raw-frame client of our own: run only when
//! the plugin lists [`FEATURE`] and the launch offered it
//! (`OUTBOARD_FASTPATH_SOCKET`); otherwise every check is skipped, saying
//! why.
//!
//! Every check opens its own connection and says `HELLO` first (the hello
//! check also tries a wrong token and no `HELLO` at all); a check that
//! fails says what was sent and what came back, escaped.
//!
//! # Layout
//!
//! - `wire`: the raw-frame client and the rendering of frames.
//! - `hello`: the socket and the `HELLO` exchange.
//! - `calls`: framing, multiplexing, the same answer as gRPC.
//! - `deadline`: a spent timeout and a past deadline.
//! - `cancel`: `CANCEL`, and the next call still answered.
//! - `bad_frames`: a malformed payload, an unknown kind, a frame over the
//!   limit; and, last, the process still alive.

mod bad_frames;
mod calls;
mod cancel;
mod deadline;
mod hello;
mod wire;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use outboard_host::CallError;
use outboard_host::launch::{Deadline, Exit, descends_from};
use outboard_proto::fastpath::{self, FEATURE, Kind};
use outboard_proto::v1;
use prost::Message as _;
use serde_json::{Map, Value};
use tokio::net::unix::UCred;

use crate::check::{Check, CheckName};
use crate::checks::invoke::{INVOKE_TIMEOUT, invoke_request, job_context, judge};
use crate::subject::Subject;
use wire::{Conn, Frame, Silence, show};

/// How long past a call's timeout the plugin may take to answer it, and
/// how long any other frame may take to come.
const SLACK: Duration = Duration::from_secs(1);

/// How long after a failed check the process may take to be seen gone:
/// longer than the host's own settle, the machine may be busy, and it is
/// only waited for after a failure.
const CRASH_SETTLE: Duration = Duration::from_secs(1);

/// The checks, in the order they run.
pub(crate) const CHECKS: [CheckName; 10] = CheckName::FASTPATH;

/// The checks that need a phase to invoke.
const NEED_A_PHASE: [CheckName; 5] = [
    CheckName::FastpathFraming,
    CheckName::FastpathSameAnswer,
    CheckName::FastpathMultiplexing,
    CheckName::FastpathDeadline,
    CheckName::FastpathCancellation,
];

/// A plugin the fast-path checks talk to: launched by the battery, or a
/// server of the unit tests.
pub(crate) trait FastPlugin {
    /// Its fast-path socket.
    fn socket(&self) -> &Path;
    /// The token its `HELLO` expects.
    fn token(&self) -> &str;
    /// How its process ended, if it has.
    fn exit(&self) -> Option<String>;
    /// How its process ended, if it has or does within a short while:
    /// asked after a failure, when a closed connection may be a crash
    /// whose exit the host has not noticed yet.
    fn settled_exit(&self) -> impl Future<Output = Option<String>>;
    /// Whether `peer`, at the other end of a connection to the socket, is
    /// the plugin.
    fn owns(&self, peer: &UCred) -> Result<(), String>;
    /// `request` over gRPC, answered within `timeout`: its answer, or why
    /// there was none.
    fn grpc_invoke(
        &self,
        request: v1::InvokeRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<Answer, String>>;
}

/// How a call was answered, on either path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// gRPC OK, or a `RESULT` frame.
    Result(v1::InvokeResponse),
    /// A gRPC status, or an `ERROR` frame.
    Error {
        /// The gRPC status code.
        code: i32,
        /// Its message.
        message: String,
    },
}

impl Answer {
    /// The answer a `RESULT` or `ERROR` frame carries; why not, else.
    fn of(frame: &Frame) -> Result<Answer, String> {
        match frame.header.kind {
            Kind::Result => v1::InvokeResponse::decode(frame.payload.as_slice())
                .map(Answer::Result)
                .map_err(|e| format!("its payload is not an InvokeResponse: {e}")),
            Kind::Error => v1::FastpathError::decode(frame.payload.as_slice())
                .map(|e| Answer::Error {
                    code: e.code,
                    message: e.message,
                })
                .map_err(|e| format!("its payload is not a FastpathError: {e}")),
            _ => Err("expected RESULT or ERROR".to_owned()),
        }
    }

    /// OK or the status code, for comparing answers.
    fn class(&self) -> String {
        match self {
            Answer::Result(_) => "OK".to_owned(),
            Answer::Error { code, .. } => code_name(*code),
        }
    }
}

/// A gRPC status code, named.
fn code_name(code: i32) -> String {
    format!("{code} {:?}", tonic::Code::from(code))
}

/// What the checks share: the plugin, the phase they invoke (none without
/// subscriptions) and how long a frame may take to come.
#[derive(Debug)]
pub(crate) struct Probe<'a, P> {
    /// The plugin.
    plugin: &'a P,
    /// The phase the calls invoke: the plugin's first subscription.
    phase: Option<&'a str>,
    /// How long a read waits for a frame; a call's timeout is
    /// [`INVOKE_TIMEOUT`], so this is longer.
    bound: Duration,
}

impl<'a, P: FastPlugin> Probe<'a, P> {
    /// A probe of `plugin` invoking `phase`, each read bounded by the call
    /// timeout and [`SLACK`].
    pub(crate) fn new(plugin: &'a P, phase: Option<&'a str>) -> Probe<'a, P> {
        Probe {
            plugin,
            phase,
            bound: INVOKE_TIMEOUT + SLACK,
        }
    }

    /// A connection to the socket, its peer checked, before any `HELLO`.
    async fn connect(&self) -> Result<Conn, String> {
        let conn = Conn::connect(self.plugin.socket(), self.bound).await?;
        let peer = conn
            .peer()
            .map_err(|e| format!("cannot tell who listens on the fast-path socket: {e}"))?;
        self.plugin.owns(&peer)?;
        Ok(conn)
    }

    /// A connection that said `HELLO` with the right token.
    async fn hello(&self) -> Result<Conn, String> {
        let mut conn = self.connect().await?;
        conn.hello(self.plugin.token()).await?;
        Ok(conn)
    }

    /// A call of the phase with a fresh job context, due in
    /// [`INVOKE_TIMEOUT`].
    fn call(&self, phase: &str) -> Call {
        let context = job_context();
        let request = invoke_request(phase, &context, Deadline::after(INVOKE_TIMEOUT));
        Call {
            request,
            context,
            timeout: Some(INVOKE_TIMEOUT),
        }
    }
}

/// One call: the request, its context, and the timeout in the frame.
#[derive(Debug, Clone)]
struct Call {
    /// The request, as gRPC would carry it.
    request: v1::InvokeRequest,
    /// Its context, for judging the answer.
    context: Map<String, Value>,
    /// `FastpathInvoke.timeout`.
    timeout: Option<Duration>,
}

impl Call {
    /// The `INVOKE` frame for call `id`.
    fn frame(&self, id: u64) -> Vec<u8> {
        fastpath::frame(
            Kind::Invoke,
            id,
            &v1::FastpathInvoke {
                request: Some(self.request.clone()),
                timeout: self
                    .timeout
                    .map(|t| prost_types::Duration::try_from(t).unwrap_or_default()),
            },
        )
    }

    /// The frame as it is written in a report.
    fn shown(&self, id: u64) -> String {
        let timeout = match self.timeout {
            Some(t) => format!("timeout {}", humantime::format_duration(t)),
            None => "no timeout".to_owned(),
        };
        format!(
            "INVOKE id {id} (phase \"{}\", {timeout})",
            outboard_host::Escaped::line(&self.request.phase)
        )
    }
}

/// Judges the answer to a normal call: a `RESULT` whose response the
/// invoke check would accept, or an `ERROR` INVALID_ARGUMENT with a message
/// (the plugin refusing the synthetic context, as on gRPC).
fn judge_answer(frame: &Frame, call: &Call) -> Result<String, String> {
    match Answer::of(frame)? {
        Answer::Result(response) => judge(&response, &call.context),
        Answer::Error { code, message }
            if code == tonic::Code::InvalidArgument as i32 && !message.trim().is_empty() =>
        {
            Ok(format!(
                "refused the synthetic context with INVALID_ARGUMENT: {}",
                outboard_host::Escaped::line(&message)
            ))
        }
        Answer::Error { code, .. } => Err(format!(
            "a normal call failed with {}; expected RESULT",
            code_name(code)
        )),
    }
}

/// Reads frames until the one for `id`; frames for other ids are `Err`.
async fn answer_for(conn: &mut Conn, id: u64, sent: &str) -> Result<Frame, String> {
    let frame = conn.recv().await.map_err(|silence| {
        format!("sent {sent}; expected the answer for id {id}, but {silence}")
    })?;
    if frame.header.id != id {
        return Err(format!(
            "sent {sent}; expected the answer for id {id}, came back {}",
            show(&frame)
        ));
    }
    Ok(frame)
}

/// Sends one normal call as `id` on `conn` and judges its answer; `before`
/// says what was sent on the connection before it.
async fn normal_call<P: FastPlugin>(
    probe: &Probe<'_, P>,
    conn: &mut Conn,
    phase: &str,
    id: u64,
    before: &str,
) -> Result<String, String> {
    let call = probe.call(phase);
    let sent = format!("{before}, then {}", call.shown(id));
    conn.send(&call.frame(id), &call.shown(id)).await?;
    let frame = answer_for(conn, id, &sent).await?;
    judge_answer(&frame, &call)
        .map_err(|why| format!("sent {sent}; came back {}: {why}", show(&frame)))
}

/// Runs every check against `plugin`, invoking `phase` (the first
/// subscription; `None` if it has none): a check that needs a phase is
/// then not applicable. Once the plugin has exited the rest are blocked.
pub(crate) async fn run<P: FastPlugin>(plugin: &P, phase: Option<&str>) -> Vec<(CheckName, Check)> {
    let probe = Probe::new(plugin, phase);
    let mut checks = Vec::new();
    for name in CHECKS {
        if let Some(exit) = plugin.exit() {
            let why = format!("the plugin exited ({exit})");
            checks.push((name, Check::blocked(name, &why)));
            continue;
        }
        if phase.is_none() && NEED_A_PHASE.contains(&name) {
            checks.push((name, Check::not_applicable(name, "no subscriptions")));
            continue;
        }
        let result = match one(&probe, name).await {
            Ok(detail) => Ok(detail),
            Err(why) => Err(match plugin.settled_exit().await {
                Some(exit) => format!("{why}; the plugin exited ({exit})"),
                None => why,
            }),
        };
        let failed_hello = name == CheckName::FastpathHello && result.is_err();
        checks.push((name, Check::of(name, result)));
        if failed_hello {
            for rest in &CHECKS[1..] {
                checks.push((*rest, Check::blocked(*rest, "no fast-path hello")));
            }
            break;
        }
    }
    checks
}

/// The check `name`.
async fn one<P: FastPlugin>(probe: &Probe<'_, P>, name: CheckName) -> Result<String, String> {
    let phase = probe.phase.unwrap_or_default();
    match name {
        CheckName::FastpathHello => hello::check(probe).await,
        CheckName::FastpathFraming => calls::framing(probe, phase).await,
        CheckName::FastpathSameAnswer => calls::same_as_grpc(probe, phase).await,
        CheckName::FastpathMultiplexing => calls::multiplexing(probe, phase).await,
        CheckName::FastpathDeadline => deadline::check(probe, phase).await,
        CheckName::FastpathCancellation => cancel::check(probe, phase).await,
        CheckName::FastpathMalformed => bad_frames::malformed(probe).await,
        CheckName::FastpathUnknownKind => bad_frames::unknown_kind(probe).await,
        CheckName::FastpathOversize => bad_frames::oversize(probe).await,
        CheckName::FastpathAlive => bad_frames::alive(probe).await,
        other => Err(format!("{other} is not a fast-path check")),
    }
}

/// Every check skipped, saying `why`.
pub(crate) fn skipped(why: &str) -> Vec<(CheckName, Check)> {
    CHECKS
        .iter()
        .map(|name| (*name, Check::not_applicable(*name, why)))
        .collect()
}

/// Whether the fast-path checks run on this launch: `Ok` with the socket
/// if the plugin lists the feature and the launch offered it; `Err` with
/// why they are skipped.
pub(crate) fn offered(features: &[String], socket: Option<&Path>) -> Result<PathBuf, String> {
    let listed = features.iter().any(|f| f == FEATURE);
    match (socket, listed) {
        (Some(socket), true) => Ok(socket.to_owned()),
        (Some(_), false) => Err(format!(
            "the plugin does not list {FEATURE}: Invoke stays on gRPC"
        )),
        (None, true) => Err(format!(
            "the fast path was not offered (--fastpath off, or fastpath = false in its config): \
             the plugin lists {FEATURE}, but without OUTBOARD_FASTPATH_SOCKET the host ignores it"
        )),
        (None, false) => Err(format!(
            "the fast path was not offered (--fastpath off, or fastpath = false in its config), \
             and the plugin does not list {FEATURE}"
        )),
    }
}

/// The plugin the battery launched, seen by the fast-path checks.
#[derive(Debug)]
pub(crate) struct Launched<'a, 's> {
    /// The plugin and its gRPC clients.
    subject: &'a Subject<'s>,
    /// Its fast-path socket.
    socket: PathBuf,
}

impl<'a, 's> Launched<'a, 's> {
    /// `subject`, whose fast-path socket is `socket`.
    pub(crate) fn new(subject: &'a Subject<'s>, socket: PathBuf) -> Launched<'a, 's> {
        Launched { subject, socket }
    }
}

impl FastPlugin for Launched<'_, '_> {
    fn socket(&self) -> &Path {
        &self.socket
    }

    fn token(&self) -> &str {
        self.subject.launched.token()
    }

    fn exit(&self) -> Option<String> {
        self.subject
            .launched
            .process()
            .exit_status()
            .map(|exit| Exit::describe(Some(exit)))
    }

    async fn settled_exit(&self) -> Option<String> {
        let process = self.subject.launched.process();
        process
            .exited_within(CRASH_SETTLE)
            .await
            .map(|exit| Exit::describe(Some(exit)))
    }

    fn owns(&self, peer: &UCred) -> Result<(), String> {
        let plugin = self.subject.launched.process().pid();
        match peer.pid() {
            Some(pid) if pid > 0 && descends_from(pid as u32, plugin) => Ok(()),
            pid => Err(format!(
                "the peer on the fast-path socket (pid {pid:?}, uid {}) is not the plugin \
                 (pid {plugin}) or one of its processes; nothing was sent to it",
                peer.uid()
            )),
        }
    }

    async fn grpc_invoke(
        &self,
        request: v1::InvokeRequest,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let deadline = Deadline::after(timeout);
        let mut client = self.subject.clients.plugin.clone();
        let result = self
            .subject
            .launched
            .guard()
            .call(deadline, client.invoke(deadline.request(request)))
            .await;
        match result {
            Ok(response) => Ok(Answer::Result(response)),
            Err(CallError::Status { code, message }) => Ok(Answer::Error {
                code: code as i32,
                message,
            }),
            Err(e) => Err(format!("the same call over gRPC: {e}")),
        }
    }
}

/// A silence, for a report.
fn silent(sent: &str, expected: &str, silence: &Silence) -> String {
    format!("sent {sent}; expected {expected}, but {silence}")
}
