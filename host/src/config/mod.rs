//! Which plugins to run and how: the host's `outboard.toml` and plugin
//! directories, turned into [`PluginSpec`]s.
//!
//! `outboard.toml`:
//!
//! ```toml
//! [defaults]                       # optional; built-in values shown
//! handshake_timeout = "10s"
//! call_timeout = "2s"
//! stop_grace = "5s"
//!
//! [[plugin]]
//! name = "env-injector"            # required: [a-z0-9_-], 1 to 64 characters
//! command = "../target/debug/env-injector"
//! args = ["--verbose"]
//! env = { RUST_LOG = "debug" }
//! config = { prefix = "CI_" }      # any table; sent in Configure
//! call_timeout = "500ms"           # overrides [defaults]
//! working_dir = "."
//! grant = ["env:write"]            # permissions granted, of those it asks for; "*" = all
//! enabled = true
//! restart = "always"               # or "on-failure", "never": after the plugin exits on its own
//! health_interval = "5s"           # health checks; health_misses in a row → restart
//! health_misses = 3
//! backoff_initial = "100ms"        # restarts: the first at once, then this doubling...
//! backoff_max = "30s"              # ...up to this, with jitter
//! backoff_reset_after = "60s"      # uptime after which the backoff starts afresh
//! crash_loop_starts = 5            # this many starts within crash_loop_window and
//! crash_loop_window = "60s"        # the next failure quarantines the plugin
//!
//! [plugin.sandbox]                 # optional; walls the kernel enforces ([defaults.sandbox] too)
//! memory = "100Mi"                 # all its processes together; Ki/Mi/Gi or K/M/G or bytes
//! cpu = 0.5                        # a fraction of a core
//! pids = 64                        # processes and threads at once
//! open_files = 256                 # descriptors per process
//! core_dumps = false
//! network = "none"                 # or "loopback" (own namespace, lo up), "host" (the default)
//! filesystem = { read = ["/etc/ssl"], write = ["/var/tmp/x"] }   # Landlock; plus its own files
//! best_effort = false              # true: a weaker wall where the machine lacks one
//! user = "nobody"                  # host running as root only; also group = "..."
//!
//! [plugin.subscriptions.post_container]   # the host's say over one subscription
//! priority = 5                     # replaces the manifest's
//! timeout = "1s"                   # replaces the phase's and call_timeout
//! failure_policy = "fail_open"     # replaces the phase's
//! enabled = false                  # do not invoke it for this phase
//! retry_attempts = 3               # idempotent subscriptions only: attempts in all after a
//! retry_backoff = "50ms"           # crash, timeout or restart; the wait doubles each time
//!
//! [phases.post_container]          # optional; the job profile has defaults
//! mode = "parallel"                # or "sequential" (the default)
//! timeout = "2s"                   # per call; default: each plugin's call_timeout
//! failure_policy = "fail_open"     # or "fail_closed" (the default)
//!
//! [daemon]                         # optional; `outboard up` only, read at start
//! control_group = "ops"            # may use the control socket too (0660); default: none
//! drain_timeout = "30s"            # SIGTERM: in-flight dispatches get this long
//!
//! [http]                           # optional; `outboard up` only, read at start
//! listen = "127.0.0.1:9464"        # /metrics, /healthz, /readyz; default: no listener
//!
//! [secrets.notifier-hmac]          # a secret plugins granted "secret:notifier-hmac" may read
//! file = "/run/secrets/hmac"       # or env = "VAR", or command = ["prog", "arg"]: one source
//! cache = "5m"                     # how long a value read is kept (the default); "0s": never
//! timeout = "5s"                   # command only: killed after this long (the default)
//!
//! [state]                          # optional; read at start
//! dir = "/var/lib/outboard"        # default: --state-dir, else XDG_STATE_HOME/outboard...
//!
//! [services]                       # optional; host services' bounds, read at start
//! kv_value_size = 65536            # bytes per value
//! kv_namespace_total = 16777216    # bytes of keys plus values per namespace
//! call_timeout = "10s"             # the host's bound on one call
//! max_concurrent_calls = 16        # calls in flight per plugin instance
//!
//! [events]                         # optional; delivery of events to plugins, read at start
//! max_attempts = 5                 # per event and plugin, then the dead-letter list
//! backoff_initial = "1s"           # doubled per attempt, with jitter, up to backoff_max
//! backoff_max = "5m"
//! retention = "24h"                # delivered events (and idempotency keys) kept this long
//! dead_retention = "30d"           # dead letters kept this long unless retried
//! ```
//!
//! `command` is an absolute path, a path relative to the file's directory
//! (through a symlink, the target's) when it contains a `/`, or a bare name
//! looked up on `PATH`. It is resolved
//! when the file is loaded, so a missing executable is reported then, with
//! the file and the line, not at the first spawn.
//!
//! A plugin directory holds one folder per plugin, each with a `plugin.toml`
//! taking the keys of a `[[plugin]]` table. There `name` defaults to the
//! folder's name, relative paths are relative to the folder, a bare
//! `command` names an executable in the folder if there is one (else it is
//! looked up on `PATH`), and `working_dir` defaults to the folder.
//!
//! Unknown keys are errors, so a typo is caught with the file and the line;
//! every duration and count has bounds (`limits`); a file is read only if
//! it is a regular file of at most [`MAX_CONFIG_FILE_BYTES`].
//!
//! # Layout
//!
//! - `spec`: [`PluginSpec`], [`Defaults`], [`HostConfig`]: plain values,
//!   everything resolved.
//! - `state`: [`StateSpec`] and [`ServicesSpec`], the state directory and
//!   the host services' bounds.
//! - `phase`, `subscription`, `supervision`: [`PhaseSpec`] and the job
//!   profile, [`SubscriptionOverride`] and [`Retry`], [`Supervision`] and
//!   [`RestartPolicy`].
//! - `schema`: the TOML format and its resolution into specs.
//! - `discover`: plugin directories.
//! - `sandbox`: [`SandboxSpec`]: `[plugin.sandbox]`, the walls around a
//!   plugin.
//! - `secret`: [`SecretSpec`]: where a `[secrets.NAME]` is read.
//! - `command`: a `command` as an executable's absolute path.
//! - `limits`: the bounds of every duration and count, and of a file's size.
//! - `value`: durations and a config table as JSON.
//! - `error`: [`ConfigError`], naming the file, the line and the field.

