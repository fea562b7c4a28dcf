//! `outboard ls`: start every configured plugin, list them, stop them.

use std::future::Future;
use std::io::Write;

use outboard_host::{start_all, stop_all};

use super::{load_config, unless_interrupted};
use crate::args::LsArgs;
use crate::exit::{EXIT_ERROR, EXIT_INTERRUPTED};
use crate::render::ls::{PluginRow, table};

/// Lists the plugins `args.source` names, unless `shutdown` comes first;
/// 1 if any failed to start.
pub(crate) async fn run(args: LsArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<u8> {
    let config = load_config(&args.source)?;
    let Some((plugins, failures)) = unless_interrupted(start_all(config.plugins), shutdown).await
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
    stop_all(plugins).await;

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        table(&mut out, &rows)?;
    }
    Ok(if failures.is_empty() { 0 } else { EXIT_ERROR })
}
