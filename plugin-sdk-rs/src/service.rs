//! `outboard.v1.PluginService` on top of a [`Plugin`]: wire types in,
//! friendly types to the plugin, wire types out.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use outboard_proto::fastpath;
use outboard_proto::json::struct_to_json;
use outboard_proto::v1::{self, plugin_service_server::PluginService};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::host::HostServices;
use crate::{Config, Health, Invocation, Plugin, PluginError, Reply, deadline, telemetry};

/// How long in-flight calls get when the host's `Shutdown` names no grace.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A request to stop: from the `Shutdown` call or a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopRequest {
    /// How long in-flight calls may still run.
    pub(crate) grace: Duration,
    /// Why, for the log.
    pub(crate) reason: String,
}

/// The state every call shares.
pub(crate) struct PluginServer<P> {
    /// The plugin itself.
    plugin: Arc<P>,
    /// The manifest name, for messages.
    name: Arc<str>,
    /// The manifest as `Describe` answers it.
    manifest: v1::Manifest,
    /// The protocol version agreed in the handshake.
    protocol_version: u32,
    /// Set once, by the first stop request.
    stop: Arc<watch::Sender<Option<StopRequest>>>,
    /// Becomes `true` when the grace is over: calls still running give up.
    abandon: watch::Receiver<bool>,
    /// The server's health service, handed to the plugin in `Configure`.
    health: Health,
    /// The host's services, handed to the plugin in every call.
    host: HostServices,
    /// The manifest's event patterns: an event matching none has no handler.
    event_patterns: Vec<String>,
}

impl<P> std::fmt::Debug for PluginServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginServer")
            .field("name", &self.name)
            .field("protocol_version", &self.protocol_version)
            .finish_non_exhaustive()
    }
}

impl<P: Plugin> PluginServer<P> {
    /// Serves `plugin`, whose validated manifest is `manifest`; `fastpath`
    /// says whether the invoke fast path is served, which the manifest's
    /// features then list (and only then).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        plugin: Arc<P>,
        manifest: &crate::Manifest,
        protocol_version: u32,
        fastpath: bool,
        stop: Arc<watch::Sender<Option<StopRequest>>>,
        abandon: watch::Receiver<bool>,
        health: Health,
        host: HostServices,
    ) -> PluginServer<P> {
        let mut served = manifest.to_proto(protocol_version);
        served.features.retain(|f| f != fastpath::FEATURE);
        if fastpath {
            served.features.push(fastpath::FEATURE.to_owned());
        }
        PluginServer {
            plugin,
            name: Arc::from(manifest.name()),
            manifest: served,
            protocol_version,
            stop,
            abandon,
            health,
            host,
            event_patterns: manifest.event_subscriptions().to_vec(),
        }
    }

    /// Runs the plugin's `invoke` (or `on_event`) until it answers (`Some`), its deadline
    /// passes (`None`), or the shutdown grace runs out (an `UNAVAILABLE`
    /// error). Dropping the work drops the plugin's future: that is how a
    /// call past its deadline or past the grace is cancelled.
    /// `phase` and `id` are the invocation's, for the messages.
    async fn run_bounded(
        &self,
        invocation: Invocation,
        deadline: Option<Instant>,
        phase: &str,
        id: &str,
    ) -> Result<Option<Result<Reply, PluginError>>, Status> {
        let work = crate::plugin::dispatch(&*self.plugin, &self.event_patterns, invocation);
        let timed = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at.into(), work).await.ok(),
                None => Some(work.await),
            }
        };
        let mut abandon = self.abandon.clone();
        tokio::select! {
            outcome = timed => Ok(outcome),
            _ = abandon.wait_for(|gone| *gone) => {
                tracing::warn!(phase, invocation_id = id, "invoke cancelled: shutdown grace is over");
                Err(Status::unavailable(format!(
                    "{} is shutting down and cancelled the call for phase {phase:?} when the \
                     grace period ran out",
                    self.name
                )))
            }
        }
    }

    /// One `Invoke`, whichever way it came (gRPC or the fast path): the
    /// request checked and handed to the plugin inside the call's span, cut
    /// off at the earlier of `call_deadline` (the transport's timeout,
    /// counted from the call's arrival) and the request's own deadline, and
    /// at the end of the shutdown grace; the answer, or the status the call
    /// fails with.
    pub(crate) async fn invoke_call(
        &self,
        request: v1::InvokeRequest,
        call_deadline: Option<Instant>,
    ) -> Result<v1::InvokeResponse, Status> {
        let invocation = invocation_from(request)?.with_host(self.host.clone());
        let deadline = deadline::effective(call_deadline, invocation.deadline);
        // The host's trace continues here: the plugin's work, its spans and
        // the log lines about this call are inside this span.
        let span = telemetry::invoke_span(&self.name, &invocation);
        let answered = self
            .answer(invocation, deadline)
            .instrument(span.clone())
            .await;
        if let Err(status) = &answered {
            telemetry::record_error(&span, status.message());
        }
        answered
    }

    /// The manifest name, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs the plugin's `invoke` within its deadline and the shutdown
    /// grace and turns the outcome into the answer.
    async fn answer(
        &self,
        invocation: Invocation,
        deadline: Option<Instant>,
    ) -> Result<v1::InvokeResponse, Status> {
        let phase = invocation.phase.clone();
        let id = invocation.invocation_id.clone();
        let started = tokio::time::Instant::now();
        let outcome = self.run_bounded(invocation, deadline, &phase, &id).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let reply = match outcome {
            None => {
                tracing::warn!(
                    phase,
                    invocation_id = id,
                    elapsed_ms,
                    "invoke cut off at its deadline"
                );
                return Err(Status::deadline_exceeded(format!(
                    "{} did not finish phase {phase:?} before the deadline (cancelled after \
                     {elapsed_ms} ms)",
                    self.name
                )));
            }
            Some(Err(e)) => {
                tracing::warn!(phase, invocation_id = id, elapsed_ms, error = %e, "invoke failed");
                return Err(e.to_status());
            }
            Some(Ok(reply)) => reply,
        };
        let response = reply.to_proto().map_err(|e| {
            tracing::error!(phase, invocation_id = id, error = %e, "invalid reply");
            e.to_status()
        })?;
        tracing::debug!(
            phase,
            invocation_id = id,
            elapsed_ms,
            ops = response.patch.len(),
            "invoked"
        );
        Ok(response)
    }
}

