//! The seam between the supervisor and what it supervises: a [`Launcher`]
//! starts instances from a spec, an [`Instance`] is one running plugin as
//! far as supervision and dispatch need it.
//!
//! The real pair is [`PluginLauncher`] and [`Plugin`] (a process spoken to
//! over gRPC); tests put an in-memory pair in its place (see `fake`), so that
//! restarts, backoff and health decisions run under `tokio::time::pause()`
//! without a process.
//!
//! Both are used as trait objects (`Arc<dyn Instance>`), not as type
//! parameters: `Supervisor`, `Host` and the dispatch routes then keep one
//! type each, and the price is one boxed future per call, small next to a
//! gRPC round trip.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config::PluginSpec;
use crate::context::SentContext;
use crate::depends::Turn;
use crate::error::{CallError, Error};
use crate::instance::{Plugin, Reply};
use crate::launch::{Attach, Exit};
use crate::manifest::Manifest;
use crate::sandbox::Wall;

/// One running plugin, ready for calls: what the supervisor watches and
/// what dispatch calls.
pub trait Instance: fmt::Debug + Send + Sync + 'static {
    /// The name the host knows the plugin by.
    fn name(&self) -> &str;

    /// The spec it was started from.
    fn spec(&self) -> &PluginSpec;

    /// Its validated manifest.
    fn manifest(&self) -> &Manifest;

    /// Its process id.
    fn pid(&self) -> u32;

    /// The walls around its process; none for an instance that is not a
    /// process of its own.
    fn sandbox(&self) -> &[Wall] {
        &[]
    }

    /// How long its start took, from spawn to ready.
    fn ready_after(&self) -> Duration;

    /// True once its process has exited (the supervisor may not know yet).
    fn has_exited(&self) -> bool;

    /// Resolves when its process exits.
    fn wait_exit(&self) -> BoxFuture<'_, Exit>;

    /// Resolves, with why, when a connection it cannot work without is
    /// lost while its process runs on (its fast path's): the supervisor
    /// takes that for its death. Never, by default.
    fn wait_lost(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }

    /// How `Invoke` reaches it: `"fastpath"` or `"grpc"`.
    fn invoke_path(&self) -> &'static str {
        "grpc"
    }

    /// Asks it whether it is serving, within `timeout`; why not otherwise.
    fn check_health(&self, timeout: Duration) -> BoxFuture<'_, Result<(), String>>;

    /// Runs `phase` with `context` (shared by the calls of a phase),
    /// cut off after `timeout`.
    fn invoke<'a>(
        &'a self,
        phase: &'a str,
        invocation_id: &'a str,
        attempt: u32,
        context: &'a SentContext<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, CallError>>;

    /// Stops it gracefully (asked, then signalled); resolves when it is gone.
    fn terminate(&self) -> BoxFuture<'_, ()>;

    /// Kills it at once, for an instance that is unhealthy or already dead;
    /// resolves when it is gone.
    fn kill(&self) -> BoxFuture<'_, ()>;

    /// The last lines it wrote to stderr.
    fn stderr_tail(&self) -> Vec<String>;
}

/// Starts instances: the supervisor's way to bring a plugin back.
pub trait Launcher: fmt::Debug + Send + Sync + 'static {
    /// Starts the plugin `spec` describes and brings it to ready. Dropping
    /// the future before it resolves must leave nothing running.
    fn launch<'a>(
        &'a self,
        spec: &'a PluginSpec,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, Error>>;

    /// [`Launcher::launch`] as one of plugins starting together: `Configure`
    /// waits for `turn`. This default waits after the launch instead (the
    /// start is refused the same, but not ordered).
    fn launch_in_turn<'a>(
        &'a self,
        spec: &'a PluginSpec,
        turn: &'a Turn,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, Error>> {
        Box::pin(async move {
            let instance = self.launch(spec).await?;
            if let Err(kind) = turn.wait(instance.manifest()).await {
                instance.terminate().await;
                return Err(Error::new(instance.name(), kind));
            }
            Ok(instance)
        })
    }
}

/// The real launcher: a plugin process, through [`Plugin::start`]; with an
/// [`Attach`], every launch (restarts included) is given what it binds.
#[derive(Clone, Default)]
pub struct PluginLauncher {
    /// What each launch is given before its spawn; none by default.
    attach: Option<Arc<dyn Attach>>,
}

impl PluginLauncher {
    /// A launcher giving every launch what `attach` binds (host services).
    pub fn attaching(attach: Arc<dyn Attach>) -> PluginLauncher {
        PluginLauncher {
            attach: Some(attach),
        }
    }
}

impl fmt::Debug for PluginLauncher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLauncher")
            .field("attaching", &self.attach.is_some())
            .finish()
    }
}

impl Launcher for PluginLauncher {
    fn launch<'a>(
        &'a self,
        spec: &'a PluginSpec,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, Error>> {
        Box::pin(async move {
            let plugin = Plugin::start_attached(spec, None, self.attach.as_deref()).await?;
            Ok(Arc::new(plugin) as Arc<dyn Instance>)
        })
    }

    fn launch_in_turn<'a>(
        &'a self,
        spec: &'a PluginSpec,
        turn: &'a Turn,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, Error>> {
        Box::pin(async move {
            let plugin = Plugin::start_attached(spec, Some(turn), self.attach.as_deref()).await?;
            Ok(Arc::new(plugin) as Arc<dyn Instance>)
        })
    }
}

impl Instance for Plugin {
    fn name(&self) -> &str {
        Plugin::name(self)
    }

    fn spec(&self) -> &PluginSpec {
        Plugin::spec(self)
    }

    fn manifest(&self) -> &Manifest {
        Plugin::manifest(self)
    }

    fn pid(&self) -> u32 {
        Plugin::pid(self)
    }

    fn sandbox(&self) -> &[Wall] {
        Plugin::sandbox(self)
    }

    fn ready_after(&self) -> Duration {
        Plugin::ready_after(self)
    }

    fn has_exited(&self) -> bool {
        // A dead fast path is a dead plugin: calls wait for the next one.
        self.exited().is_some() || self.fastpath_lost()
    }

    fn wait_exit(&self) -> BoxFuture<'_, Exit> {
        Box::pin(Plugin::wait_exit(self))
    }

    fn wait_lost(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let why = Plugin::fastpath_closed(self).await;
            format!("its fast-path connection closed: {why}")
        })
    }

    fn invoke_path(&self) -> &'static str {
        Plugin::invoke_path(self)
    }

    fn check_health(&self, timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(Plugin::check_health(self, timeout))
    }

    fn invoke<'a>(
        &'a self,
        phase: &'a str,
        invocation_id: &'a str,
        attempt: u32,
        context: &'a SentContext<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(Plugin::invoke_shared(
            self,
            phase,
            invocation_id,
            attempt,
            context,
            timeout,
        ))
    }

    fn terminate(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            Plugin::terminate(self).await;
        })
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            Plugin::kill(self).await;
        })
    }

    fn stderr_tail(&self) -> Vec<String> {
        Plugin::stderr_tail(self)
    }
}
