//! `outboard describe`: start one plugin, print its manifest, stop it.

use std::future::Future;
use std::io::Write;

use outboard_conformance::named_by_manifest;
use outboard_host::{Plugin, PluginSpec};

use super::target::Target;
use super::unless_interrupted;
use crate::args::DescribeArgs;
use crate::exit::EXIT_INTERRUPTED;

/// Describes the plugin `args` names, unless `shutdown` comes first.
pub(crate) async fn run(
    args: DescribeArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let target = Target::from_args(&args.target)?;
    let Some(plugin) = unless_interrupted(start(target), shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let plugin = plugin?;
    let manifest = serde_json::to_string_pretty(plugin.manifest())?;
    plugin.stop().await;
    writeln!(std::io::stdout().lock(), "{manifest}")?;
    Ok(0)
}

/// Starts `target` to ready: as configured; or, for a command line, named
/// after its manifest (a first launch asks it, so that
/// `OUTBOARD_PLUGIN_NAME` and `Configure` agree, PROTOCOL.md §2.1), with
/// the config given and every permission it asks for granted.
async fn start(target: Target) -> anyhow::Result<Plugin> {
    let spec = match target {
        Target::Configured(spec) => spec,
        Target::Command { spec, config } => {
            let named = named_by_manifest(&spec).await?;
            PluginSpec {
                config: config.unwrap_or_default(),
                // Describing is not running a job: a plugin that refuses to
                // start without a permission can still be described.
                grant: vec!["*".to_owned()],
                ..named
            }
        }
    };
    Ok(Plugin::start(&spec).await?)
}
