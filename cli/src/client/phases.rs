//! A daemon as the place a job's phases run (`outboard run --daemon`):
//! each phase is one Invoke call with the job's own context; the command
//! runs here; once the job is over, its result is recorded with the daemon
//! (RecordJob), which counts jobs by result.

use std::future::Future;
use std::time::Duration;

use outboard_host::job::{self, Phases};
use outboard_host::{JobResult, Report};
use outboard_proto::control::v1::{InvokeRequest, RecordJobRequest};
use outboard_proto::json::json_to_struct;
use serde_json::{Map, Value};

use super::Daemon;

/// How long recording a job's result may hold up the job's end: the job is
/// done, and its result is the daemon's figure, not the job's.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Dispatches a job's phases through a daemon's Invoke.
#[derive(Debug)]
pub(crate) struct DaemonPhases {
    /// The daemon.
    pub(crate) daemon: Daemon,
    /// The job's command line, for the daemon's `job.finished` event.
    pub(crate) command: Vec<String>,
    /// When the job began, for the event's `duration_ms`.
    pub(crate) began: std::time::Instant,
}

impl DaemonPhases {
    /// `phase` on the daemon: its report, or a failed phase saying why the
    /// daemon could not give one (gone, refused, a report that does not
    /// read). Dropping the future drops the call, which cancels it.
    async fn invoke(&self, phase: String, context: Map<String, Value>) -> Report {
        let request = InvokeRequest {
            phase: phase.clone(),
            context: Some(json_to_struct(&context)),
        };
        let mut rpc = self.daemon.rpc.clone();
        let why = match rpc.invoke(super::traced(request)).await {
            Ok(response) => match response.into_inner().report {
                Some(report) => match outboard_daemon::wire::report_from_proto(report) {
                    Ok(report) => return report,
                    Err(err) => err.to_string(),
                },
                None => "the daemon answered without a report".to_owned(),
            },
            Err(status) => super::call_error(&self.daemon.socket, &status).to_string(),
        };
        job::refused(
            &phase,
            context,
            &format!("phase {phase} could not run on the daemon: {why}"),
        )
    }

    /// Tells the daemon how the job `job_id` ended; a failure is only
    /// logged (the job's own result stands).
    async fn record(&self, job_id: String, result: JobResult) {
        let took = self.began.elapsed();
        let request = RecordJobRequest {
            job_id,
            result: outboard_daemon::wire::job_result_to_proto(result) as i32,
            command: self.command.clone(),
            // The command's exit code is not known to the phases: it is in
            // the job's report, on this side.
            exit_code: None,
            duration: Some(prost_types::Duration {
                seconds: i64::try_from(took.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(took.subsec_nanos()).unwrap_or(0),
            }),
        };
        let mut rpc = self.daemon.rpc.clone();
        match tokio::time::timeout(RECORD_TIMEOUT, rpc.record_job(request)).await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::warn!(
                "the job's result was not recorded with the daemon: {}",
                super::call_error(&self.daemon.socket, &status)
            ),
            Err(_) => tracing::warn!(
                "the job's result was not recorded with the daemon: no answer within {}",
                humantime::format_duration(RECORD_TIMEOUT)
            ),
        }
    }
}

impl Phases for DaemonPhases {
    fn dispatch(
        &self,
        phase: &str,
        context: Map<String, Value>,
    ) -> impl Future<Output = Report> + Send {
        self.invoke(phase.to_owned(), context)
    }

    fn record_job(&self, job_id: &str, result: JobResult) -> impl Future<Output = ()> + Send {
        self.record(job_id.to_owned(), result)
    }
}
