//! One running plugin: start it until it is ready, call it, stop it.
//!
//! Start is spawn → handshake → connect → `Describe` → manifest validation →
//! the fast path (if offered and listed) → config validation → (its turn: the plugins it depends on ready) →
//! `Configure` → health check. Any failure on the way
//! kills the plugin's process group and removes its runtime directory before
//! the error is returned, so a failed start leaves nothing behind.
//!
//! Every call races the plugin's exit: a plugin that dies during a call fails
//! that call at once, not at its timeout.

use std::time::{Duration, Instant};

use outboard_proto::patch::{self, PatchOp};
use outboard_proto::v1;

use crate::config::PluginSpec;
use crate::context::SentContext;
use crate::depends::Turn;
use crate::error::{CallError, Error, ErrorKind};
use crate::launch::fastpath::FastPath;
use crate::launch::{
    Attach, Clients, Configuration, Deadline, Exit, Launched, PluginProcess, group_members,
    launch_attached,
};
use crate::manifest::Manifest;

/// How long a plugin has to exit after SIGTERM before it gets SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);

/// A plugin that completed its start and is ready for calls.
#[derive(Debug)]
pub struct Plugin {
    /// The spec it was started from.
    spec: PluginSpec,
    /// Its validated manifest.
    manifest: Manifest,
    /// Its services, on one connection.
    clients: Clients,
    /// Its fast path for `Invoke`, when the host offered it and the plugin
    /// lists the feature.
    fast: Option<FastPath>,
    /// How long it took from spawn to ready.
    ready_after: Duration,
    /// The process and its runtime directory; declared last so that the
    /// connection closes before the process is killed and its directory
    /// removed.
    launched: Launched,
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
    /// Starts the plugin `spec` describes and brings it to ready: launch
    /// (spawn and handshake), connect, then set up (`Describe`, config,
    /// `Configure`, health). A failure anywhere leaves nothing running and no
    /// runtime directory behind.
    pub async fn start(spec: &PluginSpec) -> Result<Plugin, Error> {
        Plugin::start_in_turn(spec, None).await
    }

    /// [`Plugin::start`], sending `Configure` only once `turn` says the
    /// plugins it depends on are ready.
    pub async fn start_in_turn(spec: &PluginSpec, turn: Option<&Turn>) -> Result<Plugin, Error> {
        Plugin::start_attached(spec, turn, None).await
    }

    /// [`Plugin::start_in_turn`], the launch given what `attach` binds
    /// (host services): it learns the manifest and the grants after
    /// `Describe`.
    pub async fn start_attached(
        spec: &PluginSpec,
        turn: Option<&Turn>,
        attach: Option<&dyn Attach>,
    ) -> Result<Plugin, Error> {
        let started = Instant::now();
        let launched = launch_attached(spec, attach).await?;
        let clients = launched.connect(spec.handshake_timeout).await?;
        let (manifest, fast) = Plugin::set_up(&launched, &clients, spec, turn)
            .await
            .map_err(|kind| Error::new(&**launched.name(), kind))?;
        // `Invoke` takes the fast path: one connection serves the rest.
        let clients = if fast.is_some() {
            clients.first_only()
        } else {
            clients
        };
        let plugin = Plugin {
            spec: spec.clone(),
            manifest,
            clients,
            fast,
            ready_after: started.elapsed(),
            launched,
        };
        tracing::info!(
            plugin = plugin.name(),
            pid = plugin.pid(),
            version = %plugin.manifest.version,
            ready_ms = plugin.ready_after.as_secs_f64() * 1000.0,
            invoke_path = plugin.invoke_path(),
            "ready"
        );
        Ok(plugin)
    }

