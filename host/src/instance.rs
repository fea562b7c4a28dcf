//! One running plugin: start it until it is ready, call it, stop it.
//!
//! Start is spawn → handshake → connect → `Describe` → manifest validation →
//! config validation → `Configure` → health check. Any failure on the way
//! kills the plugin's process group and removes its runtime directory before
//! the error is returned, so a failed start leaves nothing behind.
//!
//! Every call races the plugin's exit: a plugin that dies during a call fails
//! that call at once, not at its timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outboard_proto::handshake::SUPPORTED_PROTOCOL_VERSIONS;
use outboard_proto::json::json_to_struct;
use outboard_proto::patch::{self, PatchOp};
use outboard_proto::v1;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::config::PluginSpec;
use crate::error::{CallError, Error, ErrorKind};
use crate::launch::channel::{self as client, Clients};
use crate::launch::handshake;
use crate::launch::process::{PluginProcess, RuntimeDir, describe_exit};
use crate::launch::{launch_for, new_token, runtime_dir_for, spawn_logged};
use crate::manifest::Manifest;
use crate::output::{self as logs, Stream, Tail};

/// How long a plugin has to exit after SIGTERM before it gets SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a plugin's exit to be noticed after its connection
/// broke, to tell a crash from a network hiccup.
const CRASH_SETTLE: Duration = Duration::from_millis(100);

/// A plugin that completed its start and is ready for calls.
#[derive(Debug)]
pub struct Plugin {
    name: Arc<str>,
    spec: PluginSpec,
    manifest: Manifest,
    process: PluginProcess,
    clients: Clients,
    stderr: Tail,
    ready_after: Duration,
    /// Removed when the plugin is dropped; declared last so that the process
    /// is killed before its directory goes.
    runtime_dir: RuntimeDir,
}

/// What a plugin answered to `Invoke`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Go on, applying `patch`.
    Continue {
        /// The changes to the context, in order.
        patch: Vec<PatchOp>,
        /// The plugin's note, possibly empty.
        message: String,
    },
    /// A deliberate veto.
    Abort {
        /// Why.
        message: String,
    },
}

/// How a plugin went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMethod {
    /// It exited after the `Shutdown` call, within its grace period.
    Shutdown,
    /// It exited after SIGTERM.
    Terminated,
    /// It had to be killed with SIGKILL.
    Killed,
    /// It had already exited before stop began.
    AlreadyExited,
}

/// The result of [`Plugin::stop`].
#[derive(Debug, Clone)]
pub struct Stopped {
    /// How the plugin went away.
    pub method: StopMethod,
    /// Its exit, described ("status 0", "signal 9 (SIGKILL)").
    pub exit: String,
}

