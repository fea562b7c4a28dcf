//! `outboard.control.v1.ControlService`: each RPC a thin call into the
//! host, the daemon's journal or the log book.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use outboard_host::{Escaped, State, Supervisor};
use outboard_proto::control::v1 as wire;
use outboard_proto::control::v1::control_service_server::ControlService;
use outboard_proto::json::struct_to_json;
use outboard_proto::names::{invalid_phase_name, is_valid_phase_name};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::events;
use super::journal::concerns;
use super::status::{status_of, with_usage};
use super::wait::{until_settled, wait_of};
use super::{Daemon, ReloadFailure, to_the_end};
use crate::logs::LogLine;
use crate::wire::{job_result_from_proto, plan_to_proto, report_to_proto, timestamp};

/// Messages a stream may have queued for a slow reader before the
/// producer waits for it.
const STREAM_QUEUE: usize = 64;

/// The service over one daemon.
#[derive(Debug)]
pub(super) struct Service {
    daemon: Daemon,
}

impl Service {
    /// The service of `daemon`.
    pub(super) fn new(daemon: Daemon) -> Service {
        Service { daemon }
    }

    /// `UNAVAILABLE` once the daemon shuts down.
    fn open(&self) -> Result<(), Status> {
        if self.daemon.closing() {
            return Err(Status::unavailable(
                "the outboard daemon is shutting down and takes no new work",
            ));
        }
        Ok(())
    }

    /// The plugin called `name`, or `NOT_FOUND` naming it.
    fn plugin(&self, name: &str) -> Result<Arc<Supervisor>, Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("no plugin named: give its name"));
        }
        self.daemon
            .host()
            .plugin(name)
            .ok_or_else(|| not_found(name))
    }

    /// `plugin`'s status as of `status`, with its log counts (no usage).
    fn status_of(&self, plugin: &Supervisor, status: &outboard_host::Status) -> wire::PluginStatus {
        status_of(plugin, status, None, &self.daemon.inner.options.logs)
    }

    /// The daemon's own status.
    fn daemon_status(&self) -> wire::DaemonStatus {
        let inner = &self.daemon.inner;
        let socket = inner.socket.lock().unwrap_or_else(|e| e.into_inner());
        wire::DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: Some(timestamp(inner.started_at)),
            config_source: inner.options.config_source.clone(),
            control_socket: socket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reloads: inner.reloads.load(std::sync::atomic::Ordering::Relaxed),
            in_flight: inner.host.in_flight() as u64,
            jobs: inner.host.figures().jobs.by_result.into_iter().collect(),
        }
    }

    /// Restarts `plugin` and waits up to `wait` for it to settle. A
    /// disabled plugin stays down: an operator's stop is undone only by a
    /// start.
    async fn restart_one(&self, plugin: Arc<Supervisor>, wait: Duration) -> wire::PluginStatus {
        let changes = plugin.subscribe();
        let before = plugin.status();
        if before.state == State::Disabled {
            return self.status_of(&plugin, &before);
        }
        self.daemon.host().restart(plugin.name());
        let status = until_settled(&plugin, changes, before.starts, wait).await;
        self.status_of(&plugin, &status)
    }
}

/// `NOT_FOUND` naming the plugin.
fn not_found(name: &str) -> Status {
    Status::not_found(format!(
        "no plugin called {name:?} runs in this daemon; `outboard status` lists those that do"
    ))
}

/// Sends on `tx` until the reader hangs up; false once it has.
async fn send<T>(tx: &mpsc::Sender<Result<T, Status>>, item: T) -> bool {
    tx.send(Ok(item)).await.is_ok()
}

#[tonic::async_trait]
impl ControlService for Service {
    async fn get_status(
        &self,
        request: Request<wire::GetStatusRequest>,
    ) -> Result<Response<wire::GetStatusResponse>, Status> {
        let name = request.into_inner().plugin;
        let plugins = if name.is_empty() {
            self.daemon.host().plugins()
        } else {
            vec![self.plugin(&name)?]
        };
        let plugins = with_usage(
            plugins,
            &self.daemon.inner.sampler,
            &self.daemon.inner.options.logs,
        )
        .await;
        Ok(Response::new(wire::GetStatusResponse {
            daemon: Some(self.daemon_status()),
            plugins,
        }))
    }