    /// From a connection to ready: `Describe` and the manifest's checks,
    /// the fast path's connection if the host offered it and the manifest
    /// lists it, the config against the declared schema, `Configure`, one
    /// health check; each bounded by the handshake timeout.
    async fn set_up(
        launched: &Launched,
        clients: &Clients,
        spec: &PluginSpec,
        turn: Option<&Turn>,
    ) -> Result<(Manifest, Option<FastPath>), ErrorKind> {
        let timeout = spec.handshake_timeout;
        let manifest = launched.describe(clients, timeout).await?;
        // A plugin that lists the feature without having been offered the
        // socket is not wrong: it stays on gRPC.
        let fast = if manifest.has_feature(outboard_proto::fastpath::FEATURE) {
            launched.connect_fastpath(timeout).await.transpose()?
        } else {
            None
        };
        manifest.validate_config(&serde_json::Value::Object(spec.config.clone()))?;
        if let Some(turn) = turn {
            turn.wait(&manifest).await?;
        }
        let granted = granted(&spec.name, &manifest, &spec.grant);
        launched.described(&manifest, &granted);
        let configuration = Configuration {
            config: &spec.config,
            granted: &granted,
            instance_name: &spec.name,
        };
        launched
            .configure(clients, configuration, timeout)
            .await
            .map_err(|e| match e {
                CallError::Status {
                    code: tonic::Code::InvalidArgument,
                    message,
                } => ErrorKind::ConfigRejected(message),
                other => ErrorKind::Configure(other),
            })?;
        launched
            .guard()
            .health(&clients.health, timeout)
            .await
            .map_err(ErrorKind::Unhealthy)?;
        Ok((manifest, fast))
    }

    /// The name the host knows the plugin by.
    pub fn name(&self) -> &str {
        self.launched.name()
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
        self.process().pid()
    }

    /// The walls around its process, as the sandbox's plan describes them
    /// (`no_new_privs` at least).
    pub fn sandbox(&self) -> &[crate::sandbox::Wall] {
        self.process().sandbox()
    }

    /// How long it took from spawn to ready.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// Its runtime directory.
    pub fn runtime_dir(&self) -> &std::path::Path {
        self.launched.runtime_dir()
    }

    /// How it exited, if it has.
    pub fn exited(&self) -> Option<Exit> {
        self.process().exit_status()
    }

