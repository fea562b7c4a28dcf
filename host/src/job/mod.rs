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

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::dispatch::{Report, Verdict};
use crate::host::Host;
use crate::launch::process::spawn_job;

/// Exit status when a plugin vetoed the job.
pub const EXIT_VETOED: u8 = 121;
/// Exit status when a plugin failed and so failed the job (a fail-closed
/// failure or a merge conflict), and the command did not fail first.
pub const EXIT_PLUGIN_FAILED: u8 = 122;
/// Exit status when the host itself failed (bad config, a plugin that
/// would not start).
pub const EXIT_HOST_ERROR: u8 = 125;
/// Exit status when the command could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit status when the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit status after SIGINT or SIGTERM stopped the job.
pub const EXIT_INTERRUPTED: u8 = 130;

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
    /// pre_container and post_container.
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
    Succeeded,
    Failed,
}

/// What failed a job: the first failure, which on_error is told about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The phase, or `command` for the command itself.
    pub phase: String,
    /// The plugins responsible, if any.
    pub plugins: Vec<String>,
    /// `vetoed`, `plugin_failed`, `exit_code`, `not_executable`,
    /// `not_found`, `invalid_context` or `interrupted`.
    pub kind: &'static str,
    /// What happened, in words.
    pub message: String,
}

/// Runs `job` on `host`. `interrupted` turns true on SIGINT / SIGTERM.
pub async fn run(host: &Host, job: Job, mut interrupted: watch::Receiver<bool>) -> JobReport {
    let started = Instant::now();
    let job_id = uuid::Uuid::new_v4().to_string();
    let mut context = Map::new();
    context.insert("job_id".into(), json!(job_id));
    context.insert("command".into(), json!(job.command));
    context.insert("env".into(), Value::Object(job.env));
    context.insert("metadata".into(), json!({}));
    context.insert("dry_run".into(), json!(job.dry_run));

    let mut phases = Vec::new();
    let mut failure: Option<Failure> = None;
    for phase in BEFORE {
        match dispatch_unless_interrupted(host, phase, &mut context, &mut interrupted).await {
            Some(report) => {
                failure = phase_failure(&report);
                phases.push(report);
            }
            None => failure = Some(interrupted_in(phase)),
        }
        if failure.is_some() {
            break;
        }
    }

    let mut command = string_list(context.get("command")).unwrap_or_default();
    let mut command_exit_code = None;
    let mut command_duration = None;
    if failure.is_none() && !job.dry_run {
        let ran = run_command(&context, &mut interrupted).await;
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
            failure = phase_failure(&report);
        }
        context = object(report.context.clone());
        phases.push(report);
    }

    // A signal that came after the command (during post_container) still
    // stops the job the orderly way.
    if failure.is_none() && *interrupted.borrow() {
        failure = Some(interrupted_in("post_container"));
    }

    if let Some(failure) = &failure {
        let mut error =
            json!({"phase": failure.phase, "kind": failure.kind, "message": failure.message});
        if let Some(plugin) = failure.plugins.first() {
            error["plugin"] = json!(plugin);
        }
        context.insert("error".into(), error);
        let report = host.dispatch("on_error", context.clone()).await;
        context = object(report.context.clone());
        phases.push(report);
    }

    let status = if failure.is_some() {
        Status::Failed
    } else {
        Status::Succeeded
    };
    context.insert("status".into(), json!(status));
    phases.push(host.dispatch("cleanup", context).await);

    JobReport {
        job_id,
        status,
        exit_code: exit_code(failure.as_ref(), command_exit_code),
        command_exit_code,
        failure,
        phases,
        command,
        command_duration,
        dry_run: job.dry_run,
        duration: started.elapsed(),
    }
}

