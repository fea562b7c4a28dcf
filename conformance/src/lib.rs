//! `outboard conformance -- CMD`: a battery of checks run against any plugin
//! executable, each reported as passed or failed with the reason.
//!
//! The checks follow PROTOCOL.md: started by hand (§3), the handshake (§6),
//! the socket (§5), the token (§7), `Describe` (§8.2), `Configure` (§8.3),
//! health (§10), `Invoke` (§8.4, §8.5, §13), deadlines (§8.1), the invoke
//! fast path when the plugin lists it and the launch offers it (§18, over
//! its socket with a raw-frame client: framing, multiplexing, deadlines,
//! cancellation, bad frames), `Shutdown` (§8.6) and SIGTERM (§12). A check that cannot run because an earlier one
//! failed is [`Outcome::Blocked`] (failed); one that does not apply to this
//! plugin (no schema, no subscription) is [`Outcome::NotApplicable`]
//! (passed); both say `skipped:` and why in their detail.
//!
//! The plugin is launched, called and bounded exactly as the host does it
//! (`outboard_host::launch`), so what passes here starts in a host; given
//! as the operator configured it ([`Setting::Configured`]), it runs with its
//! configured env, args, config and grants. Every launch of the battery,
//! run-by-hand included, is inside the spec's sandbox: set it to
//! `SandboxSpec::strict` (as `outboard conformance --sandbox strict` does)
//! to certify the plugin under the strict preset. Its instance name is the same
//! in `OUTBOARD_PLUGIN_NAME` and in `Configure` (PROTOCOL.md §2.1): the
//! configured name, or for a command line the manifest's name.
//!
//! Every process started is killed (whole group) and every runtime
//! directory removed before [`run`] returns, whatever failed.
//!
//! # Layout
//!
//! - `check`: [`Check`], [`CheckName`] and [`Outcome`], the typed results.
//! - `battery`: [`run`], the checks in order as named steps.
//! - `subject`: the plugin launched for the checks, with its connections.
//! - `probe`: [`named_by_manifest`], the name a command line goes by.
//! - `checks/`: one file per check or small group of checks.

mod battery;
mod check;
mod checks;
mod probe;
mod subject;

use std::time::Duration;

use outboard_host::PluginSpec;
use serde_json::{Map, Value};

pub use battery::run;
pub use check::{Check, CheckName, Outcome};
pub use probe::named_by_manifest;

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin as a spec: from a command line ([`Setting::Command`]) or
    /// from the operator's config ([`Setting::Configured`]).
    pub spec: PluginSpec,
    /// How long the plugin may take to print its handshake line; also the
    /// bound of the setup calls (`Describe`, `Configure`, health).
    pub handshake_timeout: Duration,
    /// Where its name, config and grants come from.
    pub setting: Setting,
}

/// Where the name, the config and the grants of the plugin under test come
/// from.
#[derive(Debug, Clone)]
pub enum Setting {
    /// A plugin given as a command line: named after its manifest (a first
    /// launch asks it, see [`named_by_manifest`]), configured with `config`
    /// (`{}` if none), granted every permission it asks for.
    Command {
        /// A valid config, for a plugin whose schema rejects `{}`.
        config: Option<Map<String, Value>>,
    },
    /// A plugin as the operator configured it: the spec's name, env, args,
    /// working directory, config and grants, as a host would start it.
    Configured,
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
