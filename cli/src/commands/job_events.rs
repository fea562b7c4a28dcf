//! `job.started` and `job.finished` (PROTOCOL.md §17.6) for a job run by
//! `outboard run` on its own host: the phases go through [`Evented`], which
//! publishes `job.started` at the first phase (when the job's id is known,
//! from its context) and counts the job on the host as before.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use outboard_host::job::{JobReport, Phases};
use outboard_host::{Host, JobResult, Report};
use outboard_services::events::Events;
use serde_json::{Map, Value, json};

/// A host's phases, publishing `job.started` before the first.
pub(crate) struct Evented<'a> {
    /// The host the phases run on.
    pub(crate) host: &'a Host,
    /// Where the events go.
    pub(crate) events: &'a Events,
    /// The job's command line.
    pub(crate) command: Vec<String>,
    /// Set once `job.started` is out.
    started: AtomicBool,
}

impl<'a> Evented<'a> {
    /// `host`'s phases for the job running `command`.
    pub(crate) fn new(host: &'a Host, events: &'a Events, command: Vec<String>) -> Evented<'a> {
        Evented {
            host,
            events,
            command,
            started: AtomicBool::new(false),
        }
    }
}

impl Phases for Evented<'_> {
    async fn dispatch(&self, phase: &str, context: Map<String, Value>) -> Report {
        if !self.started.swap(true, Ordering::SeqCst) {
            let job = context.get("job_id").cloned().unwrap_or(Value::Null);
            let payload = json!({"job": job, "command": self.command});
            self.events.publish_host("job.started", payload).await;
        }
        self.host.dispatch(phase, context).await
    }

    fn record_job(&self, job_id: &str, result: JobResult) -> impl Future<Output = ()> + Send {
        Phases::record_job(self.host, job_id, result)
    }
}

/// `job.finished` for `report`.
pub(crate) async fn finished(events: &Events, report: &JobReport) {
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    let payload = json!({
        "job": report.job_id,
        "command": report.command,
        "status": JobResult::of(report).as_str(),
        "exit_code": report.command_exit_code,
        "duration_ms": duration_ms,
    });
    events.publish_host("job.finished", payload).await;
}
