//! Started by hand (§3): without any OUTBOARD_* variable, the plugin exits 1
//! at once, silent on stdout, saying why on stderr.

use std::time::Duration;

use outboard_host::launch::{Exit, Launch, PluginProcess};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::Options;
use crate::check::{Check, CheckName};

const NAME: CheckName = CheckName::RunByHand;

/// How long a plugin started by hand has to exit.
const LIMIT: Duration = Duration::from_secs(5);

/// How long what the plugin left behind gets to be gone, and its pipes to
/// be read to the end.
const CLEANUP: Duration = Duration::from_secs(1);

/// Runs the plugin's command without the handshake variables.
pub(crate) async fn check(options: &Options) -> Check {
    let (process, pipes) = match PluginProcess::spawn(&Launch::by_hand(&options.spec)).await {
        Ok(spawned) => spawned,
        Err(e) => return Check::fail(NAME, format!("cannot start the command: {e}")),
    };
    let stdout = read_all(pipes.stdout);
    let stderr = read_all(pipes.stderr);
    let exit = process.exited_within(LIMIT).await;
    // Whatever it left running goes now, so that the pipes close.
    process.kill_group(CLEANUP * 2).await;
    let stdout = collect(stdout).await;
    let stderr = collect(stderr).await;
    let Some(exit) = exit else {
        return Check::fail(
            NAME,
            format!(
                "still running {} after being started without OUTBOARD_* variables (killed); \
                 it must exit with status 1 (§3)",
                humantime::format_duration(LIMIT)
            ),
        );
    };
    judge(exit, &stdout, &stderr)
}

/// The verdict on how it ended and what it wrote.
fn judge(exit: Exit, stdout: &[u8], stderr: &[u8]) -> Check {
    let first = String::from_utf8_lossy(stderr)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned);
    let mut problems = Vec::new();
    if exit.code() != Some(1) {
        problems.push(format!("exited with {exit} (expected status 1)"));
    }
    if !stdout.is_empty() {
        let text = String::from_utf8_lossy(stdout);
        let line = text.lines().next().unwrap_or_default();
        problems.push(format!(
            "printed {} bytes on stdout (expected nothing), first line {line:?}",
            stdout.len()
        ));
    }
    match (&first, problems.is_empty()) {
        (None, _) => {
            problems.push("wrote nothing on stderr (expected a sentence saying why)".to_owned());
            Check::fail(NAME, problems.join("; "))
        }
        (Some(_), false) => Check::fail(NAME, problems.join("; ")),
        (Some(line), true) => Check::pass(NAME, format!("exited with status 1, stderr: {line:?}")),
    }
}

/// Reads `pipe` to its end in a task of its own.
fn read_all(mut pipe: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf).await;
        buf
    })
}

/// What `task` read, or nothing if it did not finish in time.
async fn collect(task: JoinHandle<Vec<u8>>) -> Vec<u8> {
    match tokio::time::timeout(CLEANUP, task).await {
        Ok(Ok(buf)) => buf,
        _ => Vec::new(),
    }
}
