//! SIGTERM (§12): a fresh instance exits within 2 s of SIGTERM to its group.

use std::time::{Duration, Instant};

use outboard_host::launch::{Launched, launch};

use crate::Options;
use crate::check::{Check, CheckName};
use crate::subject::launch_failure;

const NAME: CheckName = CheckName::Sigterm;

/// How long the plugin has to exit after SIGTERM.
const SIGTERM_LIMIT: Duration = Duration::from_secs(2);

/// Launches a fresh instance, sends its group SIGTERM and watches it go.
pub(crate) async fn check(options: &Options) -> Check {
    let launched = match launch(&options.launch_spec()).await {
        Ok(launched) => launched,
        Err(e) => {
            let why = format!("a fresh instance did not start: {}", launch_failure(&e));
            return Check::blocked(NAME, &why);
        }
    };
    let result = terminated(&launched).await;
    launched.kill().await;
    Check::of(NAME, result)
}

async fn terminated(launched: &Launched) -> Result<String, String> {
    let process = launched.process();
    process
        .signal_group(libc::SIGTERM)
        .map_err(|e| format!("cannot send SIGTERM: {e}"))?;
    let started = Instant::now();
    match process.exited_within(SIGTERM_LIMIT).await {
        Some(exit) => Ok(format!(
            "exited with {exit} {:.0} ms after SIGTERM",
            started.elapsed().as_secs_f64() * 1000.0
        )),
        None => Err(format!(
            "still running {} after SIGTERM (killed)",
            humantime::format_duration(SIGTERM_LIMIT)
        )),
    }
}