/// Dispatches `phase` and carries its context on; `None` if a signal came
/// first (the dispatch is dropped, which cancels its calls).
async fn dispatch_unless_interrupted(
    host: &Host,
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

/// What running the command came to.
struct Ran {
    command: Vec<String>,
    exit_code: Option<i32>,
    duration: Option<Duration>,
    failure: Option<Failure>,
}

async fn run_command(context: &Map<String, Value>, interrupted: &mut watch::Receiver<bool>) -> Ran {
    let fail = |command: Vec<String>, kind, message: String| Ran {
        command,
        exit_code: None,
        duration: None,
        failure: Some(Failure {
            phase: "command".into(),
            plugins: Vec::new(),
            kind,
            message,
        }),
    };
    let command = match string_list(context.get("command")) {
        Some(argv) if !argv.is_empty() => argv,
        _ => {
            return fail(
                Vec::new(),
                "invalid_context",
                format!(
                    "context.command must be a non-empty array of strings after the phases, found {}",
                    context.get("command").unwrap_or(&Value::Null)
                ),
            );
        }
    };
    let env = match environment(context.get("env")) {
        Ok(env) => env,
        Err(message) => return fail(command, "invalid_context", message),
    };
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]).env_clear().envs(env);
    let started = Instant::now();
    let mut child = match spawn_job(cmd).await {
        Ok(child) => child,
        Err(err) => {
            let kind = if err.kind() == std::io::ErrorKind::NotFound {
                "not_found"
            } else {
                "not_executable"
            };
            return fail(
                command.clone(),
                kind,
                format!("cannot run {:?}: {err}", command[0]),
            );
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        _ = interrupted.wait_for(|&i| i) => {
            // Pass the stop on; a terminal's Ctrl-C has reached the command
            // already. Then wait for it to finish.
            if let Some(pid) = child.id() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            child.wait().await
        }
    };
    let duration = Some(started.elapsed());
    let code = match status {
        Ok(status) => exit_code_of(status),
        Err(err) => {
            return fail(
                command,
                "not_executable",
                format!("lost the command's exit status: {err}"),
            );
        }
    };
    let failure = if *interrupted.borrow() {
        Some(interrupted_in("command"))
    } else if code != 0 {
        Some(Failure {
            phase: "command".into(),
            plugins: Vec::new(),
            kind: "exit_code",
            message: format!("{} exited with {code}", command[0]),
        })
    } else {
        None
    };
    Ran {
        command,
        exit_code: Some(code),
        duration,
        failure,
    }
}

/// The command's environment from `context.env`: strings as they are,
/// numbers and booleans as text; anything else is an error naming the
/// variable.
fn environment(env: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let Some(Value::Object(env)) = env else {
        return Err("context.env must be an object of strings after the phases".into());
    };
    env.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            other => Err(format!("context.env.{k} must be a string, found {other}")),
        })
        .collect()
}

fn phase_failure(report: &Report) -> Option<Failure> {
    match &report.verdict {
        Verdict::Passed => None,
        Verdict::Vetoed { plugin, message } => Some(Failure {
            phase: report.phase.to_string(),
            plugins: vec![plugin.to_string()],
            kind: "vetoed",
            message: format!("vetoed by {plugin}: {message}"),
        }),
        Verdict::Failed { plugins, error } => Some(Failure {
            phase: report.phase.to_string(),
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
            kind: "plugin_failed",
            message: error.clone(),
        }),
    }
}

fn interrupted_in(phase: &str) -> Failure {
    Failure {
        phase: phase.to_owned(),
        plugins: Vec::new(),
        kind: "interrupted",
        message: format!("interrupted by a signal during {phase}"),
    }
}

/// The job's exit status: the command's if it failed; else what stopped the
/// job; else 0.
fn exit_code(failure: Option<&Failure>, command: Option<i32>) -> u8 {
    let Some(failure) = failure else {
        return 0;
    };
    match failure.kind {
        "interrupted" => EXIT_INTERRUPTED,
        "exit_code" => command.map_or(EXIT_HOST_ERROR, |c| u8::try_from(c).unwrap_or(1)),
        "vetoed" => EXIT_VETOED,
        "plugin_failed" => EXIT_PLUGIN_FAILED,
        "not_found" => EXIT_NOT_FOUND,
        "not_executable" => EXIT_NOT_EXECUTABLE,
        // The plugins left context.command or context.env unusable.
        "invalid_context" => EXIT_PLUGIN_FAILED,
        _ => EXIT_HOST_ERROR,
    }
}

/// The exit code as shells report it: the code, or 128 + the signal.
fn exit_code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_takes_scalars_and_names_what_it_cannot() {
        let env = json!({"A": "x", "N": 3, "B": true, "GONE": null});
        let mut got = environment(Some(&env)).expect("valid");
        got.sort();
        assert_eq!(
            got,
            [
                ("A".into(), "x".into()),
                ("B".into(), "true".into()),
                ("N".into(), "3".into())
            ]
        );
        let err = environment(Some(&json!({"X": {"nested": 1}}))).expect_err("object");
        assert_eq!(err, r#"context.env.X must be a string, found {"nested":1}"#);
        assert!(environment(Some(&json!([1]))).is_err());
    }

    #[test]
    fn exit_codes_say_who_stopped_the_job() {
        let failure = |kind| Failure {
            phase: "p".into(),
            plugins: vec![],
            kind,
            message: String::new(),
        };
        assert_eq!(exit_code(None, Some(0)), 0);
        assert_eq!(exit_code(Some(&failure("exit_code")), Some(3)), 3);
        assert_eq!(exit_code(Some(&failure("exit_code")), Some(300)), 1);
        assert_eq!(exit_code(Some(&failure("vetoed")), None), EXIT_VETOED);
        assert_eq!(
            exit_code(Some(&failure("plugin_failed")), Some(0)),
            EXIT_PLUGIN_FAILED
        );
        assert_eq!(exit_code(Some(&failure("not_found")), None), EXIT_NOT_FOUND);
        assert_eq!(
            exit_code(Some(&failure("interrupted")), Some(143)),
            EXIT_INTERRUPTED
        );
    }
}