impl Plugin {
    /// Starts the plugin `spec` describes and brings it to ready.
    pub async fn start(spec: &PluginSpec) -> Result<Plugin, Error> {
        let started = Instant::now();
        let name: Arc<str> = spec.name.as_str().into();
        let fail = |kind: ErrorKind| Error::new(&*name, kind);

        let runtime_dir = runtime_dir_for(spec).map_err(|e| fail(ErrorKind::RuntimeDir(e)))?;
        let socket = runtime_dir.socket_path();
        let token = new_token();
        let launch = launch_for(spec, &socket, &token);
        let (process, mut stdout, stderr) =
            spawn_logged(&name, &launch).await.map_err(|source| {
                fail(ErrorKind::Spawn {
                    command: spec.command.clone(),
                    source,
                })
            })?;
        // From here on, dropping `process` kills the plugin's group and
        // dropping `runtime_dir` removes the directory: an early return
        // cleans up by itself.
        let expect = handshake::Expect {
            plugin: &name,
            socket: &socket,
            versions: SUPPORTED_PROTOCOL_VERSIONS,
            timeout: spec.handshake_timeout,
        };
        let line = handshake::read(&expect, &mut stdout, process.exit_watch(), &stderr)
            .await
            .map_err(fail)?;
        tokio::spawn(logs::forward(name.clone(), Stream::Stdout, stdout, None));

        let setup_timeout = spec.handshake_timeout;
        let clients = client::connect(&socket, &token, setup_timeout)
            .await
            .map_err(|reason| fail(ErrorKind::Connect { socket, reason }))?;

        let guard = Guard {
            process: &process,
            stderr: &stderr,
        };
        let describe = v1::DescribeRequest {
            host_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS.to_vec(),
            host_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let mut plugin_client = clients.plugin.clone();
        let described = guard
            .call(
                setup_timeout,
                plugin_client.describe(with_timeout(describe, setup_timeout)),
            )
            .await
            .map_err(|e| fail(ErrorKind::Describe(e)))?;
        let manifest = described.manifest.ok_or_else(|| {
            fail(ErrorKind::Describe(CallError::InvalidResponse(
                "DescribeResponse has no manifest".to_owned(),
            )))
        })?;
        let manifest =
            Manifest::from_proto(manifest, line.protocol_version).map_err(|e| fail(e.into()))?;

        let config = serde_json::Value::Object(spec.config.clone());
        manifest
            .validate_config(&config)
            .map_err(|e| fail(e.into()))?;
        let configure = v1::ConfigureRequest {
            config: Some(json_to_struct(&spec.config)),
            granted_permissions: granted(&name, &manifest, &spec.grant),
            protocol_version: line.protocol_version,
            instance_name: spec.name.clone(),
        };
        guard
            .call(
                setup_timeout,
                plugin_client.configure(with_timeout(configure, setup_timeout)),
            )
            .await
            .map_err(|e| match e {
                CallError::Status {
                    code: tonic::Code::InvalidArgument,
                    message,
                } => fail(ErrorKind::ConfigRejected(message)),
                other => fail(ErrorKind::Configure(other)),
            })?;
        guard
            .health(&clients, setup_timeout)
            .await
            .map_err(|reason| fail(ErrorKind::Unhealthy(reason)))?;

        let plugin = Plugin {
            name: name.clone(),
            spec: spec.clone(),
            manifest,
            process,
            clients,
            stderr,
            ready_after: started.elapsed(),
            runtime_dir,
        };
        tracing::info!(
            plugin = &*name,
            pid = plugin.pid(),
            version = %plugin.manifest.version,
            ready_ms = plugin.ready_after.as_secs_f64() * 1000.0,
            "ready"
        );
        Ok(plugin)
    }

    /// The name the host knows the plugin by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Its validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// How long it took from spawn to ready.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// Its runtime directory.
    pub fn runtime_dir(&self) -> &std::path::Path {
        self.runtime_dir.path()
    }

    /// The exit status, described, if it has exited.
    pub fn exited(&self) -> Option<String> {
        self.process.exit_status().map(describe_exit)
    }

    /// Runs `phase` with `context`, cut off after `timeout` (also sent to
    /// the plugin as the call's gRPC deadline).
    pub async fn invoke(
        &self,
        phase: &str,
        invocation_id: &str,
        attempt: u32,
        context: prost_types::Struct,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let deadline = std::time::SystemTime::now() + timeout;
        let request = v1::InvokeRequest {
            phase: phase.to_owned(),
            invocation_id: invocation_id.to_owned(),
            attempt,
            deadline: Some(prost_types::Timestamp::from(deadline)),
            trace_context: Default::default(),
            context: Some(context),
        };
        let mut client = self.clients.plugin.clone();
        let response = self
            .guard()
            .call(timeout, client.invoke(with_timeout(request, timeout)))
            .await?;
        match v1::Outcome::try_from(response.outcome) {
            Ok(v1::Outcome::Unspecified | v1::Outcome::Continue) => Ok(Reply::Continue {
                patch: patch::from_proto(&response.patch).map_err(|e| {
                    CallError::InvalidResponse(format!("its patch is invalid: {e}"))
                })?,
                message: response.message,
            }),
            Ok(v1::Outcome::Abort) => Ok(Reply::Abort {
                message: if response.message.is_empty() {
                    "(vetoed without a message)".to_owned()
                } else {
                    response.message
                },
            }),
            Err(_) => Err(CallError::InvalidResponse(format!(
                "unknown outcome {} (expected OUTCOME_CONTINUE or OUTCOME_ABORT)",
                response.outcome
            ))),
        }
    }

    /// Asks the plugin's health service about the whole server.
    pub async fn check_health(&self, timeout: Duration) -> Result<(), String> {
        self.guard().health(&self.clients, timeout).await
    }

    fn guard(&self) -> Guard<'_> {
        Guard {
            process: &self.process,
            stderr: &self.stderr,
        }
    }

