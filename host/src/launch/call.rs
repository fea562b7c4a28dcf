//! The one bounded call to a plugin, used by the host and the conformance
//! battery alike: cut off at its deadline, failed at once if the plugin
//! exits during it, and its gRPC status classified into a [`CallError`].
//!
//! The rule for `DEADLINE_EXCEEDED` (and `CANCELLED`, which tonic's server
//! answers when the client's `grpc-timeout` fires): it is the call's own
//! timeout when it arrives once the call's deadline has passed; before
//! that, it is the plugin's answer like any other status. The deadline the
//! plugin is told counts from no earlier than the host's, so a plugin that
//! honours it cannot answer before the host's deadline has passed.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::CallError;
use crate::launch::channel::AuthChannel;
use crate::launch::exit::Exit;
use crate::launch::peer::PeerCheck;
use crate::launch::process::PluginProcess;
use crate::output::Tail;

/// How long to wait for a plugin's exit to be noticed after its connection
/// broke, to tell a crash from a network hiccup. Only a broken connection
/// whose plugin lives on waits it all; 100 ms was too short on a machine
/// at load 12 on two cores, where the chaos test saw a SIGKILLed plugin's
/// calls end as `UNKNOWN: transport error` before its exit was reaped.
pub(crate) const CRASH_SETTLE: Duration = Duration::from_millis(500);

/// How long to let stderr drain after a crash, so the error shows the
/// plugin's last words.
const CRASH_DRAIN: Duration = Duration::from_millis(50);

/// When a call must be answered: its timeout, counted from when its request
/// was built.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the count started.
    started: Instant,
    /// How long the call may take.
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            started: Instant::now(),
            timeout,
        }
    }

    /// How long the call may take in all.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once the deadline has passed.
    pub fn passed(&self) -> bool {
        self.started.elapsed() >= self.timeout
    }

    /// The deadline as wall-clock time, for `InvokeRequest.deadline`: read
    /// after the count started, so never earlier than the host's deadline.
    pub fn timestamp(&self) -> prost_types::Timestamp {
        let remaining = self.timeout.saturating_sub(self.started.elapsed());
        prost_types::Timestamp::from(SystemTime::now() + remaining)
    }

    /// `message` as a request carrying the timeout as its gRPC deadline
    /// (`grpc-timeout`), which the plugin's server counts from when it
    /// receives the call.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}

/// How a call failed before the guard classified it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A gRPC status: the plugin's answer (an ERROR frame on the fast
    /// path) or the host's own transport's.
    Status(tonic::Status),
    /// The fast path's connection closed, for this reason.
    Closed(String),
    /// The answer cannot be read (what is wrong with it).
    Invalid(String),
}

/// Bounds calls to one plugin by their deadline and by the plugin's exit.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    /// The plugin's process, raced against every call.
    process: &'a PluginProcess,
    /// Its last stderr lines, for the report of a crash.
    stderr: &'a Tail,
    /// The check of its socket on every dial, when the channel has one.
    peer: Option<&'a PeerCheck>,
}

