//! Host services for the commands that start plugins (`run`, `up`,
//! `invoke`): the state directory chosen, [`Services`] opened on it, the
//! host started with their launcher (so that every launch, restarts and
//! reloads included, gets its host socket and token) and served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use outboard_host::config::{HostConfig, default_state_dir};
use outboard_host::{Host, StartFailures};
use outboard_services::{Services, ServicesOptions};

/// The state directory: `--state-dir`, else `[state] dir`, else the
/// default for who runs.
pub(crate) fn state_dir(flag: Option<&Path>, config: &HostConfig) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(
            std::path::absolute(dir).with_context(|| format!("--state-dir {}", dir.display()))?
        );
    }
    if let Some(dir) = &config.state.dir {
        return Ok(dir.clone());
    }
    default_state_dir().context(
        "no state directory: HOME is not set; give --state-dir DIR or [state] dir in the config",
    )
}

/// Opens host services on the state directory, with the config's limits.
pub(crate) fn open(flag: Option<&Path>, config: &HostConfig) -> anyhow::Result<Arc<Services>> {
    let options = ServicesOptions::from_spec(state_dir(flag, config)?, &config.services);
    Ok(Services::open(options)?)
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
