//! The one start install makes: the plugin says its own name and version.
//! (`outboard package` starts the author's own plugin the same way, but
//! without network only where the host can do that: see
//! [`describe_folder`].)
//!
//! It runs in a sandbox with `network = "none"`: its own network
//! namespace with no interface up, whatever its `plugin.toml` asks for,
//! so code from a package that is not installed yet reaches no network.
//! The rest of its `[sandbox]` applies as written. A host that may not
//! create a network namespace refuses the start, whatever `best_effort`
//! says, rather than run the plugin on the host's network.
//!
//! Where the host can give it a cgroup, it gets one (a `pids` limit, if
//! its `plugin.toml` sets none): what the plugin leaves behind, even
//! outside its process group (`setsid`), is killed with the cgroup when
//! it stops, so nothing it started can change its files after install
//! has checked them again.

use std::path::Path;

use outboard_host::config::{Network, SandboxSpec, load_plugin_folder};
use outboard_host::{Plugin, PluginSpec, sandbox};

use crate::error::PackageError;

/// What a plugin, started once, says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The name in its `Describe`.
    pub name: String,
    /// The version in its `Describe`.
    pub version: String,
}

/// Starts the plugin `spec` to ready in the probe's sandbox (module
/// docs), reads its manifest and stops it.
pub async fn describe_once(spec: &PluginSpec) -> Result<Described, PackageError> {
    start_once(spec, true).await
}

/// [`describe_once`]; with `strict` false, the walls the host cannot
/// build are left out (best effort), the network namespace included,
/// instead of the plugin not starting at all.
async fn start_once(spec: &PluginSpec, strict: bool) -> Result<Described, PackageError> {
    let not_started = |reason: String| PackageError::Start {
        name: spec.name.clone(),
        reason,
    };
    let offline = sandbox::offers().network_namespace;
    if strict && !offline {
        return Err(not_started(
            "install starts it once without network (network = \"none\"), and this process \
             may not create a network namespace (that takes CAP_SYS_ADMIN): install as root"
                .to_owned(),
        ));
    }
    let mut probe = probe_spec(spec, offline);
    probe.sandbox.best_effort |= !strict;
    let plugin = Plugin::start(&probe)
        .await
        .map_err(|e| not_started(e.to_string()))?;
    let described = Described {
        name: plugin.manifest().name.clone(),
        version: plugin.manifest().version.to_string(),
    };
    plugin.stop().await;
    Ok(described)
}

/// The processes and threads the probe may have when its `plugin.toml`
/// sets no `pids`: enough for any plugin's start, and a cgroup to kill
/// whatever it leaves behind.
const PROBE_PIDS: u32 = 4096;

/// `spec` walled in for the probe: no network (if `offline`), and a
/// cgroup if the host can make one.
fn probe_spec(spec: &PluginSpec, offline: bool) -> PluginSpec {
    let mut probe = spec.clone();
    if offline {
        probe.sandbox.network = Network::None;
    }
    let pids_only = SandboxSpec {
        pids: Some(PROBE_PIDS),
        ..SandboxSpec::default()
    };
    if probe.sandbox.pids.is_none()
        && sandbox::plan(&spec.name, &pids_only, sandbox::offers()).is_ok()
    {
        probe.sandbox.pids = pids_only.pids;
    }
    probe
}

/// The plugin the folder `folder` holds, as its `plugin.toml` describes
/// it with built-in defaults; the error says why there is none.
pub(crate) fn spec_of(folder: &Path) -> Result<PluginSpec, String> {
    match load_plugin_folder(folder) {
        Ok(Some(spec)) => Ok(spec),
        Ok(None) => Err("its plugin.toml disables it (enabled = false)".to_owned()),
        Err(e) => Err(format!("its plugin.toml is not usable: {e}")),
    }
}

/// Starts the plugin in `folder` once and says what it says about itself:
/// how `outboard package` learns the name and version to record. The
/// author's own plugin, on the author's machine: without network where
/// the host can do that, each wall only where it can (packaging needs no
/// root).
pub async fn describe_folder(folder: &Path) -> Result<Described, PackageError> {
    let spec = spec_of(folder)
        .map_err(|reason| PackageError::Malformed(format!("{}: {reason}", folder.display())))?;
    start_once(&spec, false).await
}