impl<'a> Guard<'a> {
    /// A guard for calls to the plugin running as `process`.
    pub fn new(process: &'a PluginProcess, stderr: &'a Tail) -> Guard<'a> {
        Guard {
            process,
            stderr,
            peer: None,
        }
    }

    /// The same guard, also failing calls once `peer` refused the socket.
    pub(crate) fn with_peer(self, peer: &'a PeerCheck) -> Guard<'a> {
        Guard {
            peer: Some(peer),
            ..self
        }
    }

    /// The refusal of the plugin's socket, if a dial met one: the channel
    /// retries its dials inside and lets the call run into its timeout, so
    /// the guard says why.
    fn refused(&self) -> Option<CallError> {
        let refused = self.peer?.refusal()?;
        Some(CallError::PeerRefused(refused.to_string()))
    }

    /// Runs `call`, bounded by `deadline` and by the plugin's exit.
    pub async fn call<T>(
        &self,
        deadline: Deadline,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CallError> {
        let call = async {
            call.await
                .map(tonic::Response::into_inner)
                .map_err(Failure::Status)
        };
        self.bounded(deadline, call).await
    }

    /// [`Guard::call`] for a call on any transport (gRPC, the fast path):
    /// one classification of its outcome for both, so that the same answer
    /// makes the same report whichever way it came.
    pub(crate) async fn bounded<T>(
        &self,
        deadline: Deadline,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, CallError> {
        // Once refused, the path is not the plugin's: do not even try.
        if let Some(refused) = self.refused() {
            return Err(refused);
        }
        let result = tokio::select! {
            result = tokio::time::timeout_at(deadline.started + deadline.timeout, call) => result,
            _ = self.process.exited() => return Err(self.crashed().await),
        };
        if result.as_ref().is_ok_and(Result::is_ok) {
            // Answered: by the plugin, on a connection checked when made.
        } else if let Some(refused) = self.refused() {
            return Err(refused);
        }
        match result {
            Err(_) => Err(CallError::Timeout(deadline.timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(Failure::Status(status))) if is_expiry(status.code()) && deadline.passed() => {
                Err(CallError::Timeout(deadline.timeout))
            }
            Ok(Err(Failure::Invalid(why))) => Err(CallError::InvalidResponse(why)),
            Ok(Err(failure)) => {
                // A broken connection surfaces as UNAVAILABLE or UNKNOWN
                // ("transport error") on gRPC, as a closed connection on
                // the fast path, and usually means the plugin died; the
                // reaper needs a moment to notice.
                if self.process.exited_within(CRASH_SETTLE).await.is_some() {
                    return Err(self.crashed().await);
                }
                Err(match failure {
                    Failure::Status(status) => CallError::from_status(&status),
                    Failure::Closed(why) => {
                        CallError::Unavailable(format!("its fast-path connection closed: {why}"))
                    }
                    Failure::Invalid(why) => CallError::InvalidResponse(why),
                })
            }
        }
    }

    /// Asks the plugin's health service about the whole server; the error
    /// says what was wrong.
    pub async fn health(
        &self,
        health: &HealthClient<AuthChannel>,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut health = health.clone();
        let deadline = Deadline::after(timeout);
        let request = deadline.request(HealthCheckRequest {
            service: String::new(),
        });
        let response = self
            .call(deadline, health.check(request))
            .await
            .map_err(|e| format!("health check failed: {e}"))?;
        match ServingStatus::try_from(response.status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(other) => Err(format!("health status is {}", other.as_str_name())),
            Err(_) => Err(format!("unknown health status {}", response.status)),
        }
    }

    async fn crashed(&self) -> CallError {
        tokio::time::sleep(CRASH_DRAIN).await;
        CallError::Crashed {
            status: Exit::describe(self.process.exit_status()),
            stderr: self.stderr.lines(),
        }
    }
}

/// The codes a call's expiry arrives as: `DEADLINE_EXCEEDED` from a plugin
/// that honours its deadline, `CANCELLED` from tonic's own timer.
fn is_expiry(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::DeadlineExceeded | tonic::Code::Cancelled)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::launch::process::Launch;

    /// A process to race calls against: `sh -c script`.
    async fn process(script: &str) -> PluginProcess {
        let launch = Launch::new("sh", "/bin/sh", vec!["-c".into(), script.into()]);
        PluginProcess::spawn(&launch).await.expect("spawn").0
    }

    async fn answer(
        guard: Guard<'_>,
        deadline: Deadline,
        status: tonic::Status,
    ) -> Result<(), CallError> {
        guard
            .call(deadline, async { Err::<tonic::Response<()>, _>(status) })
            .await
    }

    #[tokio::test]
    async fn an_expiry_status_is_a_timeout_only_once_the_deadline_has_passed() {
        let process = process("sleep 30").await;
        let stderr = Tail::default();
        let guard = Guard::new(&process, &stderr);
        let early = answer(
            guard,
            Deadline::after(Duration::from_secs(30)),
            tonic::Status::deadline_exceeded("upstream too slow"),
        )
        .await;
        assert_eq!(
            early,
            Err(CallError::Status {
                code: tonic::Code::DeadlineExceeded,
                message: "upstream too slow".into()
            })
        );
        for status in [
            tonic::Status::deadline_exceeded("late"),
            tonic::Status::cancelled("Timeout expired"),
        ] {
            let late = answer(guard, Deadline::after(Duration::ZERO), status).await;
            assert_eq!(late, Err(CallError::Timeout(Duration::ZERO)));
        }
        process.kill_group(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_call_fails_at_once_when_the_plugin_exits() {
        let process = process("exit 3").await;
        let stderr = Tail::default();
        stderr.push("going");
        let never = std::future::pending::<Result<tonic::Response<()>, tonic::Status>>();
        let err = Guard::new(&process, &stderr)
            .call(Deadline::after(Duration::from_secs(30)), never)
            .await
            .expect_err("crashed");
        assert_eq!(
            err,
            CallError::Crashed {
                status: "status 3".into(),
                stderr: vec!["going".into()]
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_after_its_timeout_and_tells_the_plugin_no_earlier() {
        let before = SystemTime::now();
        let deadline = Deadline::after(Duration::from_millis(200));
        assert!(!deadline.passed());
        let told = SystemTime::try_from(deadline.timestamp()).expect("a valid timestamp");
        assert!(told >= before + Duration::from_millis(200));
        assert!(deadline.request(()).metadata().contains_key("grpc-timeout"));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(deadline.passed());
    }
}
