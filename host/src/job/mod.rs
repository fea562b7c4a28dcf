//! The job runner behind `outboard run -- CMD`: the job profile's phases
//! around one command.
//!
//! pre_validation, post_validation, pre_source_prep, post_source_prep and
//! pre_container run in order, one context carried through all of them.
//! Then the command runs with the environment and argv as patched
//! (`context.env`, `context.command`); post_container receives its
//! `exit_code`; on_error runs when anything failed (a phase, a veto, the
//! command); cleanup always runs last. Once a phase fails, the phases
//! before the command are not run; the command does not run either.
//!
//! The first SIGINT or SIGTERM stops the job like a failure (SIGTERM is
//! passed on to the command; a terminal's Ctrl-C reaches it directly) and
//! on_error and cleanup still run. A second signal is the CLI's to handle.
//!
//! Here: the phases in order and the report, and the seam they run
//! through ([`Phases`]: a [`Host`] here, or a daemon's). `command`: running the
//! command. `failure`: what stops a job ([`FailureKind`]) and the exit
//! status it becomes. `mask`: the report shows each value only as the job
//! left it, so a secret a plugin redacted is not in an earlier phase's
//! context or patch ([`MASK`]).

mod command;
mod failure;
mod mask;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tracing::Instrument;
use tracing::field::Empty;

use crate::dispatch::Report;
use crate::figures::JobResult;
use crate::host::Host;
use crate::trace;

pub use mask::MASK;

pub use failure::{
    EXIT_HOST_ERROR, EXIT_INTERRUPTED, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_PLUGIN_FAILED,
    EXIT_VETOED, Failure, FailureKind,
};

/// The phases before the command, in order.
pub const BEFORE: [&str; 5] = [
    "pre_validation",
    "post_validation",
    "pre_source_prep",
    "post_source_prep",
    "pre_container",
];

/// What a job should run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The environment the context starts with (usually the host's own).
    pub env: Map<String, Value>,
    /// Run the phases but not the command.
    pub dry_run: bool,
}

/// Everything a job did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The job's id, also in every phase's context as `job_id`.
    pub job_id: String,
    /// `succeeded` or `failed`.
    pub status: Status,
    /// The exit status `outboard run` exits with.
    pub exit_code: u8,
    /// The command's exit code (128 + N for signal N), if it ran.
    pub command_exit_code: Option<i32>,
    /// What stopped or failed the job, if anything.
    pub failure: Option<Failure>,
    /// Every phase dispatched, in order; the command sits between
    /// pre_container and post_container. Values a later plugin replaced or
    /// removed are masked; a phase with no subscribers has no context.
    pub phases: Vec<Report>,
    /// The command as it ran (after the plugins' patches).
    pub command: Vec<String>,
    /// How long the command ran.
    #[serde(rename = "command_ms", serialize_with = "millis_opt")]
    pub command_duration: Option<Duration>,
    /// True if the command was not run on purpose.
    pub dry_run: bool,
    /// The whole job.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

/// Whether the job succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every phase passed and the command exited 0.
    Succeeded,
    /// Something failed: see [`JobReport::failure`].
    Failed,
}

impl Status {
    /// The status as the report's JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }
}

/// Where a job's phases run: a [`Host`] in this process, or a daemon's
/// host reached over its control socket (`outboard run --daemon`). Either
/// way the command runs here.
pub trait Phases {
    /// Dispatches `phase` with `context` and reports what it did. Never
    /// fails: what keeps the phase from running (a host shutting down, a
    /// daemon gone) is a failed verdict saying why (see [`refused`]).
    /// Dropping the future cancels the dispatch.
    fn dispatch(
        &self,
        phase: &str,
        context: Map<String, Value>,
    ) -> impl Future<Output = Report> + Send;

    /// Records how the job `job_id` ended where its phases ran, for the
    /// jobs by result: a host counts it in its figures, a daemon's client
    /// tells the daemon. Never fails: a result that cannot be recorded is
    /// only logged.
    fn record_job(&self, job_id: &str, result: JobResult) -> impl Future<Output = ()> + Send;
}

impl Phases for Host {
    fn dispatch(
        &self,
        phase: &str,
        context: Map<String, Value>,
    ) -> impl Future<Output = Report> + Send {
        Host::dispatch(self, phase, context)
    }

    fn record_job(&self, _job_id: &str, result: JobResult) -> impl Future<Output = ()> + Send {
        self.job_ended(result);
        std::future::ready(())
    }
}

/// The report of a phase that could not run at all: failed, naming no
/// plugin, saying `why`, the context unchanged (on_error and cleanup still
/// get it).
pub fn refused(phase: &str, context: Map<String, Value>, why: &str) -> Report {
    crate::dispatch::refused(phase, context, why)
}