mod check;
mod command;
mod discover;
mod error;
mod limits;
mod phase;
mod sandbox;
mod schema;
mod secret;
mod spec;
mod state;
mod subscription;
mod supervision;
mod value;

#[cfg(test)]
mod tests;

pub use command::{COMMAND_LINE_SOURCE, spec_for_command};
pub use discover::{
    ENV_PLUGIN_DIR, dirs_from_env, discover, discover_with, load_plugin_folder, split_dirs,
};
pub use error::{ConfigError, Location, Subject};
pub use limits::{MAX_CONFIG_FILE_BYTES, MAX_DRAIN_TIMEOUT};
pub use phase::{FailurePolicy, JOB_PHASES, Mode, PhaseSpec, job_profile};
pub use sandbox::{FilesystemSpec, Network, STRICT_MEMORY, SandboxSpec};
pub use schema::{CONFIG_FILE_NAME, PACKAGE_MANIFEST_FILE, PLUGIN_FILE_NAME, load};
pub use secret::{
    DEFAULT_SECRET_CACHE, DEFAULT_SECRET_TIMEOUT, MAX_SECRET_NAME_LEN, SecretSource, SecretSpec,
    is_valid_secret_name,
};
pub use spec::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_STOP_GRACE,
    DaemonSpec, Defaults, EventsSpec, HostConfig, HttpSpec, PluginSpec,
};
pub use state::{ROOT_STATE_DIR, ServicesSpec, StateSpec, default_state_dir};
pub use subscription::{Retry, SubscriptionOverride};
pub use supervision::{RestartPolicy, Supervision};
