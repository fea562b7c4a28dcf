//! The command line's definition: every command, flag and help text, for
//! clap. What the commands do is in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod packages;
pub(crate) use packages::{
    InstallArgs, InstallPlace, KeygenArgs, PackageArgs, PluginsArgs, UninstallArgs,
};

const AFTER_HELP: &str = "\
Plugins come from a config file (--config outboard.toml: [[plugin]] tables with a name, a command, \
args, env and a config table) or from plugin directories (--plugin-dir DIR, or OUTBOARD_PLUGIN_DIR: \
every subfolder with a plugin.toml). Without either, ./outboard.toml is used if it exists.

Examples:
  outboard run --config examples/outboard.toml -- make test
  outboard up --config examples/outboard.toml
  outboard describe -- ./target/debug/env-injector
  outboard conformance --plugin notifier --config examples/outboard.toml
  outboard ls --config examples/outboard.toml
  outboard invoke pre_container --config examples/outboard.toml --context '{\"env\": {}}'
  outboard status; outboard logs env-injector -f; outboard restart env-injector; outboard reload
  outboard run --daemon -- make test

Exit status of describe, ls and invoke: 0 success; 1 host error (bad config, a plugin failed to \
start, output that could not be written); 2 bad usage; 3 a plugin vetoed the phase; 4 a plugin \
failed during the phase; 130 interrupted. A signal while plugins stop kills them at once. \
`outboard run` exits with the command's status, or one of its own (see `outboard run --help`).

status, logs, restart, stop, start, reload and events talk to a running daemon (`outboard up`) on \
its control socket (--control-socket, else OUTBOARD_CONTROL_SOCKET, else \
$XDG_RUNTIME_DIR/outboard/control.sock, else /tmp/outboard-UID/control.sock; \
/run/outboard/control.sock for root), as do invoke --daemon and run --daemon (which keep their own \
exit statuses). The management commands exit 0 on success; 1 no daemon, a call it refused (an unknown plugin, a reload that could not apply) or a \
plugin not left in the state asked for; 2 bad usage; 130 interrupted (how -f, --watch and events \
-f end).

Logs go to stderr: plugins' own output at info, the host's at warn. -v shows the host's info, \
-vv its debug; RUST_LOG overrides both.";

