//! A daemon as the place a job's phases run (`outboard run --daemon`):
//! each phase is one Invoke call with the job's own context; the command
//! runs here.

use std::future::Future;

use outboard_host::Report;
use outboard_host::job::{self, Phases};
use outboard_proto::control::v1::InvokeRequest;
use outboard_proto::json::json_to_struct;
use serde_json::{Map, Value};

use super::Daemon;

/// Dispatches a job's phases through a daemon's Invoke.
#[derive(Debug)]
pub(crate) struct DaemonPhases {
    /// The daemon.
    pub(crate) daemon: Daemon,
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
}

impl Phases for DaemonPhases {
    fn dispatch(
        &self,
        phase: &str,
        context: Map<String, Value>,
    ) -> impl Future<Output = Report> + Send {
        self.invoke(phase.to_owned(), context)
    }
}
