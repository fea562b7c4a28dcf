//! The one start install makes: the plugin says its own name and version.
//!
//! # The sandbox seam
//!
//! Issue 15 asks for this start to run "in a sandbox with
//! `network = "none"`". The sandbox is built on another branch; until it
//! lands, `describe_once` starts the plugin with the ordinary launcher
//! (`Plugin::start`). `describe_once` is the single place the sandbox is
//! to be applied: set the spec's sandbox to the strict preset (network
//! `none`, filesystem limited to the plugin's folder) before starting it.

use std::path::Path;

use outboard_host::config::load_plugin_folder;
use outboard_host::{Plugin, PluginSpec};

/// What a plugin, started once, says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The name in its `Describe`.
    pub name: String,
    /// The version in its `Describe`.
    pub version: String,
}

/// Starts the plugin `spec` to ready, reads its manifest and stops it.
/// The sandbox seam (module docs): today the ordinary launcher.
pub async fn describe_once(spec: &PluginSpec) -> Result<Described, outboard_host::Error> {
    let plugin = Plugin::start(spec).await?;
    let described = Described {
        name: plugin.manifest().name.clone(),
        version: plugin.manifest().version.to_string(),
    };
    plugin.stop().await;
    Ok(described)
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
/// how `outboard package` learns the name and version to record.
pub async fn describe_folder(folder: &Path) -> Result<Described, crate::PackageError> {
    let spec = spec_of(folder).map_err(|reason| {
        crate::PackageError::Malformed(format!("{}: {reason}", folder.display()))
    })?;
    describe_once(&spec)
        .await
        .map_err(|e| crate::PackageError::Start {
            name: spec.name.clone(),
            reason: e.to_string(),
        })
}