    /// Stops the plugin: `Shutdown`, then SIGTERM after its grace period,
    /// then SIGKILL; whatever is left of its process group is killed and its
    /// runtime directory removed.
    pub async fn stop(self) -> Stopped {
        let stopped = self.terminate().await;
        drop(self);
        stopped
    }

    /// [`Plugin::stop`] through a shared reference, for a plugin that calls
    /// in flight may still hold: the process group is gone when this
    /// returns; the runtime directory goes with the last reference.
    pub async fn terminate(&self) -> Stopped {
        let method = self.shut_down().await;
        // Processes the plugin started and left behind in its group go too;
        // stop returns only when none is left, zombies included.
        let _ = self.process.signal_group(libc::SIGKILL);
        if !self.process.group_gone_within(TERM_GRACE).await {
            tracing::warn!(
                plugin = &*self.name,
                "processes of its group outlived SIGKILL: {:?}",
                crate::launch::process::group_members(self.pid())
            );
        }
        let exit = self
            .process
            .exit_status()
            .map_or_else(|| "an unknown status".to_owned(), describe_exit);
        tracing::debug!(plugin = &*self.name, ?method, exit, "stopped");
        Stopped { method, exit }
    }

    /// Kills the plugin's whole process group at once, without `Shutdown`:
    /// for a plugin that is unhealthy or being restarted.
    pub async fn kill(&self) -> Stopped {
        let _ = self.process.signal_group(libc::SIGKILL);
        let _ = self.process.exited_within(TERM_GRACE).await;
        let _ = self.process.group_gone_within(TERM_GRACE).await;
        Stopped {
            method: StopMethod::Killed,
            exit: self
                .process
                .exit_status()
                .map_or_else(|| "an unknown status".to_owned(), describe_exit),
        }
    }

    /// Waits until the plugin's process exits; returns its exit, described,
    /// and whether it was a success (status 0).
    pub async fn wait_exit(&self) -> (String, bool) {
        let status = self.process.exited().await;
        (describe_exit(status), status.success())
    }

    /// The last lines the plugin wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr.lines()
    }

    async fn shut_down(&self) -> StopMethod {
        if self.process.exit_status().is_some() {
            return StopMethod::AlreadyExited;
        }
        // One grace period covers both the Shutdown call and the exit after
        // it: a plugin that never answers must not get twice as long.
        let grace = self.spec.stop_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let request = v1::ShutdownRequest {
            grace: prost_types::Duration::try_from(grace).ok(),
            reason: "host stopping".to_owned(),
        };
        let mut client = self.clients.plugin.clone();
        let asked =
            tokio::time::timeout_at(deadline, client.shutdown(with_timeout(request, grace))).await;
        if let Ok(Err(status)) = &asked {
            tracing::debug!(
                plugin = &*self.name,
                "Shutdown returned {}",
                status.message()
            );
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if self.process.exited_within(remaining).await.is_some() {
            return StopMethod::Shutdown;
        }
        tracing::warn!(
            plugin = &*self.name,
            "did not exit within {} of Shutdown; sending SIGTERM",
            humantime::format_duration(grace)
        );
        let _ = self.process.signal_group(libc::SIGTERM);
        if self.process.exited_within(TERM_GRACE).await.is_some() {
            return StopMethod::Terminated;
        }
        tracing::warn!(plugin = &*self.name, "ignored SIGTERM; sending SIGKILL");
        let _ = self.process.signal_group(libc::SIGKILL);
        let _ = self.process.exited_within(TERM_GRACE).await;
        StopMethod::Killed
    }
}

