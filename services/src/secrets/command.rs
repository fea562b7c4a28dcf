//! A secret's `command`: run without a shell, in its own process group,
//! stdin empty, stderr discarded (it may echo the secret, and an error
//! message must not), stdout read up to [`MAX_SECRET_BYTES`]. On a timeout
//! or an oversized output the whole group is killed, and the command is
//! always waited for: no zombie, no process left behind in its group.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::secret::Secret;
use super::source::{MAX_SECRET_BYTES, SourceError, io_reason};

/// How a run ended, before the group is cleaned up.
enum Ending {
    /// It exited; what it printed.
    Exited(ExitStatus, Vec<u8>),
    /// It printed more than the limit.
    Oversized,
    /// Reading its output failed.
    Failed(std::io::Error),
}

/// Runs `program args` in `dir` and returns its standard output if it
/// exits with status 0 within `timeout`.
pub(super) async fn run(
    program: &Path,
    args: &[String],
    dir: &Path,
    timeout: Duration,
) -> Result<Vec<u8>, SourceError> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        // If this task is dropped anyway (the runtime shutting down), the
        // command does not outlive it; tokio reaps it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            SourceError(format!(
                "{} could not be started: {}",
                program.display(),
                io_reason(&e)
            ))
        })?;
    let ending = tokio::time::timeout(timeout, output(&mut child)).await;
    let ending = match ending {
        Ok(Ending::Exited(status, bytes)) => return exited(status, bytes),
        Ok(Ending::Oversized) => SourceError(format!(
            "printed more than {} KiB (killed)",
            MAX_SECRET_BYTES >> 10
        )),
        Ok(Ending::Failed(e)) => {
            SourceError(format!("its output could not be read: {}", io_reason(&e)))
        }
        Err(_) => SourceError(format!(
            "did not finish within {} (killed)",
            humantime::format_duration(timeout)
        )),
    };
    kill_group(&mut child).await;
    Err(ending)
}

/// Reads the child's output to its end, then waits for it.
async fn output(child: &mut Child) -> Ending {
    let Some(stdout) = child.stdout.take() else {
        return Ending::Failed(std::io::Error::other("stdout was not captured"));
    };
    let mut bytes = Vec::new();
    let limit = MAX_SECRET_BYTES as u64 + 1;
    if let Err(e) = stdout.take(limit).read_to_end(&mut bytes).await {
        return Ending::Failed(e);
    }
    if bytes.len() > MAX_SECRET_BYTES {
        drop(Secret::new(bytes));
        return Ending::Oversized;
    }
    match child.wait().await {
        Ok(status) => Ending::Exited(status, bytes),
        Err(e) => Ending::Failed(e),
    }
}

/// The output of a command that exited: only status 0 counts.
fn exited(status: ExitStatus, bytes: Vec<u8>) -> Result<Vec<u8>, SourceError> {
    if status.success() {
        return Ok(bytes);
    }
    drop(Secret::new(bytes));
    Err(SourceError(match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended with {status}"),
    }))
}

/// Kills the child's whole process group and waits for the child.
async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| libc::pid_t::try_from(id).ok()) {
        // SAFETY: killpg has no memory effects; the group is the child's
        // own (process_group(0)), and the child is not reaped yet, so its
        // id cannot have been reused.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
    // The group leader is dead (or exits at once): this returns promptly.
    let _ = child.wait().await;
}
