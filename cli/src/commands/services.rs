//! Host services for the commands that start plugins (`run`, `up`,
//! `invoke`): the state directory chosen, [`Services`] opened on it, the
//! host started with their launcher (so that every launch, restarts and
//! reloads included, gets its host socket and token) and served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use outboard_host::config::{self as registry, HostConfig, default_state_dir};
use outboard_host::{Host, StartFailures};
use outboard_services::{Services, ServicesOptions};

use crate::args::Source;

/// The state directory: `--state-dir`, else `[state] dir`, else the
/// default for who runs.
pub(crate) fn state_dir(flag: Option<&Path>, config: &HostConfig) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return std::path::absolute(dir).with_context(|| format!("--state-dir {}", dir.display()));
    }
    if let Some(dir) = &config.state.dir {
        return Ok(dir.clone());
    }
    default_state_dir().context(
        "no state directory: HOME is not set; give --state-dir DIR or [state] dir in the config",
    )
}

/// Opens host services on the state directory, with the config's limits
/// and `[events]`, for a host of `scope` ([`scope`]).
pub(crate) fn open(
    flag: Option<&Path>,
    config: &HostConfig,
    scope: String,
) -> anyhow::Result<Arc<Services>> {
    let options = ServicesOptions {
        scope,
        events: config.events,
        ..ServicesOptions::from_spec(state_dir(flag, config)?, &config.services)
    };
    Ok(Services::open(options)?)
}

/// The events scope of a host loaded from `source`: the canonical path of
/// its config file, else of its plugin directories, as `load_config` picks
/// them. Two hosts of one configuration share their events (and deliver
/// each other's pending ones); hosts of different ones never do, even on
/// one state directory.
pub(crate) fn scope(source: &Source) -> String {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string()
    };
    let dirs = if source.plugin_dir.is_empty() && source.config.is_none() {
        registry::dirs_from_env()
    } else {
        source.plugin_dir.clone()
    };
    let mut parts = Vec::new();
    match &source.config {
        Some(file) => parts.push(canonical(file)),
        None if dirs.is_empty() => parts.push(canonical(Path::new(registry::CONFIG_FILE_NAME))),
        None => {}
    }
    parts.extend(dirs.iter().map(|d| canonical(d)));
    parts.join(":")
}

/// Starts `config`'s plugins with `services`' launcher, then serves them.
pub(crate) async fn start(
    config: &HostConfig,
    services: &Arc<Services>,
) -> Result<Host, StartFailures> {
    let host = Host::start_with(config, services.launcher()).await?;
    services.serve(&host);
    Ok(host)
}
