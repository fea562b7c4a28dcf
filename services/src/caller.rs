//! [`Caller`]: who is calling, resolved from the token on every call, and
//! what it may do.

use std::sync::Arc;

use outboard_host::Manifest;
use tokio::sync::Semaphore;
use tonic::Status;

use crate::denials::Denials;
use crate::permissions;
use crate::registry::Described;

/// Who is calling: the plugin instance whose token the call carries.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The instance name (`OUTBOARD_PLUGIN_NAME`).
    pub plugin: Arc<str>,
    /// What it asked for in its manifest and the operator granted.
    pub granted: Arc<[String]>,
    /// Its validated manifest.
    pub manifest: Arc<Manifest>,
    /// Its calls in flight, bounded.
    pub(crate) calls: Arc<Semaphore>,
    /// Where refusals are logged, rate-limited.
    pub(crate) denials: Arc<Denials>,
}

impl Caller {
    pub(crate) fn new(
        plugin: Arc<str>,
        described: Described,
        calls: Arc<Semaphore>,
        denials: Arc<Denials>,
    ) -> Caller {
        Caller {
            plugin,
            granted: described.granted,
            manifest: described.manifest,
            calls,
            denials,
        }
    }

    /// `Ok` if the caller holds exactly `permission` (`kv`,
    /// `kv:shared:NAME`, `secret:NAME`); else `PERMISSION_DENIED` naming
    /// both, logged.
    pub fn require(&self, permission: &str) -> Result<(), Status> {
        if permissions::holds(&self.granted, permission) {
            Ok(())
        } else {
            Err(self.denied(permission))
        }
    }

    /// `Ok` if one of the caller's grants under `prefix` (say
    /// [`permissions::EVENT_PUBLISH`]) matches `name`; else
    /// `PERMISSION_DENIED` naming `prefix` + `name`, logged.
    pub fn require_glob(&self, prefix: &str, name: &str) -> Result<(), Status> {
        if permissions::holds_glob(&self.granted, prefix, name) {
            Ok(())
        } else {
            Err(self.denied(&format!("{prefix}{name}")))
        }
    }

    /// `PERMISSION_DENIED`: the caller lacks `permission`; logged,
    /// rate-limited per plugin.
    pub fn denied(&self, permission: &str) -> Status {
        self.denials.log(&self.plugin, permission);
        Status::permission_denied(format!(
            "plugin {:?} lacks permission {permission:?}",
            self.plugin
        ))
    }
}