/// Runs `job`, its phases on `host`. `interrupted` turns true on SIGINT /
/// SIGTERM.
///
/// The job is one `outboard.job` span, whose parent is the `TRACEPARENT`
/// (and `TRACESTATE`) of the job's environment, when it has a valid one:
/// a job started by a traced process joins that trace.
pub async fn run(host: &impl Phases, job: Job, interrupted: watch::Receiver<bool>) -> JobReport {
    let job_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        target: trace::TARGET,
        "outboard.job",
        outboard.job.id = &*job_id,
        outboard.dry_run = job.dry_run,
        outboard.status = Empty,
        outboard.exit_code = Empty,
    );
    let env = &job.env;
    trace::set_parent(&span, || {
        trace::remote_parent(
            |key| env.get(&key.to_ascii_uppercase()).and_then(Value::as_str),
            "the job's environment",
        )
    });
    let report = run_phases(host, job_id, job, interrupted)
        .instrument(span.clone())
        .await;
    if !span.is_disabled() {
        span.record("outboard.status", report.status.as_str());
        span.record("outboard.exit_code", i64::from(report.exit_code));
        if let Some(failure) = &report.failure {
            trace::fail(&span, &failure.message);
        }
    }
    report
}

/// The job itself: the phases, the command, the report.
async fn run_phases(
    host: &impl Phases,
    job_id: String,
    job: Job,
    mut interrupted: watch::Receiver<bool>,
) -> JobReport {
    let started = Instant::now();
    let dry_run = job.dry_run;
    let mut context = initial_context(&job_id, job);
    let mut phases = Vec::new();
    let mut failure = run_before(host, &mut context, &mut interrupted, &mut phases).await;

    let mut command = string_list(context.get("command")).unwrap_or_default();
    let mut command_exit_code = None;
    let mut command_duration = None;
    if failure.is_none() && !dry_run {
        let ran = command::run(&context, &mut interrupted).await;
        command = ran.command;
        command_duration = ran.duration;
        command_exit_code = ran.exit_code;
        failure = ran.failure;
        if let Some(code) = command_exit_code {
            context.insert("exit_code".into(), json!(code));
        }
    }

    // post_container runs whenever the command ran (or would have, in a
    // dry run); not after a phase before it stopped the job.
    let stopped_before_command = failure.is_some() && command_exit_code.is_none();
    if !stopped_before_command {
        let report = host.dispatch("post_container", context.clone()).await;
        if failure.is_none() {
            failure = Failure::of_phase(&report);
        }
        context = object(report.context.clone());
        phases.push(report);
    }

    // A signal that came after the command (during post_container) still
    // stops the job the orderly way.
    if failure.is_none() && *interrupted.borrow() {
        failure = Some(Failure::interrupted_in("post_container"));
    }

    if let Some(failure) = &failure {
        let report = run_on_error(host, failure, &mut context).await;
        phases.push(report);
    }

    let status = if failure.is_some() {
        Status::Failed
    } else {
        Status::Succeeded
    };
    context.insert("status".into(), json!(status));
    phases.push(host.dispatch("cleanup", context).await);
    let last = phases.last().map(|r| r.context.clone()).unwrap_or_default();
    mask::mask(&mut phases, &last);

    let report = JobReport {
        job_id,
        status,
        exit_code: failure::exit_code(failure.as_ref(), command_exit_code),
        command_exit_code,
        failure,
        phases,
        command,
        command_duration,
        dry_run,
        duration: started.elapsed(),
    };
    host.record_job(&report.job_id, JobResult::of(&report))
        .await;
    report
}

/// The context the first phase sees.
fn initial_context(job_id: &str, job: Job) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("job_id".into(), json!(job_id));
    context.insert("command".into(), json!(job.command));
    context.insert("env".into(), Value::Object(job.env));
    context.insert("metadata".into(), json!({}));
    context.insert("dry_run".into(), json!(job.dry_run));
    context
}

/// The phases before the command, in order, until one fails or a signal
/// comes; returns what stopped them.
async fn run_before(
    host: &impl Phases,
    context: &mut Map<String, Value>,
    interrupted: &mut watch::Receiver<bool>,
    phases: &mut Vec<Report>,
) -> Option<Failure> {
    for phase in BEFORE {
        let failure = match dispatch_unless_interrupted(host, phase, context, interrupted).await {
            Some(report) => {
                let failure = Failure::of_phase(&report);
                phases.push(report);
                failure
            }
            None => Some(Failure::interrupted_in(phase)),
        };
        if failure.is_some() {
            return failure;
        }
    }
    None
}

/// on_error, told about `failure` as `context.error`.
async fn run_on_error(
    host: &impl Phases,
    failure: &Failure,
    context: &mut Map<String, Value>,
) -> Report {
    let mut error =
        json!({"phase": failure.phase, "kind": failure.kind, "message": failure.message});
    if let Some(plugin) = failure.plugins.first() {
        error["plugin"] = json!(plugin);
    }
    context.insert("error".into(), error);
    let report = host.dispatch("on_error", context.clone()).await;
    *context = object(report.context.clone());
    report
}

/// Dispatches `phase` and carries its context on; `None` if a signal came
/// first (the dispatch is dropped, which cancels its calls).
async fn dispatch_unless_interrupted(
    host: &impl Phases,
    phase: &str,
    context: &mut Map<String, Value>,
    interrupted: &mut watch::Receiver<bool>,
) -> Option<Report> {
    if *interrupted.borrow() {
        return None;
    }
    let report = tokio::select! {
        report = host.dispatch(phase, context.clone()) => report,
        _ = interrupted.wait_for(|&i| i) => return None,
    };
    *context = object(report.context.clone());
    Some(report)
}

/// The strings of a JSON array; `None` if it is not one of strings only.
fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The map of a JSON object; empty for anything else.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn millis_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}
