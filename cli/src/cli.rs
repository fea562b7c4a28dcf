//! The `outboard` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use outboard_host::config::{self as registry, HostConfig};
use outboard_host::job;
use outboard_host::{
    Entry, FailureKind, FailurePolicy, Host, Outcome, Plugin, Report, Verdict, start_all, stop_all,
};

/// Exit status when the host itself failed: bad config, a plugin that would
/// not start.
pub const EXIT_HOST_ERROR: u8 = 1;
/// Exit status of `invoke` when a plugin vetoed the phase.
pub const EXIT_VETOED: u8 = 3;
/// Exit status of `invoke` when a plugin failed during the phase.
pub const EXIT_FAILED: u8 = 4;
/// Exit status after SIGINT (128 + 2, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

const AFTER_HELP: &str = "\
Plugins come from a config file (--config outboard.toml: [[plugin]] tables with a name, a command, \
args, env and a config table) or from plugin directories (--plugin-dir DIR, or OUTBOARD_PLUGIN_DIR: \
every subfolder with a plugin.toml). Without either, ./outboard.toml is used if it exists.

Examples:
  outboard run --config examples/outboard.toml -- make test
  outboard up --config examples/outboard.toml
  outboard describe -- ./target/debug/env-injector
  outboard ls --config examples/outboard.toml
  outboard invoke pre_container --config examples/outboard.toml --context '{\"env\": {}}'

Exit status of describe, ls and invoke: 0 success; 1 host error (bad config, a plugin failed to \
start); 2 bad usage; 3 a plugin vetoed the phase; 4 a plugin failed during the phase; 130 interrupted. \
`outboard run` exits with the command's status, or one of its own (see `outboard run --help`).

Logs go to stderr: plugins' own output at info, the host's at warn. -v shows the host's info, \
-vv its debug; RUST_LOG overrides both.";

