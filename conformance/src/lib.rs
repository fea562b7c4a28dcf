//! `outboard conformance -- CMD`: a battery of checks run against any plugin
//! executable, each reported as passed or failed with the reason.
//!
//! The checks follow PROTOCOL.md: started by hand (§3), the handshake (§6),
//! the socket (§5), the token (§7), `Describe` (§8.2), `Configure` (§8.3),
//! health (§10), `Invoke` (§8.4, §8.5, §13), deadlines (§8.1), `Shutdown`
//! (§8.6) and SIGTERM (§12). A check that cannot run because an earlier one
//! failed is [`Outcome::Blocked`] (failed); one that does not apply to this
//! plugin (no schema, no subscription) is [`Outcome::NotApplicable`]
//! (passed); both say `skipped:` and why in their detail.
//!
//! The plugin is launched, called and bounded exactly as the host does it
//! (`outboard_host::launch`), so what passes here starts in a host.
//!
//! Every process started is killed (whole group) and every runtime
//! directory removed before [`run`] returns, whatever failed.
//!
//! # Layout
//!
//! - `check`: [`Check`], [`CheckName`] and [`Outcome`], the typed results.
//! - `battery`: [`run`], the checks in order as named steps.
//! - `subject`: the plugin launched for the checks, with its connections.
//! - `checks/`: one file per check or small group of checks.

mod battery;
mod check;
mod checks;
mod subject;

use std::time::Duration;

use outboard_host::PluginSpec;
use serde_json::{Map, Value};

pub use battery::run;
pub use check::{Check, CheckName, Outcome};

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin as a spec (command, args; name from the file name).
    pub spec: PluginSpec,
    /// How long the plugin may take to print its handshake line; also the
    /// bound of the setup calls (`Describe`, `Configure`, health).
    pub handshake_timeout: Duration,
    /// A valid config, for a plugin whose schema rejects `{}`.
    pub config: Option<Map<String, Value>>,
}

impl Options {
    /// The spec to launch, with the handshake timeout asked for.
    fn launch_spec(&self) -> PluginSpec {
        PluginSpec {
            handshake_timeout: self.handshake_timeout,
            ..self.spec.clone()
        }
    }
}
