//! `outboard describe -- CMD`: start one plugin, print its manifest, stop it.

use std::future::Future;
use std::io::Write;

use outboard_host::Plugin;

use super::unless_interrupted;
use crate::args::DescribeArgs;
use crate::exit::EXIT_INTERRUPTED;

/// Describes the plugin `args.command` starts, unless `shutdown` comes
/// first.
pub(crate) async fn run(
    args: DescribeArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let mut spec = outboard_host::config::spec_for_command(&args.command)?;
    spec.handshake_timeout = args.handshake_timeout;
    // Describing is not running a job: a plugin that refuses to start
    // without a permission (FAILED_PRECONDITION) can still be described.
    spec.grant = vec!["*".to_owned()];
    let Some(plugin) = unless_interrupted(Plugin::start(&spec), shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let plugin = plugin?;
    let manifest = serde_json::to_string_pretty(plugin.manifest())?;
    plugin.stop().await;
    writeln!(std::io::stdout().lock(), "{manifest}")?;
    Ok(0)
}