/// Outboard runs plugins out of process: it spawns each plugin executable,
/// speaks the outboard.v1 gRPC protocol with it over a private Unix socket,
/// checks its health and fans lifecycle phases out to the plugins
/// subscribed to them. Plugins can be written in any language.
#[derive(Debug, Parser)]
#[command(name = "outboard", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// More host logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// start), 126 CMD could not be executed, 127 CMD was not found, 130
    /// interrupted.
    Run {
        #[command(flatten)]
        source: Source,
        /// Run the phases but not the command.
        #[arg(long)]
        dry_run: bool,
        /// Print the full job report as JSON on stdout, after the command's
        /// own output.
        #[arg(long)]
        json: bool,
        /// Write the full job report as JSON to FILE (replaced whole, so a
        /// reader never sees half a report); stdout stays the command's.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Start every plugin and keep it running under supervision until
    /// SIGINT or SIGTERM.
    ///
    /// Plugins that die are restarted with backoff; plugins that miss their
    /// health checks are restarted; a plugin in a crash loop is quarantined.
    /// Every state change is printed on stdout, one line each (JSON with
    /// --json). Once every plugin has started, `outboard: ready: N plugins
    /// under supervision (pid P)` goes to stderr. On SIGINT or SIGTERM the host stops every plugin the
    /// graceful way (dependents first) and exits 0; a second signal stops
    /// them at once. As PID 1 in a container, it also reaps orphans.
    Up {
        #[command(flatten)]
        source: Source,
        /// Print state changes as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Start one plugin, print its manifest as JSON, and stop it.
    ///
    /// The quickest check that an executable is a working Outboard plugin:
    /// it must handshake, describe itself with a valid manifest, accept an
    /// empty config and report healthy.
    Describe {
        /// How long the plugin may take to print its handshake line.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        handshake_timeout: Duration,
        /// The plugin's command and arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Run a battery of conformance checks against a plugin executable.
    ///
    /// Checks, in order: run-by-hand (without OUTBOARD_* variables it exits
    /// 1 within 5 s, silent on stdout, a message on stderr); handshake (a
    /// valid line within the timeout, for an offered version, naming
    /// OUTBOARD_SOCKET); socket permissions (a socket, mode 0600 or
    /// stricter); token required (Describe without or with a wrong token is
    /// UNAUTHENTICATED); describe (a valid manifest); configure valid ({} or
    /// --config, every asked permission granted); configure invalid (a
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
    /// Exit status: 0 every check passed; 1 some check failed.
    Conformance {
        /// Print the results as a JSON array of {name, passed, detail}.
        #[arg(long)]
        json: bool,
        /// How long the plugin may take to print its handshake line.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        handshake_timeout: Duration,
        /// A valid config (a JSON object), for a plugin whose schema does
        /// not accept {}.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// The plugin's command and arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Start every configured plugin, list them, and stop them.
    ///
    /// Shows each plugin's name, version, subscribed phases (with
    /// priorities), pid, state and the milliseconds from spawn to ready. A
    /// plugin that fails to start is listed with its error, and the exit
    /// status is 1.
    Ls {
        #[command(flatten)]
        source: Source,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Invoke one phase on every plugin subscribed to it.
    ///
    /// The phase runs as declared ([phases.NAME] in the config; the job
    /// profile's defaults for its phases; else sequential): sequential
    /// phases run lowest priority first (ties by name), each plugin seeing
    /// the context as patched by those before it, a veto or a fail-closed
    /// failure stopping the chain; parallel phases run every plugin on the
    /// same context and merge their patches. Prints each plugin's outcome
    /// and patch, and the final context.
    Invoke {
        /// The phase, e.g. pre_container.
        phase: String,
        /// The phase context: a JSON object, or @FILE to read one.
        #[arg(long, default_value = "{}")]
        context: String,
        #[command(flatten)]
        source: Source,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the plugins come from.
#[derive(Debug, Clone, Args)]
struct Source {
    /// A config file with [[plugin]] tables (and [phases.NAME]).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// A directory whose subfolders each hold a plugin.toml (repeatable;
    /// adds to --config; default: OUTBOARD_PLUGIN_DIR, colon-separated).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Vec<PathBuf>,
}

impl Source {
    /// The host config the flags point to.
    fn config(&self) -> anyhow::Result<HostConfig> {
        let dirs = if self.plugin_dir.is_empty() && self.config.is_none() {
            registry::dirs_from_env()
        } else {
            self.plugin_dir.clone()
        };
        let mut config = match &self.config {
            Some(file) => registry::load(file)?,
            None if dirs.is_empty() => {
                let default = PathBuf::from(registry::CONFIG_FILE_NAME);
                if !default.exists() {
                    bail!(
                        "no plugins to run: give --config FILE or --plugin-dir DIR \
                         (or set OUTBOARD_PLUGIN_DIR), or create ./outboard.toml"
                    );
                }
                registry::load(&default)?
            }
            None => HostConfig::default(),
        };
        // Plugins found in directories get the file's [defaults] too.
        let found = registry::discover_with(&dirs, &config.defaults)?;
        config.add_plugins(found)?;
        Ok(config)
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("outboard: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_HOST_ERROR);
        }
    };
    runtime.block_on(async {
        match run(cli.command).await {
            Ok(code) => ExitCode::from(code),
            Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_BROKEN_PIPE),
            Err(err) => {
                eprintln!("outboard: {err:#}");
                ExitCode::from(EXIT_HOST_ERROR)
            }
        }
    })
}

/// What a shell reports for a process killed by SIGPIPE (128 + 13). Rust
/// ignores SIGPIPE (the host writes to plugin sockets that may close), so a
/// reader that went away (`outboard ls | head -1`) shows up as an error.
const EXIT_BROKEN_PIPE: u8 = 141;

/// True if `err` comes from writing to a pipe whose reader has gone: not
/// worth a message, the reader chose to stop.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGINT or SIGTERM, listened for from the moment this is called rather
/// than from the first poll (an `async fn` registers nothing until then): a
/// signal sent right after `outboard up` says it is ready must not meet the
/// default action, which would kill the host without stopping its plugins.
fn listen_for_shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let recv = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = recv(term) => {}
            () = recv(int) => {}
        }
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first. On a signal, `work` is
/// dropped: plugins it was still starting are killed with their groups.
async fn unless_interrupted<T>(work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = shutdown_signal() => {
            eprintln!("outboard: interrupted");
            None
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "outboard::plugin=info,warn",
        1 => "info",
        _ => "debug,h2=info,tower=info,hyper_util=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run {
            source,
            dry_run,
            json,
            report,
            command,
        } => Ok(run_job(&source, command, dry_run, json, report.as_deref()).await),
        Command::Describe {
            handshake_timeout,
            command,
        } => describe(command, handshake_timeout).await,
        Command::Conformance {
            json,
            handshake_timeout,
            config,
            command,
        } => crate::conformance::main(command, handshake_timeout, config.as_deref(), json).await,
        Command::Ls { source, json } => ls(source.config()?, json).await,
        Command::Up { source, json } => up(&source.config()?, json).await,
        Command::Invoke {
            phase,
            context,
            source,
            json,
        } => invoke(&phase, &context, &source.config()?, json).await,
    }
}

async fn describe(command: Vec<String>, handshake_timeout: Duration) -> anyhow::Result<u8> {
    let mut spec = registry::spec_for_command(&command)?;
    spec.handshake_timeout = handshake_timeout;
    // Describing is not running a job: a plugin that refuses to start
    // without a permission (FAILED_PRECONDITION) can still be described.
    spec.grant = vec!["*".to_owned()];
    let Some(plugin) = unless_interrupted(Plugin::start(&spec)).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let plugin = plugin?;
    let manifest = serde_json::to_string_pretty(plugin.manifest())?;
    plugin.stop().await;
    writeln!(std::io::stdout().lock(), "{manifest}")?;
    Ok(0)
}

async fn ls(config: HostConfig, as_json: bool) -> anyhow::Result<u8> {
    let Some((plugins, failures)) = unless_interrupted(start_all(config.plugins)).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let mut rows: Vec<Value> = plugins
        .iter()
        .map(|p| {
            let phases: Vec<Value> = p
                .manifest()
                .subscriptions
                .iter()
                .map(|s| {
                    // What dispatch will use: the config's override wins.
                    let over = p.spec().subscriptions.get(&s.phase);
                    json!({
                        "phase": s.phase,
                        "priority": over.and_then(|o| o.priority).unwrap_or(s.priority),
                        "enabled": over.is_none_or(|o| o.enabled),
                    })
                })
                .collect();
            json!({
                "name": p.name(),
                "version": p.manifest().version.to_string(),
                "phases": phases,
                "pid": p.pid(),
                "state": "ready",
                "ready_ms": round_ms(p.ready_after()),
            })
        })
        .collect();
    rows.extend(
        failures
            .iter()
            .map(|(name, err)| json!({"name": name, "state": "failed", "error": err.to_string()})),
    );
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    stop_all(plugins).await;

    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        print_table(&mut out, &rows)?;
    }
    Ok(if failures.is_empty() {
        0
    } else {
        EXIT_HOST_ERROR
    })
}

async fn invoke(
    phase: &str,
    context: &str,
    config: &HostConfig,
    as_json: bool,
) -> anyhow::Result<u8> {
    let context = parse_context(context)?;
    let Some(host) = unless_interrupted(Host::start(config)).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let host = host?;
    let Some(report) = unless_interrupted(host.dispatch(phase, context)).await else {
        // Ready plugins get the whole stop sequence, not a SIGKILL.
        host.stop().await;
        return Ok(EXIT_INTERRUPTED);
    };
    host.stop().await;

    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(match report.verdict {
        Verdict::Passed => 0,
        Verdict::Vetoed { .. } => EXIT_VETOED,
        Verdict::Failed { .. } => EXIT_FAILED,
        _ => EXIT_FAILED,
    })
}

/// `outboard up`: plugins under supervision until a signal.
async fn up(config: &HostConfig, as_json: bool) -> anyhow::Result<u8> {
    // One listener from before the start to the stop: no moment without one.
    let mut stop = std::pin::pin!(listen_for_shutdown());
    let host = tokio::select! {
        host = Host::start(config) => host?,
        () = &mut stop => {
            eprintln!("outboard: interrupted");
            return Ok(EXIT_INTERRUPTED);
        }
    };
    let report = |name: &str, status: &outboard_host::Status| {
        if as_json {
            let line = json!({"plugin": name, "status": status});
            // Supervision goes on if nobody reads stdout any more.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        } else {
            let pid = status.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let reason = status.reason.as_deref().unwrap_or("");
            let _ = writeln!(
                std::io::stdout().lock(),
                "{name}: {:?} (pid {pid}, starts {}) {reason}",
                status.state,
                status.starts
            );
        }
    };
    // Follow every plugin's state until a signal comes: each supervisor
    // tells of its changes as they happen.
    let (changes_tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    for plugin in host.plugins() {
        let mut sub = plugin.subscribe();
        let name = plugin.name().to_owned();
        let tx = changes_tx.clone();
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(status) => {
                        if tx.send((name.clone(), status)).is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    drop(changes_tx);
    let mut last = std::collections::HashMap::new();
    for plugin in host.plugins() {
        let status = plugin.status();
        report(plugin.name(), &status);
        last.insert(plugin.name().to_owned(), (status.state, status.pid));
    }
    // The moment a wrapper, a probe or a benchmark can rely on: every
    // plugin has started (Host::start returns only then).
    let count = host.plugins().len();
    eprintln!(
        "outboard: ready: {count} plugin{} under supervision (pid {}); SIGINT or SIGTERM stops them",
        if count == 1 { "" } else { "s" },
        std::process::id()
    );
    let watch_all = async {
        while let Some((name, status)) = changes.recv().await {
            if last.insert(name.clone(), (status.state, status.pid))
                != Some((status.state, status.pid))
            {
                report(&name, &status);
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = watch_all => {}
        () = &mut stop => {}
    }
    eprintln!("outboard: stopping every plugin (signal again to stop them at once)");
    tokio::select! {
        () = host.shutdown() => Ok(0),
        () = shutdown_signal() => {
            eprintln!("outboard: interrupted twice; killing plugins");
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// `outboard run`: host errors become exit status 125 here, since the
/// command's own statuses 1 to 120 must stay distinguishable.
async fn run_job(
    source: &Source,
    command: Vec<String>,
    dry_run: bool,
    as_json: bool,
    report_file: Option<&Path>,
) -> u8 {
    let config = match source.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outboard: {err:#}");
            return job::EXIT_HOST_ERROR;
        }
    };
    // One listener from before the start: no moment without one.
    let mut first_signal = Box::pin(listen_for_shutdown());
    let host = tokio::select! {
        host = Host::start(&config) => host,
        () = &mut first_signal => {
            eprintln!("outboard: interrupted");
            return job::EXIT_INTERRUPTED;
        }
    };
    let host = match host {
        Ok(host) => host,
        Err(err) => {
            eprintln!("outboard: {err}");
            return job::EXIT_HOST_ERROR;
        }
    };
    let env = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let spec = job::Job {
        command,
        env,
        dry_run,
    };

    // The first signal stops the job the orderly way (on_error and cleanup
    // still run); a second one cuts it short.
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    let second_signal = async move {
        first_signal.await;
        let second = listen_for_shutdown();
        eprintln!(
            "outboard: stopping the job; on_error and cleanup still run (signal again to cut them short)"
        );
        let _ = interrupt.send(true);
        second.await;
    };
    let report = tokio::select! {
        report = job::run(&host, spec, interrupted) => report,
        () = second_signal => {
            eprintln!("outboard: interrupted twice; stopping plugins now");
            host.stop().await;
            return job::EXIT_INTERRUPTED;
        }
    };
    host.stop().await;

    let mut err = std::io::stderr().lock();
    let _ = print_job_summary(&mut err, &report);
    if as_json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
                    eprintln!("outboard: cannot print the report: {e}");
                }
            }
            Err(e) => eprintln!("outboard: cannot print the report: {e}"),
        }
    }
    if let Some(path) = report_file
        && let Err(err) = write_report(path, &report)
    {
        eprintln!(
            "outboard: cannot write the report to {}: {err:#}",
            path.display()
        );
        // Whoever asked for the file relies on it: a job that succeeded
        // without its report is a host error.
        if report.exit_code == 0 {
            return job::EXIT_HOST_ERROR;
        }
    }
    report.exit_code
}

/// Writes `report` to a temporary file beside `path`, then renames it over
/// `path`.
fn write_report(path: &Path, report: &job::JobReport) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, report)?;
    file.write_all(b"\n")?;
    file.persist(path)?;
    Ok(())
}

/// phase → plugin → outcome → ms, and the command in its place.
fn print_job_summary(out: &mut impl Write, report: &job::JobReport) -> std::io::Result<()> {
    let status = match report.status {
        job::Status::Succeeded => "succeeded",
        job::Status::Failed => "failed",
    };
    writeln!(
        out,
        "outboard: job {} {status} (exit {}) in {:.1} ms{}",
        report.job_id,
        report.exit_code,
        report.duration.as_secs_f64() * 1000.0,
        if report.dry_run {
            ", dry run: command not run"
        } else {
            ""
        }
    )?;
    if let Some(failure) = &report.failure {
        writeln!(out, "  {} failed: {}", failure.phase, failure.message)?;
    }
    let phase_width = job::BEFORE
        .iter()
        .chain(["post_container", "on_error", "cleanup", "command"].iter())
        .map(|p| p.len())
        .max()
        .unwrap_or(0);
    let plugin_width = report
        .phases
        .iter()
        .flat_map(|r| r.entries.iter().map(|e| e.plugin.len()))
        .max()
        .unwrap_or(0)
        .max(7);
    let row = |out: &mut dyn Write, phase: &str, who: &str, outcome: &str, ms: f64, note: &str| {
        let line = format!(
            "  {phase:<phase_width$}  {who:<plugin_width$}  {outcome:<16}  {ms:>8.1} ms  {note}"
        );
        writeln!(out, "{}", line.trim_end())
    };
    let mut command_shown = false;
    for phase in &report.phases {
        if &*phase.phase == "post_container" {
            show_command(out, report, &row)?;
            command_shown = true;
        }
        for (i, e) in phase.entries.iter().enumerate() {
            let name = if i == 0 { &*phase.phase } else { "" };
            let note: String = e.message.chars().take(100).collect();
            row(
                out,
                name,
                &e.plugin,
                &outcome_word(e),
                e.duration.as_secs_f64() * 1000.0,
                &note,
            )?;
        }
    }
    if !command_shown {
        show_command(out, report, &row)?;
    }
    Ok(())
}

type Row<'a> = dyn Fn(&mut dyn Write, &str, &str, &str, f64, &str) -> std::io::Result<()> + 'a;

fn show_command(
    out: &mut dyn Write,
    report: &job::JobReport,
    row: &Row<'_>,
) -> std::io::Result<()> {
    let Some(code) = report.command_exit_code else {
        return Ok(());
    };
    let ms = report.command_duration.unwrap_or_default().as_secs_f64() * 1000.0;
    let argv = report.command.join(" ");
    let shown: String = argv.chars().take(40).collect();
    row(out, "command", "(cmd)", &format!("exit {code}"), ms, &shown)
}

/// Reads `--context`: inline JSON, or `@FILE`.
fn parse_context(arg: &str) -> anyhow::Result<Map<String, Value>> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --context file {file}"))?,
            file.to_owned(),
        ),
        None => (arg.to_owned(), "--context".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => bail!("{origin}: the context must be a JSON object, not {other}"),
        Err(err) => bail!("{origin}: not valid JSON: {err}"),
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn print_table(out: &mut impl Write, rows: &[Value]) -> std::io::Result<()> {
    let header = ["NAME", "VERSION", "PHASES", "PID", "STATE", "READY MS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let phases = r["phases"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|s| {
                            let phase = s["phase"].as_str().unwrap_or("?");
                            if s["enabled"] == Value::Bool(false) {
                                format!("{phase}(off)")
                            } else {
                                format!("{phase}({})", s["priority"])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let or_dash = |v: &Value| if v.is_null() { "-".to_owned() } else { text(v) };
            [
                text(&r["name"]),
                or_dash(&r["version"]),
                if phases.is_empty() {
                    "-".to_owned()
                } else {
                    phases
                },
                or_dash(&r["pid"]),
                text(&r["state"]),
                or_dash(&r["ready_ms"]),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[&str]| -> std::io::Result<()> {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        line(out, &row.each_ref().map(String::as_str))?;
    }
    for r in rows {
        if let Some(err) = r["error"].as_str() {
            writeln!(out, "\n{err}")?;
        }
    }
    Ok(())
}

/// "ok", "vetoed", "skipped", or the failure: "timeout", "crashed",
/// "conflict"..., with "(ignored)" under fail_open.
fn outcome_word(e: &Entry) -> String {
    match (e.outcome, e.failure) {
        (Outcome::Ok, _) => "ok".to_owned(),
        (Outcome::Vetoed, _) => "vetoed".to_owned(),
        (Outcome::Skipped, _) => "skipped".to_owned(),
        (_, kind) => {
            let kind = match kind {
                Some(FailureKind::Timeout) => "timeout",
                Some(FailureKind::Crashed) => "crashed",
                Some(FailureKind::Unavailable) => "unavailable",
                Some(FailureKind::Conflict) => "conflict",
                Some(FailureKind::InvalidPatch) => "bad patch",
                _ => "failed",
            };
            // A conflict fails the phase whatever the policy.
            if e.policy == FailurePolicy::FailOpen && kind != "conflict" {
                format!("{kind} (ignored)")
            } else {
                kind.to_owned()
            }
        }
    }
}

fn print_report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let verdict = match &report.verdict {
        Verdict::Passed => "passed".to_owned(),
        Verdict::Vetoed { plugin, message } => format!("vetoed by {plugin}: {message}"),
        Verdict::Failed { plugins, error } => format!("failed at {}: {error}", plugins.join(", ")),
        other => format!("{other:?}"),
    };
    writeln!(
        out,
        "phase {}: {verdict} ({} plugin{}, {:.1} ms)",
        report.phase,
        report.entries.len(),
        if report.entries.len() == 1 { "" } else { "s" },
        report.duration.as_secs_f64() * 1000.0
    )?;
    let width = report
        .entries
        .iter()
        .map(|e| e.plugin.len())
        .max()
        .unwrap_or(0);
    for e in &report.entries {
        let outcome = outcome_word(e);
        let line = format!(
            "  {:>4}  {:<width$}  {outcome:<16}  {:>7.1} ms  {}",
            e.priority,
            e.plugin,
            e.duration.as_secs_f64() * 1000.0,
            e.message
        );
        writeln!(out, "{}", line.trim_end())?;
        for op in outboard_host::patch_to_json(&e.patch)
            .as_array()
            .into_iter()
            .flatten()
        {
            match op["op"].as_str() {
                Some("set") => writeln!(
                    out,
                    "          set    {} = {}",
                    op["path"].as_str().unwrap_or(""),
                    op["value"]
                )?,
                _ => writeln!(
                    out,
                    "          remove {}",
                    op["path"].as_str().unwrap_or("")
                )?,
            }
        }
    }
    writeln!(
        out,
        "context:\n{}",
        serde_json::to_string_pretty(&report.context).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_must_be_an_object() {
        assert!(parse_context(r#"{"env": {}}"#).is_ok());
        let err = parse_context("[1]").expect_err("array");
        assert_eq!(
            err.to_string(),
            "--context: the context must be a JSON object, not [1]"
        );
        let err = parse_context("{oops").expect_err("bad json");
        assert!(
            err.to_string().starts_with("--context: not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
