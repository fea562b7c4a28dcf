//! The file format: these types mirror the TOML of `outboard.toml` and
//! `plugin.toml`, unknown keys rejected; their `resolve` turns them into
//! specs, every rejected value named with its file and line.
//!
//! - `file`: a whole `outboard.toml` or `plugin.toml`, `[defaults]` and
//!   `[phases.NAME]`.
//! - `lines`: byte offsets to line numbers, in logarithmic time.
//! - `plugin`: a `[[plugin]]` table, resolved step by step.
//! - `sandbox`: a `sandbox` table, of a plugin or of `[defaults]`.
//! - `secret`: a `[secrets.NAME]` table.
//! - `state`: the `[state]` and `[services]` tables.
//! - `source`: the file being resolved, for error locations and relative
//!   paths.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::phase::{FailurePolicy, Mode};
use super::supervision::RestartPolicy;
use super::value::DurationText;

mod file;
mod lines;
mod plugin;
mod sandbox;
mod secret;
mod source;
mod state;

pub(super) use file::load_plugin_file;
pub use file::{CONFIG_FILE_NAME, PACKAGE_MANIFEST_FILE, PLUGIN_FILE_NAME, load};
#[cfg(test)]
pub(super) use lines::probes;

/// A whole `outboard.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    defaults: DefaultsToml,
    #[serde(default)]
    phases: BTreeMap<Spanned<String>, PhaseToml>,
    #[serde(default)]
    plugin: Vec<Spanned<PluginToml>>,
    #[serde(default)]
    daemon: DaemonToml,
    #[serde(default)]
    http: HttpToml,
    #[serde(default)]
    state: state::StateToml,
    #[serde(default)]
    services: state::ServicesToml,
    #[serde(default)]
    secrets: BTreeMap<Spanned<String>, Spanned<SecretToml>>,
    #[serde(default)]
    events: EventsToml,
    /// `[trust] keys = [...]`: the package signers `outboard install`
    /// accepts. Read by outboard-packages; the host only lets it through.
    #[serde(default, rename = "trust")]
    _trust: Option<toml::Table>,
}

/// A `[secrets.NAME]` table: exactly one source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretToml {
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    cache: Option<Spanned<DurationText>>,
    timeout: Option<Spanned<DurationText>>,
}

/// The `[events]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsToml {
    max_attempts: Option<Spanned<u32>>,
    backoff_initial: Option<Spanned<DurationText>>,
    backoff_max: Option<Spanned<DurationText>>,
    retention: Option<Spanned<DurationText>>,
    dead_retention: Option<Spanned<DurationText>>,
}

/// The `[http]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    listen: Option<Spanned<String>>,
}

/// The `[daemon]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonToml {
    control_group: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<DurationText>>,
}

/// A `[defaults]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsToml {
    handshake_timeout: Option<Spanned<DurationText>>,
    call_timeout: Option<Spanned<DurationText>>,
    stop_grace: Option<Spanned<DurationText>>,
    sandbox: Option<sandbox::SandboxToml>,
}

/// A `[[plugin]]` table, or a whole `plugin.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginToml {
    name: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    args: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    config: Option<Spanned<toml::Table>>,
    handshake_timeout: Option<Spanned<DurationText>>,
    call_timeout: Option<Spanned<DurationText>>,
    stop_grace: Option<Spanned<DurationText>>,
    working_dir: Option<Spanned<String>>,
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    subscriptions: BTreeMap<Spanned<String>, SubscriptionToml>,
    enabled: Option<bool>,
    #[serde(default)]
    optional: bool,
    fastpath: Option<bool>,
    restart: Option<RestartPolicy>,
    health_interval: Option<Spanned<DurationText>>,
    health_misses: Option<Spanned<u32>>,
    backoff_initial: Option<Spanned<DurationText>>,
    backoff_max: Option<Spanned<DurationText>>,
    backoff_reset_after: Option<Spanned<DurationText>>,
    crash_loop_starts: Option<Spanned<u32>>,
    crash_loop_window: Option<Spanned<DurationText>>,
    sandbox: Option<sandbox::SandboxToml>,
}

/// A `[phases.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseToml {
    mode: Option<Mode>,
    timeout: Option<Spanned<DurationText>>,
    failure_policy: Option<FailurePolicy>,
}

/// A `[plugin.subscriptions.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionToml {
    priority: Option<i32>,
    timeout: Option<Spanned<DurationText>>,
    failure_policy: Option<FailurePolicy>,
    enabled: Option<bool>,
    retry_attempts: Option<Spanned<u32>>,
    retry_backoff: Option<Spanned<DurationText>>,
}
