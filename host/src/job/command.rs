//! The job's command: run with the argv and environment the phases left in
//! the context, stopped by the first signal, its exit status as a shell
//! reports it.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::watch;

use super::failure::{Failure, FailureKind};
use super::string_list;
use crate::launch::process::spawn_job;

/// What running the command came to.
pub(super) struct Ran {
    /// The command as it ran (or would have).
    pub(super) command: Vec<String>,
    /// Its exit code (128 + N for signal N), if it ran.
    pub(super) exit_code: Option<i32>,
    /// How long it ran, if it did.
    pub(super) duration: Option<Duration>,
    /// What failed, if anything.
    pub(super) failure: Option<Failure>,
}

impl Ran {
    /// The command did not run, or its status was lost.
    fn failed(command: Vec<String>, kind: FailureKind, message: String) -> Ran {
        Ran {
            command,
            exit_code: None,
            duration: None,
            failure: Some(Failure::of_command(kind, message)),
        }
    }
}

/// Runs `context.command` with `context.env`; SIGTERM is passed on to it
/// when `interrupted` turns true.
pub(super) async fn run(
    context: &Map<String, Value>,
    interrupted: &mut watch::Receiver<bool>,
) -> Ran {
    let command = match string_list(context.get("command")) {
        Some(argv) if !argv.is_empty() => argv,
        _ => {
            return Ran::failed(
                Vec::new(),
                FailureKind::InvalidContext,
                format!(
                    "context.command must be a non-empty array of strings after the phases, found {}",
                    context.get("command").unwrap_or(&Value::Null)
                ),
            );
        }
    };
    let env = match environment(context.get("env")) {
        Ok(env) => env,
        Err(message) => return Ran::failed(command, FailureKind::InvalidContext, message),
    };
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]).env_clear().envs(env);
    let started = Instant::now();
    let mut child = match spawn_job(cmd).await {
        Ok(child) => child,
        Err(err) => {
            let kind = if err.kind() == std::io::ErrorKind::NotFound {
                FailureKind::NotFound
            } else {
                FailureKind::NotExecutable
            };
            let message = format!("cannot run {:?}: {err}", command[0]);
            return Ran::failed(command, kind, message);
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
            return Ran::failed(
                command,
                FailureKind::NotExecutable,
                format!("lost the command's exit status: {err}"),
            );
        }
    };
    let failure = if *interrupted.borrow() {
        Some(Failure::interrupted_in("command"))
    } else if code != 0 {
        let message = format!("{} exited with {code}", command[0]);
        Some(Failure::of_command(FailureKind::ExitCode, message))
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

/// The exit code as shells report it: the code, or 128 + the signal.
fn exit_code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
