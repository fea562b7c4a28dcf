//! The handshake (§6): launched as a host launches it, the plugin prints a
//! valid handshake line in time.

use outboard_host::launch::{Launched, launch};

use crate::Options;
use crate::check::{Check, CheckName};
use crate::subject::launch_failure;

const NAME: CheckName = CheckName::Handshake;

/// Launches the plugin; the launch, if it shook hands, is for the checks
/// that follow.
pub(crate) async fn check(options: &Options) -> (Check, Option<Launched>) {
    match launch(&options.launch_spec()).await {
        Ok(launched) => {
            let detail = format!(
                "`outboard|{}|unix|<OUTBOARD_SOCKET>|grpc` after {:.0} ms (timeout {})",
                launched.protocol_version(),
                launched.handshake_after().as_secs_f64() * 1000.0,
                humantime::format_duration(options.handshake_timeout)
            );
            (Check::pass(NAME, detail), Some(launched))
        }
        Err(e) => (Check::fail(NAME, launch_failure(&e)), None),
    }
}
