//! The name a plugin given as a command line goes by: its manifest's. The
//! host tells a plugin its instance name twice, in `OUTBOARD_PLUGIN_NAME`
//! before it starts and in `ConfigureRequest.instance_name` (PROTOCOL.md
//! §2.1: the same value). Before `Describe` only the command is known, and
//! its file name may be an interpreter's (`python3`, `node`, `sh`); so a
//! first launch asks the plugin its name, and the launches that configure
//! it carry that name in both places.

use std::time::Duration;

use outboard_host::launch::{Launched, launch};
use outboard_host::{Error, PluginSpec};

/// `spec` named after the manifest its plugin describes: launched once,
/// described, killed (whole group, runtime directory removed). The error
/// is the launch's or the `Describe`'s, naming the plugin by `spec.name`.
pub async fn named_by_manifest(spec: &PluginSpec) -> Result<PluginSpec, Error> {
    let launched = launch(spec).await?;
    let name = manifest_name(&launched, spec.handshake_timeout).await;
    launched.kill().await;
    Ok(PluginSpec {
        name: name.map_err(|kind| Error::new(&spec.name, kind))?,
        ..spec.clone()
    })
}

/// The name in the manifest `launched` describes, each call within
/// `timeout`.
pub(crate) async fn manifest_name(
    launched: &Launched,
    timeout: Duration,
) -> Result<String, outboard_host::ErrorKind> {
    let clients = launched.connect(timeout).await.map_err(|e| e.kind)?;
    Ok(launched.describe(&clients, timeout).await?.name)
}