/// Outboard runs plugins out of process: it spawns each plugin executable,
/// speaks the outboard.v1 gRPC protocol with it over a private Unix socket,
/// checks its health and fans lifecycle phases out to the plugins
/// subscribed to them. Plugins can be written in any language.
#[derive(Debug, Parser)]
#[command(name = "outboard", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// More host logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How log lines on stderr look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    // Plain comments: clap would show doc comments in --help.
    // Compact human-readable lines.
    Text,
    // One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command as a job, with the job profile's phases around it.
    ///
    /// Phases in order: pre_validation, post_validation, pre_source_prep,
    /// post_source_prep, pre_container; then CMD runs with the environment
    /// and argv as the plugins patched them; post_container gets its
    /// exit_code; on_error runs if anything failed; cleanup always runs
    /// last. A compact summary goes to stderr; --json prints the full report
    /// on stdout.
    ///
    /// Exit status: CMD's own; or 121 a plugin vetoed the job, 122 a plugin
    /// failed it, 125 the host failed (config, a plugin that would not
    /// start, no daemon with --daemon, an environment variable that is not UTF-8, a command or env
    /// the plugins left unusable, or, for a job that succeeded, a report
    /// --json or --report could not print or write), 126 CMD could not be
    /// executed, 127 CMD was not found, 130 interrupted.
    Run(RunArgs),
    /// Start every plugin and keep it running under supervision until
    /// SIGINT or SIGTERM, serving the control socket that `outboard status`,
    /// `logs`, `restart`, `stop`, `start`, `reload`, `events` and
    /// `--daemon` use.
    ///
    /// Plugins that die are restarted with backoff; plugins that miss their
    /// health checks are restarted; a plugin in a crash loop is quarantined.
    /// Every state change is printed on stdout, one line each (JSON with
    /// --json); if stdout cannot be written (a reader gone, a full disk),
    /// that is said once on stderr and supervision goes on without state
    /// lines. The control socket is claimed before any plugin starts (a
    /// second daemon on it refuses, naming the pid that holds it; a stale
    /// one left by a killed daemon is replaced) and served once they have:
    /// `outboard: control socket PATH`, then `outboard: ready: N plugins
    /// under supervision (pid P)` go to stderr. It admits only this uid
    /// (and --control-group). SIGHUP re-reads the config and applies the
    /// difference (the plan, or why nothing changed, goes to stderr). On
    /// SIGINT or SIGTERM new work is refused, dispatches in flight get up
    /// to --drain-timeout, then every plugin stops the graceful way
    /// (dependents first), the socket is removed and the exit status is 0;
    /// a second signal kills their process groups at once (exit 130). As
    /// PID 1 in a container, it also reaps orphans.
    Up(UpArgs),
    /// Start one plugin, print its manifest as JSON, and stop it.
    ///
    /// The quickest check that an executable is a working Outboard plugin:
    /// it must handshake, describe itself with a valid manifest, accept its
    /// config and report healthy. `--plugin NAME` starts a plugin of
    /// --config or --plugin-dir as configured; `-- CMD` starts a command
    /// with the config of --config-json (default {}), every permission it
    /// asks for granted, under its manifest's name (a first launch asks
    /// it).
    ///
    /// --sandbox starts nothing: it prints the walls the plugin gets on
    /// this machine ([plugin.sandbox] over [defaults.sandbox]), each
    /// setting with its value and how the kernel enforces it here (--json:
    /// an array of {setting, value, mechanism}); exit status 1 if a wall
    /// it asks for cannot be built here (and best_effort is not set).
    Describe(DescribeArgs),
    /// Run a battery of conformance checks against a plugin executable.
    ///
    /// Checks, in order: run-by-hand (without OUTBOARD_* variables it exits
    /// 1 within 5 s, silent on stdout, a message on stderr); handshake (a
    /// valid line within the timeout, for an offered version, naming
    /// OUTBOARD_SOCKET); socket permissions (a socket, mode 0600 or
    /// stricter); token required (Describe without or with a wrong token is
    /// UNAUTHENTICATED); describe (a valid manifest); configure valid (with --plugin,
    /// its configured config and grants; with `-- CMD`, --config-json or
    /// {}, every asked permission granted); configure invalid (a
    /// config its schema rejects gets INVALID_ARGUMENT); health (SERVING for
    /// ""); invoke (each subscribed phase, a small job context, 2 s
    /// deadline: a known outcome and a patch that applies); unknown fields
    /// tolerated (an Invoke carrying protobuf field 999); deadline honoured
    /// (a 50 ms Invoke is answered within 1 s of its deadline, and the next
    /// Invoke still works); shutdown (answered, exit 0 within 2.5 s);
    /// sigterm (a fresh instance exits within 2 s of SIGTERM). A check that
    /// could not run because an earlier one failed is reported as failed
    /// ("skipped: ..."); one that does not apply passes ("skipped: ...").
    /// Nothing is left running afterwards.
    ///
    /// --sandbox strict runs every instance of the battery under the strict
    /// preset: memory = "256Mi" (a smaller configured limit stays), network
    /// = "none", and a filesystem wall (Landlock) limiting the plugin to its
    /// own files (its command, its interpreters and their Python
    /// environment, its working directory), its runtime directory
    /// (read-write) and the system's libraries, plus the filesystem paths
    /// its configuration lists; best_effort off, so a wall this machine
    /// cannot build fails the battery. The walls and how the kernel
    /// enforces each are listed on stderr first.
    ///
    /// Exit status: 0 every check passed; 1 some check failed.
    Conformance(ConformanceArgs),
    /// Start every configured plugin, list them, and stop them.
    ///
    /// Shows each plugin's name, version, subscribed phases (with
    /// priorities), pid, state and the milliseconds from spawn to ready. A
    /// plugin that fails to start is listed with its error, and the exit
    /// status is 1.
    Ls(LsArgs),
    /// Invoke one phase on every plugin subscribed to it.
    ///
    /// The phase runs as declared ([phases.NAME] in the config; the job
    /// profile's defaults for its phases; else sequential): sequential
    /// phases run lowest priority first (ties by name), each plugin seeing
    /// the context as patched by those before it, a veto or a fail-closed
    /// failure stopping the chain; parallel phases run every plugin on the
    /// same context and merge their patches. Prints each plugin's outcome
    /// and patch, and the final context. A phase no plugin subscribes to
    /// passes, and stderr says so.
    Invoke(InvokeArgs),
    /// Show a running daemon's plugins (or one): state, pid, uptime,
    /// restarts, calls, latency, memory and CPU.
    ///
    /// Columns: NAME, VERSION, STATE, PID, UPTIME (since ready), RESTARTS,
    /// CALLS (by outcome: ok, vetoed, failed, timed out, crashed, skipped;
    /// only those that happened), P50 and P99 (call latency over the recent
    /// window), RSS (of the plugin's process group), CPU% (of one core, over
    /// the last sampling interval) and PHASES; then each plugin's last exit
    /// reason. --watch draws it again on every change until interrupted
    /// (into a pipe or a file: on each state change or reload, not on
    /// every dispatch).
    ///
    /// --json prints {"daemon": {pid, version, started_at, config_source,
    /// control_socket, reloads, in_flight}, "plugins": [{name, version,
    /// state, pid, uptime_ms, restarts, last_exit_reason, last_stderr,
    /// phases, invocations: {ok, vetoed, failed, timed_out,
    /// crashed, skipped}, latency_p50_ms, latency_p99_ms, latency_window,
    /// rss_bytes, cpu_percent, cpu_time_ms}]} (pid, uptime_ms, the
    /// latencies and last_exit_reason null when there are none; rss_bytes
    /// and cpu_percent null until the plugin's processes are first
    /// measured, as the table's "-"); with
    /// --watch, one such object per line per change.
    Status(StatusArgs),
    /// Print a plugin's recent log lines from the daemon's ring buffer.
    ///
    /// Each line: time (UTC), stream, level, message (and a JSON line's
    /// other fields). Lines the ring dropped show as "… N lines dropped".
    /// -f follows new lines until interrupted.
    ///
    /// --json prints one object per line: {"time", "stream", "level",
    /// "message", "fields" (an object or null), "sequence"}, and
    /// {"dropped": N} where lines are missing.
    Logs(LogsArgs),
    /// Restart one plugin, or every one, on the daemon; prints the
    /// resulting states.
    ///
    /// A quarantined plugin starts afresh. Waits until each is ready again,
    /// failed, or 30 s passed; exit status 1 if any is not ready. The table
    /// is `status`'s; --json prints {"plugins": [...]}, each as in
    /// `status --json`.
    Restart(RestartArgs),
    /// Stop a plugin on the daemon (an operator's disable); prints its
    /// state.
    ///
    /// It leaves every route, finishes its calls in flight and stops, and
    /// stays stopped across reloads until `outboard start`. The table is
    /// `status`'s; --json prints {"plugins": [...]}, as in `status --json`.
    Stop(PluginArgs),
    /// Start a plugin stopped with `outboard stop`; prints its state.
    ///
    /// It rejoins its routes once ready; exit status 1 if it is not ready
    /// within 30 s. The table is `status`'s; --json prints {"plugins":
    /// [...]}, as in `status --json`.
    Start(PluginArgs),
    /// Make the daemon re-read its config and plugin directories and apply
    /// the difference; prints the plan.
    ///
    /// Unchanged plugins keep running; added ones start; removed ones
    /// finish their calls and stop; changed ones are replaced blue/green.
    /// A reload that cannot apply changes nothing: its error is printed and
    /// the exit status is 1. --dry-run only prints the plan.
    ///
    /// --json prints {"applied": bool, "plan": {"unchanged", "added",
    /// "removed", "changed": [{"name", "fields"}], "disabled",
    /// "phases_changed"}}.
    Reload(ReloadArgs),
    /// Print the daemon's events, one line each: plugin state changes,
    /// completed dispatches, reloads.
    ///
    /// Oldest first: the recent events the daemon keeps, then every
    /// plugin's status as it is now; -f then follows until interrupted. --json prints one object
    /// per line with "time" and "type": "plugin" (the fields of a
    /// `status --json` plugin), "dispatch" (phase, invocation_id, verdict,
    /// duration_ms, entries: [{plugin, outcome, failure, duration_ms}]),
    /// "reload" (plan, error) or "missed" (count: events this watcher fell
    /// behind on).
    ///
    /// With --dead: the dead letters instead, deliveries of published events
    /// that ran out of attempts ([events] max_attempts); --json prints one
    /// object per line (id, event_id, event, subscriber, attempts,
    /// last_error, time). --retry ID, or --retry --all, puts them back.
    Events(EventsArgs),
    /// Publish an event as the operator (source "operator"), delivered to
    /// the plugins that subscribe to it (PROTOCOL.md §17.6).
    ///
    /// To the running daemon by default (Emit); with --config or
    /// --plugin-dir (and --state-dir), written straight into that
    /// configuration's outbox in the state directory instead, and
    /// delivered when a host of that configuration next runs (or at once,
    /// by its daemon, if one runs). Prints the event's id.
    Emit(EmitArgs),
    /// Make a minisign key pair to sign plugin packages with.
    ///
    /// The secret key (unencrypted, mode 0600) goes to --out, the public
    /// key to --out.pub; an existing file is never overwritten. Prints the
    /// key id and the public key to give to those who install.
    Keygen(KeygenArgs),
    /// Build a plugin package (.tar.gz) from a plugin folder.
    ///
    /// The plugin is started once to ask its name and version. The package
    /// holds the folder's regular files and outboard-package.toml listing
    /// each file's path, mode and SHA-256; with --sign, also the manifest's
    /// minisign signature (`minisign -V` verifies it). Symlinks and special
    /// files are refused.
    Package(PackageArgs),
    /// Verify a plugin package and install it into a plugin directory.
    ///
    /// Checks, before anything is written in place: the signature against
    /// the trusted keys (--trust, [trust] keys), every file's checksum, that
    /// no entry escapes the package (absolute, `..`, symlinks, hard links,
    /// devices), and that the plugin, started once, gives the manifest's name
    /// and version. Then renames it into place in one step; a previous version
    /// stays until then. A running daemon picks it up on `outboard reload`.
    Install(InstallArgs),
    /// Remove a plugin that `outboard install` installed.
    Uninstall(UninstallArgs),
    /// List the plugins installed from packages: name, version, signer key
    /// id, path.
    Plugins(PluginsArgs),
}

