//! `Shutdown` (§8.6): answered, then the plugin exits within the grace (plus
//! slack) with status 0.

use std::time::{Duration, Instant};

use outboard_host::launch::Deadline;
use outboard_proto::v1;

use crate::check::{Check, CheckName};
use crate::subject::Subject;

/// The grace period sent with `Shutdown`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long past the grace the plugin may take to exit.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(500);
/// How long a plugin that broke the connection gets to be seen exiting.
const EXIT_SETTLE: Duration = Duration::from_millis(100);

/// Asks the plugin to shut down and watches it go.
pub(crate) async fn check(subject: &Subject<'_>) -> Check {
    Check::of(CheckName::Shutdown, shut_down(subject).await)
}

async fn shut_down(subject: &Subject<'_>) -> Result<String, String> {
    let process = subject.launched.process();
    let started = Instant::now();
    let request = v1::ShutdownRequest {
        grace: prost_types::Duration::try_from(SHUTDOWN_GRACE).ok(),
        reason: "host stopping".to_owned(),
    };
    let mut client = subject.clients.plugin.clone();
    let answered = tokio::time::timeout(
        SHUTDOWN_GRACE,
        client.shutdown(Deadline::after(SHUTDOWN_GRACE).request(request)),
    )
    .await;
    let answer = match answered {
        Ok(Ok(_)) => "answered".to_owned(),
        // Answering and exiting at once may break the connection first.
        Ok(Err(_)) if process.exited_within(EXIT_SETTLE).await.is_some() => {
            "exited while answering".to_owned()
        }
        Ok(Err(status)) => {
            return Err(format!(
                "Shutdown failed: {:?}: {}",
                status.code(),
                status.message()
            ));
        }
        Err(_) => {
            return Err(format!(
                "Shutdown not answered within {}",
                humantime::format_duration(SHUTDOWN_GRACE)
            ));
        }
    };
    let limit = SHUTDOWN_GRACE + SHUTDOWN_SLACK;
    let remaining = limit.saturating_sub(started.elapsed());
    let Some(exit) = process.exited_within(remaining).await else {
        return Err(format!(
            "{answer}, but still running {} after Shutdown (killed)",
            humantime::format_duration(limit)
        ));
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let socket = if subject.launched.socket().exists() {
        "; it left its socket file (removed with the runtime directory)"
    } else {
        "; socket removed"
    };
    if !exit.success() {
        return Err(format!(
            "{answer}, then exited with {exit} after {ms:.0} ms (expected status 0){socket}"
        ));
    }
    Ok(format!(
        "{answer}, exited with {exit} after {ms:.0} ms{socket}"
    ))
}