    type WatchStream = ReceiverStream<Result<wire::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<wire::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let wire::WatchRequest { plugin, follow } = request.into_inner();
        let plugins = if plugin.is_empty() {
            self.daemon.host().plugins()
        } else {
            vec![self.plugin(&plugin)?]
        };
        // Subscribed before the snapshot is taken: a change in between is
        // sent after it, never lost.
        let (recent, mut live) = self.daemon.inner.journal.read_and_follow();
        let snapshot = with_usage(
            plugins,
            &self.daemon.inner.sampler,
            &self.daemon.inner.options.logs,
        )
        .await;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut closing = self.daemon.inner.closing.subscribe();
        tokio::spawn(async move {
            // Oldest first: the recorded events, then each status as it is
            // now (stamped now), then what follows.
            let wanted = |e: &wire::WatchResponse| plugin.is_empty() || concerns(e, &plugin);
            for event in recent.iter().filter(|e| wanted(e)) {
                if !send(&tx, (**event).clone()).await {
                    return;
                }
            }
            let now = Some(timestamp(SystemTime::now()));
            for status in snapshot {
                let event = wire::WatchResponse {
                    time: now,
                    event: Some(wire::watch_response::Event::PluginStatus(status)),
                };
                if !send(&tx, event).await {
                    return;
                }
            }
            if !follow {
                return;
            }
            loop {
                let event = tokio::select! {
                    next = live.recv() => next,
                    _ = closing.wait_for(|c| *c) => return,
                    () = tx.closed() => return,
                };
                let event = match event {
                    Ok(event) if wanted(&event) => (*event).clone(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => wire::WatchResponse {
                        time: Some(timestamp(SystemTime::now())),
                        event: Some(wire::watch_response::Event::Missed(missed)),
                    },
                    Err(RecvError::Closed) => return,
                };
                if !send(&tx, event).await {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type GetLogsStream = ReceiverStream<Result<wire::GetLogsResponse, Status>>;

    async fn get_logs(
        &self,
        request: Request<wire::GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        let wire::GetLogsRequest {
            plugin,
            lines,
            since,
            follow,
        } = request.into_inner();
        self.plugin(&plugin)?;
        let lines = (lines > 0).then_some(lines as usize);
        let since = since.filter(|d| d.seconds > 0 || d.nanos > 0).map(|d| {
            SystemTime::now()
                .checked_sub(age_of(&d))
                .unwrap_or(UNIX_EPOCH)
        });
        let logs = &self.daemon.inner.options.logs;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let (recent, live) = if follow {
            let (recent, live) = logs.follow(&plugin, lines, since);
            (recent, Some(live))
        } else {
            (logs.read(&plugin, lines, since), None)
        };
        let mut closing = self.daemon.inner.closing.subscribe();
        tokio::spawn(async move {
            for line in &recent {
                if !send(&tx, log_line(line)).await {
                    return;
                }
            }
            let Some(mut live) = live else { return };
            loop {
                let line = tokio::select! {
                    next = live.recv() => next,
                    _ = closing.wait_for(|c| *c) => return,
                    () = tx.closed() => return,
                };
                match line {
                    Ok(line) => {
                        if !send(&tx, log_line(&line)).await {
                            return;
                        }
                    }
                    // The sequence numbers show the gap to the reader.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn restart_plugin(
        &self,
        request: Request<wire::RestartPluginRequest>,
    ) -> Result<Response<wire::RestartPluginResponse>, Status> {
        self.open()?;
        let wire::RestartPluginRequest { plugin, all, wait } = request.into_inner();
        let wait = wait_of(wait.as_ref());
        let targets = match (all, plugin.is_empty()) {
            (true, true) => self.daemon.host().plugins(),
            (false, false) => {
                let one = self.plugin(&plugin)?;
                if one.status().state == State::Disabled {
                    return Err(Status::failed_precondition(format!(
                        "plugin {plugin:?} was stopped by an operator; `outboard start {plugin}` \
                         brings it back"
                    )));
                }
                vec![one]
            }
            (true, false) => {
                return Err(Status::invalid_argument(format!(
                    "restart names plugin {plugin:?} and asks for all: give one or the other"
                )));
            }
            (false, true) => {
                return Err(Status::invalid_argument(
                    "restart names no plugin: give its name, or ask for all",
                ));
            }
        };
        let restarts = targets.into_iter().map(|p| self.restart_one(p, wait));
        let mut plugins = join_all(restarts).await;
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(wire::RestartPluginResponse { plugins }))
    }

    async fn stop_plugin(
        &self,
        request: Request<wire::StopPluginRequest>,
    ) -> Result<Response<wire::StopPluginResponse>, Status> {
        self.open()?;
        let name = request.into_inner().plugin;
        let plugin = self.plugin(&name)?;
        // Run to the end even if the caller hangs up: no half-done disable.
        let host = self.daemon.host().clone();
        let target = name.clone();
        to_the_end(async move { host.disable(&target).await })
            .await
            .map_err(Status::internal)?
            .map_err(|_| not_found(&name))?;
        Ok(Response::new(wire::StopPluginResponse {
            plugin: Some(self.status_of(&plugin, &plugin.status())),
        }))
    }

    async fn start_plugin(
        &self,
        request: Request<wire::StartPluginRequest>,
    ) -> Result<Response<wire::StartPluginResponse>, Status> {
        self.open()?;
        let wire::StartPluginRequest { plugin: name, wait } = request.into_inner();
        let plugin = self.plugin(&name)?;
        let changes = plugin.subscribe();
        let before = plugin.status();
        // Run to the end even if the caller hangs up: no half-done enable.
        let host = self.daemon.host().clone();
        let target = name.clone();
        to_the_end(async move { host.enable(&target).await })
            .await
            .map_err(Status::internal)?
            .map_err(|_| not_found(&name))?;
        // A plugin that was not disabled is left as it is: nothing to wait
        // for.
        let status = if before.state == State::Disabled {
            until_settled(&plugin, changes, before.starts, wait_of(wait.as_ref())).await
        } else {
            plugin.status()
        };
        Ok(Response::new(wire::StartPluginResponse {
            plugin: Some(self.status_of(&plugin, &status)),
        }))
    }

    async fn reload(
        &self,
        request: Request<wire::ReloadRequest>,
    ) -> Result<Response<wire::ReloadResponse>, Status> {
        self.open()?;
        let dry_run = request.into_inner().dry_run;
        match self.daemon.reload(dry_run).await {
            Ok((plan, applied)) => Ok(Response::new(wire::ReloadResponse {
                plan: Some(plan_to_proto(&plan)),
                applied,
            })),
            Err(ReloadFailure::ShuttingDown) => Err(Status::unavailable(
                "the outboard daemon is shutting down and takes no new work",
            )),
            // The failure says once that nothing changed, and why.
            Err(failure) => Err(Status::failed_precondition(failure.to_string())),
        }
    }

    async fn invoke(
        &self,
        request: Request<wire::InvokeRequest>,
    ) -> Result<Response<wire::InvokeResponse>, Status> {
        self.open()?;
        // The caller's span (`run --daemon`'s job) is the dispatch's parent.
        let parent = outboard_host::trace::remote_parent(
            |key| request.metadata().get(key).and_then(|v| v.to_str().ok()),
            "an Invoke call's metadata",
        );
        let wire::InvokeRequest { phase, context } = request.into_inner();
        if !is_valid_phase_name(&phase) {
            return Err(Status::invalid_argument(invalid_phase_name(&phase)));
        }
        let context = context.as_ref().map(struct_to_json).unwrap_or_default();
        let dispatch = self.daemon.host().dispatch(&phase, context);
        let report = outboard_host::trace::under(parent, dispatch).await;
        Ok(Response::new(wire::InvokeResponse {
            report: Some(report_to_proto(&report)),
        }))
    }

    async fn record_job(
        &self,
        request: Request<wire::RecordJobRequest>,
    ) -> Result<Response<wire::RecordJobResponse>, Status> {
        let request = request.into_inner();
        // Counted even while shutting down: the job's phases ran here.
        let Some(result) = job_result_from_proto(request.result) else {
            return Err(Status::invalid_argument(format!(
                "unknown job result {}; this daemon counts {}",
                request.result,
                outboard_host::JobResult::ALL.map(|r| r.as_str()).join(", ")
            )));
        };
        self.daemon.host().job_ended(result);
        // The id is the client's: bounded and escaped before it is logged.
        let id: String = request.job_id.chars().take(64).collect();
        tracing::debug!(job_id = %Escaped::line(&id), result = result.as_str(), "job recorded");
        if let Some(events) = &self.daemon.inner.options.events {
            events::job_finished(events, &request, result.as_str()).await;
        }
        Ok(Response::new(wire::RecordJobResponse {}))
    }

    async fn emit(
        &self,
        request: Request<wire::EmitRequest>,
    ) -> Result<Response<wire::EmitResponse>, Status> {
        self.open()?;
        let events = events::events(self.daemon.inner.options.events.as_ref())?;
        events::emit(events, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_dead_letters(
        &self,
        request: Request<wire::ListDeadLettersRequest>,
    ) -> Result<Response<wire::ListDeadLettersResponse>, Status> {
        let events = events::events(self.daemon.inner.options.events.as_ref())?;
        events::list(events, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn retry_dead_letter(
        &self,
        request: Request<wire::RetryDeadLetterRequest>,
    ) -> Result<Response<wire::RetryDeadLetterResponse>, Status> {
        self.open()?;
        let events = events::events(self.daemon.inner.options.events.as_ref())?;
        events::retry(events, request.into_inner())
            .await
            .map(Response::new)
    }
}

/// A request's `since` as a duration back from now (negative reads as 0).
fn age_of(since: &prost_types::Duration) -> Duration {
    let secs = u64::try_from(since.seconds).unwrap_or(0);
    let nanos = u32::try_from(since.nanos).unwrap_or(0);
    Duration::new(secs, 0).saturating_add(Duration::from_nanos(u64::from(nanos)))
}

/// A log line as the wire's.
fn log_line(line: &LogLine) -> wire::GetLogsResponse {
    // "stdout" or "stderr": the variant's name, as the host's records
    // name the stream.
    let stream = format!("{:?}", line.stream).to_lowercase();
    wire::GetLogsResponse {
        line: Some(wire::LogLine {
            time: Some(timestamp(line.time)),
            stream,
            level: line.level_name().to_owned(),
            message: line.message.to_string(),
            fields_json: line.fields.as_deref().unwrap_or_default().to_owned(),
            sequence: line.sequence,
        }),
    }
}
