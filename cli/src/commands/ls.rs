//! `outboard ls`: start every configured plugin, list them, stop them.

use std::io::Write;

use anyhow::Context as _;
use outboard_host::{Plugin, start_all, stop_all};

use super::{load_config, stop, unless_interrupted};
use crate::args::LsArgs;
use crate::exit::{EXIT_ERROR, EXIT_INTERRUPTED};
use crate::render::ls::{PluginRow, table};
use crate::signals::Signals;

/// Lists the plugins `args.source` names, unless a signal comes while
/// they start; a signal while they stop kills them at once. 1 if any
/// failed to start.
pub(crate) async fn run(args: LsArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let config = load_config(&args.source)?;
    let Some((plugins, failures)) =
        unless_interrupted(start_all(config.plugins), signals.recv()).await
    else {
        return Ok(EXIT_INTERRUPTED);
    };
    let mut rows: Vec<PluginRow> = plugins.iter().map(PluginRow::ready).collect();
    rows.extend(
        failures
            .iter()
            .map(|(name, err)| PluginRow::failed(name, err)),
    );
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let groups = stop::Groups::fixed(plugins.iter().map(Plugin::pid).collect());
    stop::stop_or_kill(stop_all(plugins), &groups, &mut signals).await;

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?).and_then(|()| out.flush())
    } else {
        table(&mut out, &rows).and_then(|()| out.flush())
    }
    .context("cannot print the list on stdout")?;
    Ok(if failures.is_empty() { 0 } else { EXIT_ERROR })
}