/// The arguments of `outboard run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Where the plugins come from.
    #[command(flatten)]
    pub(crate) source: Source,
    /// Run the phases but not the command.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the full job report as JSON on stdout, after the command's
    /// own output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the full job report as JSON to FILE; stdout stays the
    /// command's. A regular file (also behind a symlink) is replaced whole,
    /// so a reader never sees half a report; a character device or a FIFO
    /// with a reader is written directly; anything else is refused.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Run the phases on a running daemon's plugins (`outboard up`)
    /// instead of starting them; CMD still runs here.
    #[command(flatten)]
    pub(crate) daemon: DaemonChoice,
    /// Where host services keep their state.
    #[command(flatten)]
    pub(crate) state: StateDir,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

/// The arguments of `outboard up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where the plugins come from (and what SIGHUP or `outboard reload`
    /// reads again).
    #[command(flatten)]
    pub(crate) source: Source,
    /// Print state changes as JSON lines.
    #[arg(long)]
    pub(crate) json: bool,
    /// The control socket to serve (default: OUTBOARD_CONTROL_SOCKET, else
    /// $XDG_RUNTIME_DIR/outboard/control.sock, else /run/outboard/ for root
    /// and /tmp/outboard-UID/ for others).
    #[arg(long, value_name = "PATH")]
    pub(crate) control_socket: Option<PathBuf>,
    /// A group whose members may use the control socket too (it is then
    /// 0660 in that group; default: the config's [daemon] control_group,
    /// else none: the daemon's uid only).
    #[arg(long, value_name = "NAME")]
    pub(crate) control_group: Option<String>,
    /// On SIGINT or SIGTERM, how long dispatches in flight may take to
    /// finish before the plugins stop anyway (default: the config's
    /// [daemon] drain_timeout, else 30s; at most 1h, as for that key).
    #[arg(long, value_name = "DURATION", value_parser = drain_timeout)]
    pub(crate) drain_timeout: Option<Duration>,
    /// Serve /metrics, /healthz, /readyz and /plugins/NAME/health over
    /// HTTP on this address, e.g. 127.0.0.1:9464 (port 0 picks a free one;
    /// default: the config's [http] listen, else no listener).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<std::net::SocketAddr>,
    /// Where host services keep their state.
    #[command(flatten)]
    pub(crate) state: StateDir,
}

