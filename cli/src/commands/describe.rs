//! `outboard describe`: start one plugin, print its manifest, stop it; or
//! (`--sandbox`) print the walls it would get here, starting nothing.

use std::future::Future;
use std::io::Write;

use outboard_conformance::named_by_manifest;
use outboard_host::{Plugin, PluginSpec, sandbox};

use super::target::Target;
use super::unless_interrupted;
use crate::args::DescribeArgs;
use crate::exit::EXIT_INTERRUPTED;
use crate::render;
use crate::render::sandbox::WallView;

/// Describes the plugin `args` names, unless `shutdown` comes first.
pub(crate) async fn run(
    args: DescribeArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let target = Target::from_args(&args.target)?;
    if args.sandbox {
        return walls(&target, args.json);
    }
    let Some(plugin) = unless_interrupted(start(target), shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let plugin = plugin?;
    let manifest = serde_json::to_string_pretty(plugin.manifest())?;
    plugin.stop().await;
    writeln!(std::io::stdout().lock(), "{manifest}")?;
    Ok(0)
}

/// Prints the walls `target` would get on this machine, as the host
/// decides them before a start: nothing is spawned, no cgroup made.
fn walls(target: &Target, json: bool) -> anyhow::Result<u8> {
    let spec = match target {
        Target::Configured(spec) | Target::Command { spec, .. } => spec,
    };
    let planned = sandbox::plan(&spec.name, &spec.sandbox, sandbox::offers())?;
    let views: Vec<WallView> = planned.iter().map(WallView::planned).collect();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?;
    } else {
        render::sandbox::table(&mut out, &views)?;
    }
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