#[tonic::async_trait]
impl<P: Plugin> PluginService for PluginServer<P> {
    async fn describe(
        &self,
        request: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::DescribeResponse>, Status> {
        let request = request.into_inner();
        tracing::debug!(
            host_version = %request.host_version,
            host_protocol_versions = ?request.host_protocol_versions,
            "describe"
        );
        Ok(Response::new(v1::DescribeResponse {
            manifest: Some(self.manifest.clone()),
        }))
    }

    async fn configure(
        &self,
        request: Request<v1::ConfigureRequest>,
    ) -> Result<Response<v1::ConfigureResponse>, Status> {
        let request = request.into_inner();
        let config = Config {
            values: request
                .config
                .as_ref()
                .map(struct_to_json)
                .unwrap_or_default(),
            granted_permissions: request.granted_permissions,
            instance_name: request.instance_name,
            protocol_version: if request.protocol_version == 0 {
                self.protocol_version
            } else {
                request.protocol_version
            },
            health: self.health.clone(),
            host: self.host.clone(),
        };
        match self.plugin.configure(config).await {
            Ok(()) => Ok(Response::new(v1::ConfigureResponse {})),
            Err(e) => {
                tracing::warn!(error = %e, "configure refused");
                Err(e.to_status())
            }
        }
    }

    async fn invoke(
        &self,
        request: Request<v1::InvokeRequest>,
    ) -> Result<Response<v1::InvokeResponse>, Status> {
        let (_, extensions, request) = request.into_parts();
        let call_deadline = extensions.get::<deadline::CallDeadline>().map(|d| d.0);
        self.invoke_call(request, call_deadline)
            .await
            .map(Response::new)
    }

    async fn shutdown(
        &self,
        request: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::ShutdownResponse>, Status> {
        let request = request.into_inner();
        // A negative grace means "none"; no grace at all means the default.
        let grace = match request.grace.map(Duration::try_from) {
            None => DEFAULT_GRACE,
            Some(Ok(g)) => g,
            Some(Err(_)) => Duration::ZERO,
        };
        let reason = if request.reason.is_empty() {
            "Shutdown call".to_owned()
        } else {
            request.reason
        };
        // The first request wins; a second Shutdown is answered all the same.
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(StopRequest { grace, reason });
            true
        });
        Ok(Response::new(v1::ShutdownResponse {}))
    }
}

/// The plugin's view of an `InvokeRequest`; a deadline that is not a valid
/// time is the host's mistake, refused as `INVALID_ARGUMENT`.
fn invocation_from(request: v1::InvokeRequest) -> Result<Invocation, Status> {
    let deadline = request
        .deadline
        .map(SystemTime::try_from)
        .transpose()
        .map_err(|e| {
            Status::invalid_argument(format!("InvokeRequest.deadline is not a valid time: {e}"))
        })?;
    let context = request
        .context
        .as_ref()
        .map(struct_to_json)
        .unwrap_or_default();
    let mut invocation = Invocation::new(request.phase, serde_json::Value::Object(context))
        .with_invocation_id(request.invocation_id)
        .with_attempt(request.attempt);
    invocation.deadline = deadline;
    invocation.trace_context = request.trace_context;
    Ok(invocation)
}
