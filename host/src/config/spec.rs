//! The plugin spec, the defaults and the host's configuration: plain values
//! with everything resolved, whatever they were read from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::phase::PhaseSpec;
use super::sandbox::SandboxSpec;
use super::secret::SecretSpec;
use super::state::{ServicesSpec, StateSpec};
use super::subscription::SubscriptionOverride;
use super::supervision::Supervision;

/// How long a plugin has from spawn to its handshake line, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call to a plugin may take, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a plugin has to exit after `Shutdown` before SIGTERM, by default.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// One plugin the host should run, with everything resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// The name the host knows the plugin by (logs, reports, dependencies).
    pub name: String,
    /// The executable, as an absolute path.
    pub command: PathBuf,
    /// Arguments after the command.
    pub args: Vec<String>,
    /// Environment variables added to the plugin's scrubbed environment.
    pub env: BTreeMap<String, String>,
    /// The plugin's config, sent in `Configure` after schema validation.
    pub config: serde_json::Map<String, Value>,
    /// How long from spawn to the handshake line.
    pub handshake_timeout: Duration,
    /// How long one call may take.
    pub call_timeout: Duration,
    /// How long the plugin has to exit after `Shutdown`.
    pub stop_grace: Duration,
    /// The directory to run it in, absolute; `None` inherits the host's.
    pub working_dir: Option<PathBuf>,
    /// The file the plugin was declared in.
    pub source: PathBuf,
    /// Where to create the plugin's private runtime directory; `None` means
    /// `$OUTBOARD_RUNTIME_DIR`, else `/tmp`. Not read from config files: it
    /// is for code that embeds the host, and for tests.
    pub runtime_base: Option<PathBuf>,
    /// The permissions the operator grants, of those the plugin asks for in
    /// its manifest; `"*"` grants all it asks for.
    pub grant: Vec<String>,
    /// The host's overrides of the plugin's subscriptions, by phase.
    pub subscriptions: BTreeMap<String, SubscriptionOverride>,
    /// How it is supervised: restarts, health checks, crash loops.
    pub supervision: Supervision,
    /// True if the host's readiness does not wait for it (`optional =
    /// true`): it runs and is supervised like any other, but a probe asking
    /// whether every plugin is ready leaves it out. A reload that changes
    /// only this does not restart the plugin.
    pub optional: bool,
    /// The walls the kernel puts around it (`[plugin.sandbox]` over
    /// `[defaults.sandbox]`).
    pub sandbox: SandboxSpec,
    /// For a plugin folder that `outboard install` installed, the SHA-256
    /// of its package manifest (`outboard-package.toml`): a new version
    /// installed in the same folder differs here, so a reload replaces it.
    pub package: Option<String>,
    /// True if the host offers the plugin the invoke fast path
    /// (`OUTBOARD_FASTPATH_SOCKET`, docs/PROTOCOL.md §18) and uses it when
    /// the plugin lists its feature; `fastpath = false` keeps `Invoke` on
    /// gRPC.
    pub fastpath: bool,
}

impl PluginSpec {
    /// A spec with no arguments, environment or config and the built-in
    /// timeouts, as code that embeds the host (or a test) would start.
    pub fn new(name: impl Into<String>, command: impl Into<PathBuf>) -> PluginSpec {
        let defaults = Defaults::default();
        PluginSpec {
            name: name.into(),
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            config: serde_json::Map::new(),
            handshake_timeout: defaults.handshake_timeout,
            call_timeout: defaults.call_timeout,
            stop_grace: defaults.stop_grace,
            working_dir: None,
            source: PathBuf::new(),
            runtime_base: None,
            grant: Vec::new(),
            subscriptions: BTreeMap::new(),
            supervision: Supervision::default(),
            optional: false,
            sandbox: defaults.sandbox,
            package: None,
            fastpath: true,
        }
    }
}

/// Values a plugin gets when it does not set its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// See [`PluginSpec::handshake_timeout`].
    pub handshake_timeout: Duration,
    /// See [`PluginSpec::call_timeout`].
    pub call_timeout: Duration,
    /// See [`PluginSpec::stop_grace`].
    pub stop_grace: Duration,
    /// See [`PluginSpec::sandbox`].
    pub sandbox: SandboxSpec,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            sandbox: SandboxSpec::default(),
        }
    }
}

/// How long `outboard up` lets dispatches in flight finish on SIGTERM, by
/// default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `[daemon]` section: what `outboard up` needs beyond the plugins.
/// Read at start; a reload does not change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// A group whose members may use the control socket besides the
    /// daemon's uid (the socket is then 0660 in that group).
    pub control_group: Option<String>,
    /// How long dispatches in flight may take to finish on SIGTERM before
    /// the plugins are stopped anyway.
    pub drain_timeout: Duration,
}

impl Default for DaemonSpec {
    fn default() -> Self {
        DaemonSpec {
            control_group: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// The `[http]` section: the daemon's HTTP listener (`/metrics`, the
/// probes). Read at start; a reload does not change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpSpec {
    /// Where to listen (an IP address and a port); `None`: no listener.
    pub listen: Option<std::net::SocketAddr>,
}

/// The `[events]` section: how events are delivered to subscribed plugins
/// (PROTOCOL.md §17.6). Read at start; a reload does not change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsSpec {
    /// Attempts at delivering one event to one plugin, the first included,
    /// before it goes to the dead-letter list.
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled for each further one.
    pub backoff_initial: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long a delivered event is kept (and its idempotency key
    /// remembered).
    pub retention: Duration,
    /// How long a dead letter is kept unless retried.
    pub dead_retention: Duration,
}

impl Default for EventsSpec {
    fn default() -> Self {
        EventsSpec {
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            retention: Duration::from_secs(24 * 3600),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The host's configuration: its plugins, sorted by name, and the defaults
/// they were filled in with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostConfig {
    /// Enabled plugins, sorted by name; names are unique.
    pub plugins: Vec<PluginSpec>,
    /// The `[defaults]` section, with built-in values where it is silent.
    pub defaults: Defaults,
    /// The `[phases.NAME]` sections, as declared (the job profile's
    /// defaults are applied by the host, not here).
    pub phases: BTreeMap<String, PhaseSpec>,
    /// The `[daemon]` section, with built-in values where it is silent.
    pub daemon: DaemonSpec,
    /// The `[http]` section: none unless the file has one.
    pub http: HttpSpec,
    /// The `[secrets.NAME]` sections by name: where each secret is read
    /// (never a value).
    pub secrets: BTreeMap<String, SecretSpec>,
    /// The `[state]` section.
    pub state: StateSpec,
    /// The `[services]` section, with the protocol's defaults where it is
    /// silent.
    pub services: ServicesSpec,
    /// The `[events]` section, with built-in values where it is silent.
    pub events: EventsSpec,
}

impl HostConfig {
    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }
}