    /// How `Invoke` reaches it: `"fastpath"` or `"grpc"`.
    pub fn invoke_path(&self) -> &'static str {
        if self.fast.is_some() {
            "fastpath"
        } else {
            "grpc"
        }
    }

    /// Resolves when its fast-path connection closes, with why; never for
    /// a plugin on gRPC. The supervisor takes it for the plugin's death.
    pub async fn fastpath_closed(&self) -> String {
        match &self.fast {
            Some(fast) => fast.closed().await,
            None => std::future::pending().await,
        }
    }

    /// True once its fast-path connection has closed (never for a plugin
    /// on gRPC).
    pub fn fastpath_lost(&self) -> bool {
        self.fast.as_ref().is_some_and(FastPath::is_closed)
    }

    /// Runs `phase` with `context`, cut off after `timeout` (also sent to
    /// the plugin as the call's deadline).
    pub async fn invoke(
        &self,
        phase: &str,
        invocation_id: &str,
        attempt: u32,
        context: prost_types::Struct,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let context = SentContext::proto(context);
        self.invoke_shared(phase, invocation_id, attempt, &context, timeout)
            .await
    }

    /// [`Plugin::invoke`] with a context shared by the calls of a phase:
    /// converted once for all of them. Over the fast path when it has one,
    /// else gRPC; the answer is judged the same either way.
    pub async fn invoke_shared(
        &self,
        phase: &str,
        invocation_id: &str,
        attempt: u32,
        context: &SentContext<'_>,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let deadline = Deadline::after(timeout);
        let mut request = v1::InvokeRequest {
            phase: phase.to_owned(),
            invocation_id: invocation_id.to_owned(),
            attempt,
            deadline: Some(deadline.timestamp()),
            // The caller's `outboard.invoke` span, when traces are exported.
            trace_context: crate::trace::headers(&tracing::Span::current()),
            context: None,
        };
        let guard = self.launched.guard();
        let response = match &self.fast {
            Some(fast) => {
                let call = fast.invoke(&request, context.encoded(), deadline.timeout());
                guard.bounded(deadline, call).await?
            }
            None => {
                request.context = Some(context.to_struct());
                let mut client = self.clients.plugin.clone();
                guard
                    .call(deadline, client.invoke(deadline.request(request)))
                    .await?
            }
        };
        reply(response)
    }

    /// Asks the plugin's health service about the whole server.
    pub async fn check_health(&self, timeout: Duration) -> Result<(), String> {
        self.launched
            .guard()
            .health(&self.clients.health, timeout)
            .await
    }

    fn process(&self) -> &PluginProcess {
        self.launched.process()
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
        let _ = self.process().signal_group(libc::SIGKILL);
        if !self.process().group_gone_within(TERM_GRACE).await {
            tracing::warn!(
                plugin = self.name(),
                "processes of its group outlived SIGKILL: {:?}",
                group_members(self.pid())
            );
        }
        let exit = Exit::describe(self.exited());
        tracing::debug!(plugin = self.name(), ?method, exit, "stopped");
        Stopped { method, exit }
    }

    /// Kills the plugin's whole process group at once, without `Shutdown`:
    /// for a plugin that is unhealthy or being restarted.
    pub async fn kill(&self) -> Stopped {
        self.process().kill_group(TERM_GRACE).await;
        Stopped {
            method: StopMethod::Killed,
            exit: Exit::describe(self.exited()),
        }
    }

    /// Waits until the plugin's process exits; returns its exit, described,
    /// and whether it was a success (status 0).
    pub async fn wait_exit(&self) -> Exit {
        self.process().exited().await
    }

    /// The last lines the plugin wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.launched.stderr_tail()
    }

    async fn shut_down(&self) -> StopMethod {
        if self.process().exit_status().is_some() {
            return StopMethod::AlreadyExited;
        }
        // One grace period covers both the Shutdown call and the exit after
        // it: a plugin that never answers must not get twice as long.
        let grace = self.spec.stop_grace;
        if grace.is_zero() {
            // The operator chose no grace: SIGTERM at once is the plan, not
            // a plugin's failure, so nothing to warn about.
            tracing::debug!(plugin = self.name(), "stop_grace is 0s: sending SIGTERM");
            return self.terminate_group().await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        let request = v1::ShutdownRequest {
            grace: prost_types::Duration::try_from(grace).ok(),
            reason: "host stopping".to_owned(),
        };
        let mut client = self.clients.plugin.clone();
        let asked = tokio::time::timeout_at(
            deadline,
            client.shutdown(Deadline::after(grace).request(request)),
        )
        .await;
        if let Ok(Err(status)) = &asked {
            tracing::debug!(
                plugin = self.name(),
                "Shutdown returned {}",
                status.message()
            );
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if self.process().exited_within(remaining).await.is_some() {
            return StopMethod::Shutdown;
        }
        tracing::warn!(
            plugin = self.name(),
            "did not exit within {} of Shutdown; sending SIGTERM",
            humantime::format_duration(grace)
        );
        self.terminate_group().await
    }

    /// SIGTERM to the group, then SIGKILL if the plugin outlives
    /// [`TERM_GRACE`].
    async fn terminate_group(&self) -> StopMethod {
        let _ = self.process().signal_group(libc::SIGTERM);
        if self.process().exited_within(TERM_GRACE).await.is_some() {
            return StopMethod::Terminated;
        }
        tracing::warn!(plugin = self.name(), "ignored SIGTERM; sending SIGKILL");
        let _ = self.process().signal_group(libc::SIGKILL);
        let _ = self.process().exited_within(TERM_GRACE).await;
        StopMethod::Killed
    }
}

/// What a plugin's answer to `Invoke` says, or why it cannot be used.
fn reply(response: v1::InvokeResponse) -> Result<Reply, CallError> {
    match v1::Outcome::try_from(response.outcome) {
        Ok(v1::Outcome::Unspecified | v1::Outcome::Continue) => Ok(Reply::Continue {
            patch: patch::from_proto(&response.patch)
                .map_err(|e| CallError::InvalidResponse(format!("its patch is invalid: {e}")))?,
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

/// The permissions `manifest` asks for that `grant` allows (`"*"`: all);
/// those withheld are logged, since the plugin may then work with less.
fn granted(plugin: &str, manifest: &Manifest, grant: &[String]) -> Vec<String> {
    let given = manifest.allowed(grant);
    let withheld: Vec<&str> = manifest
        .permissions
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| !given.iter().any(|g| g == name))
        .collect();
    if !withheld.is_empty() {
        tracing::warn!(
            plugin,
            "asks for permissions not granted by its config: {} (add them to its `grant` list)",
            withheld.join(", ")
        );
    }
    given
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