/// The arguments of `outboard describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// Print the walls the plugin would get here instead of its manifest,
    /// without starting it.
    #[arg(long)]
    pub(crate) sandbox: bool,
    /// With --sandbox, print the walls as a JSON array of {setting, value,
    /// mechanism}.
    #[arg(long, requires = "sandbox")]
    pub(crate) json: bool,
    /// Which plugin, and how it is set up.
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// The arguments of `outboard conformance`.
#[derive(Debug, Args)]
pub(crate) struct ConformanceArgs {
    /// Print the results as a JSON array of {name, passed, detail}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Run the plugin under a sandbox preset over its configured walls:
    /// `strict` (256Mi of memory, no network, only its own files).
    #[arg(long, value_name = "PRESET")]
    pub(crate) sandbox: Option<SandboxPreset>,
    /// Offer the plugin the invoke fast path (`on`) and check it if the
    /// plugin lists it, or not (`off`: the plugin stays on gRPC). Default:
    /// as configured for --plugin (`fastpath`, on unless set off), else on.
    #[arg(long, value_name = "SWITCH")]
    pub(crate) fastpath: Option<Switch>,
    /// Which plugin, and how it is set up.
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// A sandbox preset for `outboard conformance --sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SandboxPreset {
    /// memory = "256Mi", network = "none", filesystem limited to the
    /// plugin's own files.
    Strict,
}