/// Bounds calls to a plugin by a timeout and by the plugin's exit.
#[derive(Debug, Clone, Copy)]
struct Guard<'a> {
    process: &'a PluginProcess,
    stderr: &'a Tail,
}

impl Guard<'_> {
    /// Runs a call, bounded by `timeout` and by the plugin's exit.
    async fn call<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let result = tokio::select! {
            result = tokio::time::timeout(timeout, call) => result,
            _ = self.process.exited() => return Err(self.crashed().await),
        };
        match result {
            Err(_) => Err(CallError::Timeout(timeout)),
            // The plugin's server saw the same deadline (grpc-timeout) and
            // may have fired first; it is still this call's timeout.
            Ok(Err(status))
                if status.code() == tonic::Code::DeadlineExceeded
                    || (status.code() == tonic::Code::Cancelled
                        && started.elapsed() >= timeout) =>
            {
                Err(CallError::Timeout(timeout))
            }
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                // A broken connection surfaces as UNAVAILABLE or UNKNOWN
                // ("transport error") and usually means the plugin died; the
                // reaper needs a moment to notice.
                if self.process.exited_within(CRASH_SETTLE).await.is_some() {
                    Err(self.crashed().await)
                } else {
                    Err(CallError::from_status(&status))
                }
            }
        }
    }

    /// Asks the plugin's health service about the whole server.
    async fn health(&self, clients: &Clients, timeout: Duration) -> Result<(), String> {
        let mut health = clients.health.clone();
        let request = with_timeout(
            HealthCheckRequest {
                service: String::new(),
            },
            timeout,
        );
        let response = self
            .call(timeout, health.check(request))
            .await
            .map_err(|e| format!("health check failed: {e}"))?;
        match ServingStatus::try_from(response.status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(other) => Err(format!("health status is {}", other.as_str_name())),
            Err(_) => Err(format!("unknown health status {}", response.status)),
        }
    }

    async fn crashed(&self) -> CallError {
        // Let stderr drain so the report shows the plugin's last words.
        tokio::time::sleep(Duration::from_millis(50)).await;
        CallError::Crashed {
            status: self
                .process
                .exit_status()
                .map_or_else(|| "an unknown status".to_owned(), describe_exit),
            stderr: self.stderr.lines(),
        }
    }
}

/// The permissions `manifest` asks for that `grant` allows (`"*"`: all);
/// those withheld are logged, since the plugin may then work with less.
fn granted(plugin: &str, manifest: &Manifest, grant: &[String]) -> Vec<String> {
    let all = grant.iter().any(|g| g == "*");
    let (given, withheld): (Vec<_>, Vec<_>) = manifest
        .permissions
        .iter()
        .map(|p| p.name.clone())
        .partition(|name| all || grant.contains(name));
    if !withheld.is_empty() {
        tracing::warn!(
            plugin,
            "asks for permissions not granted by its config: {} (add them to its `grant` list)",
            withheld.join(", ")
        );
    }
    given
}

/// A request carrying `timeout` as its gRPC deadline.
fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_permissions_are_passed_on() {
        let asked = v1::Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            permissions: ["env:write", "network:loopback"]
                .map(|n| v1::Permission {
                    name: n.into(),
                    reason: "test".into(),
                })
                .to_vec(),
            ..Default::default()
        };
        let manifest = Manifest::from_proto(asked, 1).expect("valid");
        let grant = |list: &[&str]| -> Vec<String> {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            granted("p", &manifest, &list)
        };
        assert_eq!(grant(&[]), Vec::<String>::new());
        assert_eq!(grant(&["env:write", "fs:root"]), ["env:write"]);
        assert_eq!(grant(&["*"]), ["env:write", "network:loopback"]);
    }
}