/// The one plugin `describe` and `conformance` work on: a configured one
/// (--plugin) or a command line (`-- CMD`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["plugin", "command"])))]
pub(crate) struct TargetArgs {
    /// The plugin, by its name in --config or --plugin-dir, started as
    /// configured (env, args, working directory, config, grants).
    #[arg(long, value_name = "NAME")]
    pub(crate) plugin: Option<String>,
    /// Where --plugin is configured.
    #[command(flatten)]
    pub(crate) source: Source,
    /// How long the plugin may take to print its handshake line (default:
    /// the config's for --plugin, else 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) handshake_timeout: Option<Duration>,
    /// The config for a plugin started with `-- CMD` (a JSON object;
    /// default {}), when its schema does not accept {}.
    #[arg(long, value_name = "JSON", conflicts_with = "plugin")]
    pub(crate) config_json: Option<String>,
    /// The plugin's command and arguments, after `--` (instead of
    /// --plugin).
    #[arg(
        last = true,
        conflicts_with_all = ["plugin", "config", "plugin_dir"],
        value_name = "CMD"
    )]
    pub(crate) command: Vec<String>,
}

/// The arguments of `outboard ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Where the plugins come from.
    #[command(flatten)]
    pub(crate) source: Source,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The arguments of `outboard invoke`.
#[derive(Debug, Args)]
pub(crate) struct InvokeArgs {
    /// The phase, e.g. pre_container (1 to 64 characters of a-z, 0-9,
    /// '_', '.', '-').
    #[arg(value_parser = phase_name)]
    pub(crate) phase: String,
    /// The phase context: a JSON object, or @FILE to read one (at most
    /// 16 MiB).
    #[arg(long, default_value = "{}")]
    pub(crate) context: String,
    /// Where the plugins come from.
    #[command(flatten)]
    pub(crate) source: Source,
    /// Print the full report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Dispatch on a running daemon's plugins (`outboard up`) instead of
    /// starting them.
    #[command(flatten)]
    pub(crate) daemon: DaemonChoice,
    /// Where host services keep their state.
    #[command(flatten)]
    pub(crate) state: StateDir,
}

/// `--state-dir`, for the commands that start plugins.
#[derive(Debug, Clone, Args)]
pub(crate) struct StateDir {
    /// The state directory of host services (the plugins' key-value store,
    /// events), created 0700 if missing (default: the config's [state]
    /// dir, else systemd's $STATE_DIRECTORY, else /var/lib/outboard for
    /// root, else $XDG_STATE_HOME/outboard, else ~/.local/state/outboard).
    #[arg(long, value_name = "DIR", env = "OUTBOARD_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

/// `--daemon` and the socket it goes with, for `run` and `invoke`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DaemonChoice {
    /// Use the daemon on the control socket (see --control-socket) instead
    /// of starting the plugins; --config and --plugin-dir do not apply.
    #[arg(long, conflicts_with_all = ["config", "plugin_dir"])]
    pub(crate) daemon: bool,
    /// With --daemon: the daemon's control socket (default:
    /// OUTBOARD_CONTROL_SOCKET, else $XDG_RUNTIME_DIR/outboard/control.sock,
    /// else /tmp/outboard-UID/control.sock, /run/outboard/control.sock for
    /// root).
    #[arg(long, value_name = "PATH", requires = "daemon")]
    pub(crate) control_socket: Option<PathBuf>,
}

/// The daemon a management command talks to.
#[derive(Debug, Clone, Args)]
pub(crate) struct Control {
    /// The daemon's control socket (default: OUTBOARD_CONTROL_SOCKET, else
    /// $XDG_RUNTIME_DIR/outboard/control.sock, else
    /// /tmp/outboard-UID/control.sock, /run/outboard/control.sock for root).
    #[arg(long, value_name = "PATH")]
    pub(crate) control_socket: Option<PathBuf>,
}

/// The arguments of `outboard status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Only this plugin.
    pub(crate) name: Option<String>,
    /// Draw again on every change, until interrupted.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The plugin.
    pub(crate) name: String,
    /// Follow new lines until interrupted.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Only the last N lines (default: every line the ring holds).
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub(crate) lines: Option<u32>,
    /// Only lines newer than this, e.g. 10m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) since: Option<Duration>,
    /// One JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard restart`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["name", "all"])))]
pub(crate) struct RestartArgs {
    /// The plugin.
    pub(crate) name: Option<String>,
    /// Every plugin.
    #[arg(long)]
    pub(crate) all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard stop` and `outboard start`.
#[derive(Debug, Args)]
pub(crate) struct PluginArgs {
    /// The plugin.
    pub(crate) name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard reload`.
#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// Only print the plan; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print JSON instead of text: `{"applied": BOOL, "plan": {...}}`, or
    /// on failure `{"applied": false, "error": "why"}` (exit status 1, the
    /// error on stderr too).
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard emit`.
#[derive(Debug, Args)]
pub(crate) struct EmitArgs {
    /// The event's name: 1 to 128 characters of a-z, 0-9, '_', '.', '-',
    /// not starting with plugin., job., reload. or host. (the host's own).
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The payload, any JSON value (default: null).
    #[arg(long, value_name = "JSON")]
    pub(crate) data: Option<String>,
    /// Without a daemon: the configuration whose outbox receives it.
    #[command(flatten)]
    pub(crate) source: Source,
    /// Without a daemon: the state directory.
    #[command(flatten)]
    pub(crate) state: StateDir,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// The arguments of `outboard events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// List the dead letters instead: deliveries that ran out of attempts
    /// (id, event, subscriber, attempts, last error, time).
    #[arg(long, conflicts_with_all = ["follow", "plugin", "retry"])]
    pub(crate) dead: bool,
    /// Deliver a dead letter again, attempts counted afresh (its id, as
    /// `--dead` lists it; or --all for every one).
    #[arg(
        long,
        value_name = "ID",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with_all = ["follow", "plugin"]
    )]
    pub(crate) retry: Option<String>,
    /// With --retry: every dead letter.
    #[arg(long, requires = "retry")]
    pub(crate) all: bool,
    /// Only this plugin's events (and dispatches it took part in).
    #[arg(long, value_name = "NAME")]
    pub(crate) plugin: Option<String>,
    /// Follow new events until interrupted.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// JSON lines.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which daemon.
    #[command(flatten)]
    pub(crate) control: Control,
}

/// A phase name as the protocol allows it, or why not (bad usage, exit 2).
/// A drain timeout, bounded as `[daemon] drain_timeout` is.
fn drain_timeout(arg: &str) -> Result<Duration, String> {
    let max = outboard_host::config::MAX_DRAIN_TIMEOUT;
    match humantime::parse_duration(arg) {
        Ok(d) if d > max => Err(format!(
            "{arg:?} is longer than the maximum, {}",
            humantime::format_duration(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{arg:?} is not a duration like \"10s\" or \"500ms\": {e}"
        )),
    }
}

fn phase_name(arg: &str) -> Result<String, String> {
    if outboard_proto::names::is_valid_phase_name(arg) {
        Ok(arg.to_owned())
    } else {
        Err(outboard_proto::names::invalid_phase_name(arg))
    }
}

/// Where the plugins come from.
#[derive(Debug, Clone, Args)]
pub(crate) struct Source {
    /// A config file with [[plugin]] tables (and [phases.NAME]).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A directory whose subfolders each hold a plugin.toml (repeatable;
    /// adds to --config; default: OUTBOARD_PLUGIN_DIR, colon-separated).
    #[arg(long, value_name = "DIR")]
    pub(crate) plugin_dir: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_drain_timeout_flag_has_the_config_keys_bound() {
        use clap::Parser;
        let up = |value: &str| Cli::try_parse_from(["outboard", "up", "--drain-timeout", value]);
        assert!(up("1h").is_ok());
        let err = up("2h").expect_err("over the bound").to_string();
        assert!(
            err.contains("\"2h\" is longer than the maximum, 1h"),
            "{err}"
        );
        let err = up("soon").expect_err("not a duration").to_string();
        assert!(err.contains("is not a duration"), "{err}");
    }
}
