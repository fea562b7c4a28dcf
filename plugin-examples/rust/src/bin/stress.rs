//! `stress`: a plugin that misbehaves on demand, for the host's supervision
//! and chaos tests (restarts, quarantine, health-driven restarts, bounded
//! logs, no orphans). With no config and no `STRESS_*` variables it is a
//! well-behaved plugin: every `Invoke` answers CONTINUE with a patch setting
//! `/metadata/stress/<instance name>/count` to the number of invocations
//! this process has seen, this one included, so that a test can tell which
//! instance answered and whether it was restarted.
//!
//! # Environment
//!
//! What must be known before `Configure` (the manifest, faults at start,
//! signal handling) comes from the environment, which the host sets from
//! the plugin's `env` table. A bad value stops the plugin with exit 1 and a
//! message naming the variable.
//!
//! - `STRESS_PHASES`: the subscriptions, a comma list of
//!   `phase[:priority[:idempotent]]` (default `stress:0`), e.g.
//!   `pre_container:10,post_container:-5:idempotent`.
//! - `STRESS_AT_START`: a fault before the handshake or independent of
//!   calls: `exit` (write `stress: exiting at start on purpose` to stderr
//!   and exit 3 at once), `exit-after-ms:N` (serve normally, then write
//!   `stress: exiting N ms after start on purpose` and exit 3 N ms after
//!   the process started), `hang` (never print the handshake; sleep until
//!   killed).
//! - `STRESS_IGNORE_SIGTERM=1`: log SIGTERM and carry on. The SDK's own
//!   SIGTERM/SIGINT handling is off (SIGINT then kills at once); only
//!   `Shutdown` or SIGKILL stop the plugin.
//!
//! # Config
//!
//! Every key is optional, and the faults combine:
//!
//! ```toml
//! [[plugin]]
//! name = "stress-a"
//! command = "target/debug/stress"
//! env = { STRESS_PHASES = "pre_container:10", STRESS_IGNORE_SIGTERM = "1" }
//!
//! [plugin.config]
//! crash_after = 3              # exit 101 inside the 3rd Invoke since start
//! hang_invoke = false          # Invoke never returns (until its deadline)
//! invoke_delay_ms = 200        # sleep before answering each Invoke
//! panic_on_invoke = false      # panic inside Invoke
//! health = "not_serving_after:2"   # serving | not_serving | not_serving_after:N
//!                                  # | stop_answering | stop_answering_after:N
//! flood_stderr = { lines_per_sec = 1000, line_bytes = 200 }
//! flood_stdout = { lines_per_sec = 10, line_bytes = 40000 }
//! newline_free_bytes = 100000  # that many bytes on stderr, no newline
//! fork_grandchildren = 2       # `sleep 3600` in the plugin's process group
//! orphan_grandchildren = 1     # `sleep 3600` in a session of its own
//! ignore_shutdown = false      # answer Shutdown but do not exit
//! ```
//!
//! - The `count` and `crash_after` count invocations since the process
//!   started; the one that reaches `crash_after` logs
//!   `stress: crashing after N invocations` (at error) and exits 101.
//! - `panic_on_invoke`: a panic in `Invoke` prints Rust's panic message to
//!   stderr as plain lines: an empty line, `thread 'tokio-rt-worker' (<tid>)
//!   panicked at <file>:<line>:<col>:`, the message, then with
//!   `RUST_BACKTRACE=1` `stack backtrace:` and two lines a frame, else a
//!   `note:` line. The process does not exit: tokio catches the panic in
//!   the task serving the call's HTTP/2 stream, the stream is reset
//!   (`RST_STREAM CANCEL`), and a tonic client sees `CANCELLED` "h2 protocol
//!   error: http2 error" long before any deadline. The next call is served
//!   as usual.
//! - `health`: `not_serving` reports NOT_SERVING from `Configure` on (so a
//!   host fails the start, whose check follows `Configure`);
//!   `not_serving_after:N` from the N-th invocation on; `stop_answering`
//!   leaves every health check unanswered (the caller times out) from
//!   `Configure` on, `stop_answering_after:N` from the N-th invocation on.
//!   `Invoke` is served all the same.
//! - `flood_stderr`, `flood_stdout`: a thread writes `line_bytes`-byte lines
//!   (plus the newline), `lines_per_sec` a second, until the process exits.
//! - `newline_free_bytes`: written once, at `Configure`; whatever the plugin
//!   writes to stderr next continues that line.
//! - Grandchildren are spawned at `Configure` with stdin and stdout on
//!   `/dev/null`; those in the group inherit stderr, the escaped ones do not
//!   (the host cannot kill them, so they must not hold its pipe open for an
//!   hour). Their pids are logged as one JSON line on stderr:
//!   `{"level":"WARN","message":"stress: spawned ...","process_group":"own"
//!   or "escaped","pids":[...]}`. The test that asks for escaped
//!   grandchildren must kill them itself.
//! - `ignore_shutdown`: `Shutdown` is answered and the server stops, then the
//!   plugin hangs in its shutdown hook: until SIGTERM, or, with
//!   `STRESS_IGNORE_SIGTERM=1`, until SIGKILL.
//!
//! Floods, `newline_free_bytes` and grandchildren start with the first
//! `Configure` that asks for any of them; a later `Configure` does not start
//! more.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use outboard_plugin::{
    Config, Health, Invocation, Manifest, Plugin, PluginError, Reply, ServeError, Settings,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The manifest name.
const NAME: &str = "stress";
/// The subscriptions when `STRESS_PHASES` is unset.
const DEFAULT_PHASES: &str = "stress:0";
/// The variable naming the subscriptions.
const ENV_PHASES: &str = "STRESS_PHASES";
/// The variable naming a fault at start.
const ENV_AT_START: &str = "STRESS_AT_START";
/// The variable asking to survive SIGTERM.
const ENV_IGNORE_SIGTERM: &str = "STRESS_IGNORE_SIGTERM";
/// The exit status of the faults at start.
const EXIT_AT_START: u8 = 3;
/// The exit status of `crash_after`.
const EXIT_CRASH: i32 = 101;

/// Bounds on the config's numbers, so a typo cannot fork-bomb the machine
/// or ask for a 1 TB line.
const MAX_GRANDCHILDREN: u64 = 64;
const MAX_LINES_PER_SEC: u64 = 1_000_000;
const MAX_LINE_BYTES: u64 = 16 << 20;
const MAX_NEWLINE_FREE_BYTES: u64 = 1 << 30;
const MAX_DELAY_MS: u64 = 24 * 3600 * 1000;

// ---------------------------------------------------------------------------
// The environment

/// A fault that acts independently of calls, chosen by `STRESS_AT_START`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtStart {
    /// Exit 3 at once, before the handshake.
    Exit,
    /// Serve, then exit 3 this long after start.
    ExitAfter(Duration),
    /// Never print the handshake.
    Hang,
}

/// One subscription from `STRESS_PHASES`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phase {
    /// The phase name.
    name: String,
    /// Its priority.
    priority: i32,
    /// `true` if marked `:idempotent`.
    idempotent: bool,
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Launch {
    /// `STRESS_AT_START`.
    at_start: Option<AtStart>,
    /// `STRESS_PHASES`.
    phases: Vec<Phase>,
    /// `STRESS_IGNORE_SIGTERM`.
    ignore_sigterm: bool,
}

impl Launch {
    /// Reads the `STRESS_*` variables through `lookup`.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Launch, String> {
        let at_start = match lookup(ENV_AT_START) {
            None => None,
            Some(v) => {
                parse_at_start(&v).map_err(|why| format!("{ENV_AT_START} is {v:?}: {why}"))?
            }
        };
        let phases = lookup(ENV_PHASES).unwrap_or_else(|| DEFAULT_PHASES.to_owned());
        let phases =
            parse_phases(&phases).map_err(|why| format!("{ENV_PHASES} is {phases:?}: {why}"))?;
        let ignore_sigterm = match lookup(ENV_IGNORE_SIGTERM).as_deref().map(str::trim) {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(format!(
                    "{ENV_IGNORE_SIGTERM} is {other:?}: expected 1 or true (or 0, false, empty)"
                ));
            }
        };
        Ok(Launch {
            at_start,
            phases,
            ignore_sigterm,
        })
    }
}

/// `exit`, `exit-after-ms:N`, `hang`, or empty for none.
fn parse_at_start(value: &str) -> Result<Option<AtStart>, String> {
    const EXPECTED: &str = "expected exit, exit-after-ms:N or hang";
    match value.trim() {
        "" => Ok(None),
        "exit" => Ok(Some(AtStart::Exit)),
        "hang" => Ok(Some(AtStart::Hang)),
        other => match other.strip_prefix("exit-after-ms:") {
            Some(ms) => ms
                .trim()
                .parse::<u64>()
                .map(|ms| Some(AtStart::ExitAfter(Duration::from_millis(ms))))
                .map_err(|_| format!("{ms:?} is not a number of milliseconds")),
            None => Err(EXPECTED.to_owned()),
        },
    }
}

/// `phase[:priority[:idempotent]]`, comma separated; empty entries are
/// skipped. Phase names are checked with the manifest, by the SDK.
fn parse_phases(value: &str) -> Result<Vec<Phase>, String> {
    let mut phases = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(':').map(str::trim);
        let name = parts.next().unwrap_or_default().to_owned();
        let priority = match parts.next() {
            None => 0,
            Some(p) => p
                .parse()
                .map_err(|_| format!("in {entry:?}, the priority {p:?} is not an integer"))?,
        };
        let idempotent = match parts.next() {
            None => false,
            Some("idempotent") => true,
            Some(other) => {
                return Err(format!(
                    "in {entry:?}, {other:?} is not `idempotent` (the form is \
                     phase[:priority[:idempotent]])"
                ));
            }
        };
        if parts.next().is_some() {
            return Err(format!(
                "{entry:?} has too many parts (the form is phase[:priority[:idempotent]])"
            ));
        }
        phases.push(Phase {
            name,
            priority,
            idempotent,
        });
    }
    if phases.is_empty() {
        return Err("it names no phase".to_owned());
    }
    Ok(phases)
}

// ---------------------------------------------------------------------------
// The config

/// The config as written; each key is checked by hand so that every error
/// names its key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    crash_after: Option<Value>,
    hang_invoke: Option<Value>,
    invoke_delay_ms: Option<Value>,
    panic_on_invoke: Option<Value>,
    health: Option<Value>,
    flood_stderr: Option<Value>,
    flood_stdout: Option<Value>,
    newline_free_bytes: Option<Value>,
    fork_grandchildren: Option<Value>,
    orphan_grandchildren: Option<Value>,
    ignore_shutdown: Option<Value>,
}

/// What the health service reports: the SDK's [`Health`] state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HealthState {
    /// SERVING or NOT_SERVING.
    serving: bool,
    /// `true` while health checks go unanswered.
    stalled: bool,
}

impl HealthState {
    const SERVING: HealthState = HealthState {
        serving: true,
        stalled: false,
    };

    fn apply(self, health: &Health) {
        health.set_serving(self.serving);
        health.set_stalled(self.stalled);
    }
}

/// The `health` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum HealthMode {
    /// SERVING throughout.
    #[default]
    Serving,
    /// NOT_SERVING from `Configure` on.
    NotServing,
    /// NOT_SERVING from the N-th invocation on.
    NotServingAfter(u64),
    /// Health checks unanswered from `Configure` on.
    StopAnswering,
    /// Health checks unanswered from the N-th invocation on.
    StopAnsweringAfter(u64),
}

impl HealthMode {
    /// What `Configure` sets.
    fn at_configure(self) -> HealthState {
        match self {
            HealthMode::NotServing => HealthState {
                serving: false,
                stalled: false,
            },
            HealthMode::StopAnswering => HealthState {
                serving: true,
                stalled: true,
            },
            HealthMode::Serving
            | HealthMode::NotServingAfter(_)
            | HealthMode::StopAnsweringAfter(_) => HealthState::SERVING,
        }
    }

    /// What the `count`-th invocation sets, if anything.
    fn after_invocation(self, count: u64) -> Option<HealthState> {
        match self {
            HealthMode::NotServingAfter(n) if count >= n => Some(HealthState {
                serving: false,
                stalled: false,
            }),
            HealthMode::StopAnsweringAfter(n) if count >= n => Some(HealthState {
                serving: true,
                stalled: true,
            }),
            _ => None,
        }
    }
}

/// One of `flood_stderr` and `flood_stdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flood {
    /// Lines a second.
    lines_per_sec: u64,
    /// Bytes a line, without the newline.
    line_bytes: usize,
}

/// The checked config: which faults to commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Faults {
    crash_after: Option<u64>,
    hang_invoke: bool,
    invoke_delay: Option<Duration>,
    panic_on_invoke: bool,
    health: HealthMode,
    flood_stderr: Option<Flood>,
    flood_stdout: Option<Flood>,
    newline_free_bytes: u64,
    fork_grandchildren: u64,
    orphan_grandchildren: u64,
    ignore_shutdown: bool,
}

impl Faults {
    /// Checks `config`; every error names its key.
    fn from_config(config: &Config) -> Result<Faults, PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let mut faults = Faults::default();
        if let Some(v) = &raw.crash_after {
            faults.crash_after = Some(number("crash_after", v, 1, u64::MAX)?);
        }
        if let Some(v) = &raw.hang_invoke {
            faults.hang_invoke = flag("hang_invoke", v)?;
        }
        if let Some(v) = &raw.invoke_delay_ms {
            let ms = number("invoke_delay_ms", v, 0, MAX_DELAY_MS)?;
            faults.invoke_delay = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(v) = &raw.panic_on_invoke {
            faults.panic_on_invoke = flag("panic_on_invoke", v)?;
        }
        if let Some(v) = &raw.health {
            faults.health = health_mode(v)?;
        }
        if let Some(v) = &raw.flood_stderr {
            faults.flood_stderr = Some(flood("flood_stderr", v)?);
        }
        if let Some(v) = &raw.flood_stdout {
            faults.flood_stdout = Some(flood("flood_stdout", v)?);
        }
        if let Some(v) = &raw.newline_free_bytes {
            faults.newline_free_bytes = number("newline_free_bytes", v, 0, MAX_NEWLINE_FREE_BYTES)?;
        }
        if let Some(v) = &raw.fork_grandchildren {
            faults.fork_grandchildren = number("fork_grandchildren", v, 0, MAX_GRANDCHILDREN)?;
        }
        if let Some(v) = &raw.orphan_grandchildren {
            faults.orphan_grandchildren = number("orphan_grandchildren", v, 0, MAX_GRANDCHILDREN)?;
        }
        if let Some(v) = &raw.ignore_shutdown {
            faults.ignore_shutdown = flag("ignore_shutdown", v)?;
        }
        Ok(faults)
    }

    /// `true` if `Configure` has something to start (threads, processes,
    /// output).
    fn has_side_effects(&self) -> bool {
        self.flood_stderr.is_some()
            || self.flood_stdout.is_some()
            || self.newline_free_bytes > 0
            || self.fork_grandchildren > 0
            || self.orphan_grandchildren > 0
    }

    /// What the `count`-th invocation does.
    fn step(&self, count: u64) -> Step {
        if self.crash_after.is_some_and(|n| count >= n) {
            Step::Crash
        } else if self.panic_on_invoke {
            Step::Panic
        } else if self.hang_invoke {
            Step::Hang
        } else {
            Step::Answer
        }
    }
}

/// What one invocation does after any `invoke_delay_ms` (crash and panic
/// come before the delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Exit 101.
    Crash,
    /// Panic.
    Panic,
    /// Never answer.
    Hang,
    /// Answer with the count.
    Answer,
}

/// A whole number from `min` to `max`.
fn number(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, PluginError> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            let range = if max == u64::MAX {
                format!("{min} or more")
            } else {
                format!("from {min} to {max}")
            };
            PluginError::invalid_config(format!(
                "{key}: expected a whole number {range}, got {value}"
            ))
        })
}

/// `true` or `false`.
fn flag(key: &str, value: &Value) -> Result<bool, PluginError> {
    value.as_bool().ok_or_else(|| {
        PluginError::invalid_config(format!("{key}: expected true or false, got {value}"))
    })
}

/// The `health` key.
fn health_mode(value: &Value) -> Result<HealthMode, PluginError> {
    let refuse = || {
        PluginError::invalid_config(format!(
            "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
             \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got {value}"
        ))
    };
    let s = value.as_str().ok_or_else(refuse)?;
    let after = |prefix: &str| {
        s.strip_prefix(prefix)
            .map(|n| n.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(refuse))
    };
    Ok(match s {
        "serving" => HealthMode::Serving,
        "not_serving" => HealthMode::NotServing,
        "stop_answering" => HealthMode::StopAnswering,
        _ => {
            if let Some(n) = after("not_serving_after:") {
                HealthMode::NotServingAfter(n?)
            } else if let Some(n) = after("stop_answering_after:") {
                HealthMode::StopAnsweringAfter(n?)
            } else {
                return Err(refuse());
            }
        }
    })
}

/// `{"lines_per_sec": N, "line_bytes": M}`.
fn flood(key: &str, value: &Value) -> Result<Flood, PluginError> {
    let Value::Object(fields) = value else {
        return Err(PluginError::invalid_config(format!(
            "{key}: expected an object {{\"lines_per_sec\": N, \"line_bytes\": M}}, got {value}"
        )));
    };
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "lines_per_sec" | "line_bytes"))
    {
        return Err(PluginError::invalid_config(format!(
            "{key}.{other}: unknown key (expected lines_per_sec and line_bytes)"
        )));
    }
    let field = |name: &str, max: u64| {
        let path = format!("{key}.{name}");
        match fields.get(name) {
            Some(v) => number(&path, v, 1, max),
            None => Err(PluginError::invalid_config(format!(
                "{path}: missing (expected a whole number from 1 to {max})"
            ))),
        }
    };
    let lines_per_sec = field("lines_per_sec", MAX_LINES_PER_SEC)?;
    let line_bytes = field("line_bytes", MAX_LINE_BYTES)?;
    Ok(Flood {
        lines_per_sec,
        line_bytes: usize::try_from(line_bytes).unwrap_or(usize::MAX),
    })
}

// ---------------------------------------------------------------------------
// The plugin

/// What `Configure` set.
#[derive(Debug, Clone)]
struct State {
    /// The checked config.
    faults: Faults,
    /// The instance name, for the patch path.
    instance: String,
    /// The health handle from `Configure`.
    health: Option<Health>,
}

/// The plugin.
struct Stress {
    /// The subscriptions, from `STRESS_PHASES`.
    phases: Vec<Phase>,
    /// `STRESS_IGNORE_SIGTERM`, for the shutdown hook.
    ignore_sigterm: bool,
    /// The config and what came with it.
    state: RwLock<State>,
    /// Invocations since the process started.
    invocations: AtomicU64,
    /// Set once floods, output and grandchildren have been started.
    side_effects_started: AtomicBool,
    /// Ends the process: `std::process::exit`, a panic in tests.
    exit: fn(i32) -> !,
}

impl Stress {
    fn new(launch: &Launch, exit: fn(i32) -> !) -> Stress {
        Stress {
            phases: launch.phases.clone(),
            ignore_sigterm: launch.ignore_sigterm,
            state: RwLock::new(State {
                faults: Faults::default(),
                instance: NAME.to_owned(),
                health: None,
            }),
            invocations: AtomicU64::new(0),
            side_effects_started: AtomicBool::new(false),
            exit,
        }
    }

    fn state(&self) -> State {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Plugin for Stress {
    fn manifest(&self) -> Manifest {
        let mut manifest = Manifest::new(NAME, env!("CARGO_PKG_VERSION"))
            .describe(
                "Misbehaves on demand (crashes, hangs, floods its output, leaves processes \
                 behind) for the host's supervision tests",
            )
            .config_schema(schema());
        for phase in &self.phases {
            manifest = if phase.idempotent {
                manifest.subscribe_idempotent(&phase.name, phase.priority)
            } else {
                manifest.subscribe(&phase.name, phase.priority)
            };
        }
        manifest
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let faults = Faults::from_config(&config)?;
        if faults.has_side_effects() && !self.side_effects_started.swap(true, Ordering::SeqCst) {
            start_side_effects(&faults)?;
        }
        faults.health.at_configure().apply(&config.health);
        tracing::info!(faults = ?faults, "stress: configured");
        let instance = if config.instance_name.is_empty() {
            NAME.to_owned()
        } else {
            config.instance_name
        };
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = State {
            faults,
            instance,
            health: Some(config.health),
        };
        Ok(())
    }

    async fn invoke(&self, _invocation: Invocation) -> Result<Reply, PluginError> {
        let count = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        let state = self.state();
        if let (Some(change), Some(health)) =
            (state.faults.health.after_invocation(count), &state.health)
        {
            change.apply(health);
        }
        let step = state.faults.step(count);
        match step {
            Step::Crash => {
                tracing::error!(
                    invocations = count,
                    "stress: crashing after {count} invocations"
                );
                (self.exit)(EXIT_CRASH)
            }
            Step::Panic => panic!("stress: panicking in Invoke on purpose (invocation {count})"),
            Step::Hang | Step::Answer => {}
        }
        if let Some(delay) = state.faults.invoke_delay {
            tokio::time::sleep(delay).await;
        }
        if step == Step::Hang {
            tracing::warn!(invocations = count, "stress: hanging in Invoke on purpose");
            std::future::pending::<()>().await;
        }
        Ok(Reply::ok().set(&count_pointer(&state.instance), count))
    }

    async fn shutdown(&self) {
        if !self.state().faults.ignore_shutdown {
            return;
        }
        if self.ignore_sigterm {
            tracing::warn!("stress: answered Shutdown, not exiting on purpose (until SIGKILL)");
            return std::future::pending().await;
        }
        tracing::warn!("stress: answered Shutdown, not exiting on purpose (until SIGTERM)");
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
                tracing::warn!("stress: got SIGTERM, exiting");
            }
            Err(e) => {
                tracing::error!(error = %e, "stress: cannot listen for SIGTERM; hanging");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// `/metadata/stress/<instance>/count`, the instance name escaped as RFC
/// 6901 asks.
fn count_pointer(instance: &str) -> String {
    let token = instance.replace('~', "~0").replace('/', "~1");
    format!("/metadata/stress/{token}/count")
}

/// The config's JSON Schema.
fn schema() -> Value {
    let whole = |min: u64, max: u64, what: &str| json!({"description": what, "type": "integer", "minimum": min, "maximum": max});
    let flood = |stream: &str| {
        json!({
            "description": format!("Write lines to {stream} continuously"),
            "type": "object",
            "properties": {
                "lines_per_sec": whole(1, MAX_LINES_PER_SEC, "Lines a second"),
                "line_bytes": whole(1, MAX_LINE_BYTES, "Bytes a line, without the newline")
            },
            "required": ["lines_per_sec", "line_bytes"],
            "additionalProperties": false
        })
    };
    let flag = |what: &str| json!({"description": what, "type": "boolean", "default": false});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "crash_after": {
                "description": "Exit 101 inside the N-th Invoke since the process started",
                "type": "integer",
                "minimum": 1
            },
            "hang_invoke": flag("Invoke never returns (until its deadline)"),
            "invoke_delay_ms": whole(0, MAX_DELAY_MS, "Sleep this long in each Invoke before answering"),
            "panic_on_invoke": flag("Panic inside Invoke"),
            "health": {
                "description": "What the health service reports",
                "type": "string",
                "pattern": "^(serving|not_serving|stop_answering|(not_serving|stop_answering)_after:[1-9][0-9]*)$",
                "default": "serving"
            },
            "flood_stderr": flood("stderr"),
            "flood_stdout": flood("stdout"),
            "newline_free_bytes": whole(0, MAX_NEWLINE_FREE_BYTES, "Write this many bytes to stderr at Configure, without a newline"),
            "fork_grandchildren": whole(0, MAX_GRANDCHILDREN, "Spawn this many `sleep 3600` in the plugin's process group at Configure"),
            "orphan_grandchildren": whole(0, MAX_GRANDCHILDREN, "Spawn this many `sleep 3600` in sessions of their own (escaping the process group) at Configure"),
            "ignore_shutdown": flag("Answer Shutdown but do not exit")
        },
        "additionalProperties": false
    })
}

// ---------------------------------------------------------------------------
// Side effects

/// Starts the floods, writes the newline-free bytes and spawns the
/// grandchildren.
fn start_side_effects(faults: &Faults) -> Result<(), PluginError> {
    if let Some(f) = faults.flood_stderr {
        spawn_thread("stress-flood-stderr", move || {
            flood_lines("stderr", f, std::io::stderr())
        })?;
    }
    if let Some(f) = faults.flood_stdout {
        spawn_thread("stress-flood-stdout", move || {
            flood_lines("stdout", f, std::io::stdout())
        })?;
    }
    if faults.newline_free_bytes > 0 {
        let n = faults.newline_free_bytes;
        spawn_thread("stress-no-newline", move || write_without_newline(n))?;
    }
    if faults.fork_grandchildren > 0 {
        let pids = spawn_grandchildren(faults.fork_grandchildren, false)?;
        log_pids(
            &format!(
                "stress: spawned {} grandchildren in the plugin's process group",
                pids.len()
            ),
            "own",
            &pids,
        );
    }
    if faults.orphan_grandchildren > 0 {
        let pids = spawn_grandchildren(faults.orphan_grandchildren, true)?;
        log_pids(
            &format!(
                "stress: spawned {} grandchildren that left the process group (setsid)",
                pids.len()
            ),
            "escaped",
            &pids,
        );
    }
    Ok(())
}

fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), PluginError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map(drop)
        .map_err(|e| PluginError::failed(format!("cannot start thread {name}: {e}")))
}

/// Writes `flood.lines_per_sec` lines a second to `stream` until a write
/// fails (the reader is gone). A writer blocked by a full pipe does not
/// make up for more than a second of lines afterwards.
fn flood_lines(name: &str, flood: Flood, mut out: impl Write) {
    let started = Instant::now();
    let rate = flood.lines_per_sec as f64;
    let tick = Duration::from_secs_f64((1.0 / rate).max(0.005));
    let mut written: u64 = 0;
    let mut line = Vec::with_capacity(flood.line_bytes + 1);
    loop {
        let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
        written = written.max(due.saturating_sub(flood.lines_per_sec));
        while written < due {
            written += 1;
            line.clear();
            line.extend_from_slice(format!("stress flood {name} line {written} ").as_bytes());
            line.resize(flood.line_bytes, b'x');
            line.push(b'\n');
            if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                return;
            }
        }
        std::thread::sleep(tick);
    }
}

/// Writes `n` bytes to stderr, holding its lock so that nothing else lands
/// in the middle, and no newline.
fn write_without_newline(n: u64) {
    let chunk = [b'x'; 64 * 1024];
    let mut err = std::io::stderr().lock();
    let mut left = n;
    while left > 0 {
        let len = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        if err.write_all(&chunk[..len]).is_err() {
            return;
        }
        left -= len as u64;
    }
    let _ = err.flush();
}

/// Spawns `n` `sleep 3600`, each in a session of its own if `escape`.
fn spawn_grandchildren(n: u64, escape: bool) -> Result<Vec<u32>, PluginError> {
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut command = Command::new("sleep");
        command
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if escape {
            use std::os::unix::process::CommandExt;
            command.stderr(Stdio::null());
            // SAFETY: the closure runs in the forked child before exec, where
            // only async-signal-safe calls are allowed; it calls setsid(2),
            // which is one, and builds an io::Error from errno without
            // allocating.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // The Child is dropped without waiting: the grandchild outlives our
        // interest in it, as a careless plugin's children do.
        let child = command.spawn().map_err(|e| {
            let key = if escape {
                "orphan_grandchildren"
            } else {
                "fork_grandchildren"
            };
            PluginError::failed(format!(
                "{key}: cannot spawn `sleep 3600` (after {} of {n}): {e}",
                pids.len()
            ))
        })?;
        pids.push(child.id());
    }
    Ok(pids)
}

/// One JSON log line carrying the pids as an array (tracing would quote
/// them as a string).
fn log_pids(message: &str, process_group: &str, pids: &[u32]) {
    let mut line = Map::new();
    line.insert("level".into(), json!("WARN"));
    line.insert("message".into(), json!(message));
    line.insert("process_group".into(), json!(process_group));
    line.insert("pids".into(), json!(pids));
    let _ = writeln!(std::io::stderr().lock(), "{}", Value::Object(line));
}

// ---------------------------------------------------------------------------
// main

fn main() -> ExitCode {
    let launch = match Launch::from_lookup(|var| std::env::var(var).ok()) {
        Ok(launch) => launch,
        Err(why) => {
            eprintln!("{NAME}: {why}");
            return ExitCode::FAILURE;
        }
    };
    match launch.at_start {
        Some(AtStart::Exit) => {
            eprintln!("stress: exiting at start on purpose");
            return ExitCode::from(EXIT_AT_START);
        }
        Some(AtStart::Hang) => loop {
            // No handlers: SIGTERM's default action ends it.
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(AtStart::ExitAfter(after)) => {
            let started = Instant::now();
            let spawned = std::thread::Builder::new()
                .name("stress-exit-after".into())
                .spawn(move || {
                    std::thread::sleep(after.saturating_sub(started.elapsed()));
                    eprintln!(
                        "stress: exiting {} ms after start on purpose",
                        after.as_millis()
                    );
                    std::process::exit(i32::from(EXIT_AT_START));
                });
            if let Err(e) = spawned {
                eprintln!("{NAME}: cannot start the exit-after thread: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => {}
    }
    let plugin = Stress::new(&launch, std::process::exit);
    if launch.ignore_sigterm {
        serve_ignoring_sigterm(plugin)
    } else {
        outboard_plugin::run(plugin)
    }
}

/// `outboard_plugin::run`, except that SIGTERM is logged and ignored: the
/// SDK's signal handling is turned off and this process listens for SIGTERM
/// itself (before the handshake, so that no SIGTERM can kill it).
fn serve_ignoring_sigterm(plugin: Stress) -> ExitCode {
    outboard_plugin::run_with(NAME, || async {
        let settings = Settings::from_env().map_err(|source| ServeError::Settings {
            plugin: NAME.into(),
            source,
        })?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|source| ServeError::Signals {
                plugin: NAME.into(),
                source,
            })?;
        tokio::spawn(async move {
            while term.recv().await.is_some() {
                tracing::warn!("stress: got SIGTERM, ignoring it on purpose");
            }
        });
        outboard_plugin::serve_with(plugin, settings.handle_signals(false)).await
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// The exit seam in tests: a panic naming the status, instead of the
    /// end of the test binary.
    fn fake_exit(code: i32) -> ! {
        panic!("stress would exit({code})")
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn launch(pairs: &[(&str, &str)]) -> Launch {
        Launch::from_lookup(lookup(pairs)).unwrap()
    }

    fn harness() -> Harness<Stress> {
        Harness::new(Stress::new(&launch(&[]), fake_exit))
    }

    fn phase(name: &str, priority: i32, idempotent: bool) -> Phase {
        Phase {
            name: name.into(),
            priority,
            idempotent,
        }
    }

    #[test]
    fn environment_defaults_and_values() {
        assert_eq!(
            launch(&[]),
            Launch {
                at_start: None,
                phases: vec![phase("stress", 0, false)],
                ignore_sigterm: false,
            }
        );
        let l = launch(&[
            (
                ENV_PHASES,
                "pre_container:10, post_container:-5:idempotent,cleanup,",
            ),
            (ENV_AT_START, "exit-after-ms:250"),
            (ENV_IGNORE_SIGTERM, "1"),
        ]);
        assert_eq!(
            l.phases,
            [
                phase("pre_container", 10, false),
                phase("post_container", -5, true),
                phase("cleanup", 0, false),
            ]
        );
        assert_eq!(
            l.at_start,
            Some(AtStart::ExitAfter(Duration::from_millis(250)))
        );
        assert!(l.ignore_sigterm);
        assert_eq!(
            launch(&[(ENV_AT_START, "exit")]).at_start,
            Some(AtStart::Exit)
        );
        assert_eq!(
            launch(&[(ENV_AT_START, "hang")]).at_start,
            Some(AtStart::Hang)
        );
        assert_eq!(launch(&[(ENV_AT_START, "")]).at_start, None);
        assert!(!launch(&[(ENV_IGNORE_SIGTERM, "0")]).ignore_sigterm);
    }

    #[test]
    fn bad_environment_is_refused_naming_the_variable() {
        let cases = [
            (
                (ENV_AT_START, "boom"),
                r#"STRESS_AT_START is "boom": expected exit, exit-after-ms:N or hang"#,
            ),
            (
                (ENV_AT_START, "exit-after-ms:soon"),
                r#"STRESS_AT_START is "exit-after-ms:soon": "soon" is not a number of milliseconds"#,
            ),
            (
                (ENV_PHASES, "pre_container:high"),
                r#"STRESS_PHASES is "pre_container:high": in "pre_container:high", the priority "high" is not an integer"#,
            ),
            (
                (ENV_PHASES, "a:1:twice"),
                r#"STRESS_PHASES is "a:1:twice": in "a:1:twice", "twice" is not `idempotent` (the form is phase[:priority[:idempotent]])"#,
            ),
            (
                (ENV_PHASES, "a:1:idempotent:x"),
                r#"STRESS_PHASES is "a:1:idempotent:x": "a:1:idempotent:x" has too many parts (the form is phase[:priority[:idempotent]])"#,
            ),
            (
                (ENV_PHASES, " , "),
                r#"STRESS_PHASES is " , ": it names no phase"#,
            ),
            (
                (ENV_IGNORE_SIGTERM, "yes"),
                r#"STRESS_IGNORE_SIGTERM is "yes": expected 1 or true (or 0, false, empty)"#,
            ),
        ];
        for ((var, value), want) in cases {
            let err = Launch::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err, want);
        }
    }

    #[test]
    fn manifest_subscribes_from_the_environment_with_a_closed_schema() {
        let h = Harness::new(Stress::new(
            &launch(&[(ENV_PHASES, "pre_container:10,post_container:-5:idempotent")]),
            fake_exit,
        ));
        let m = h.manifest();
        assert_eq!(m.name(), "stress");
        let subs: Vec<_> = m
            .subscriptions()
            .iter()
            .map(|s| (s.phase.as_str(), s.priority, s.idempotent))
            .collect();
        assert_eq!(
            subs,
            [("pre_container", 10, false), ("post_container", -5, true)]
        );
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["flood_stderr"]["required"],
            json!(["lines_per_sec", "line_bytes"])
        );
        let keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
    }

    #[test]
    fn config_keys_are_parsed() {
        let faults = Faults::from_config(&Config::new(json!({
            "crash_after": 3,
            "hang_invoke": true,
            "invoke_delay_ms": 250,
            "panic_on_invoke": false,
            "health": "not_serving_after:2",
            "flood_stderr": {"lines_per_sec": 1000, "line_bytes": 200},
            "flood_stdout": {"line_bytes": 40000, "lines_per_sec": 10},
            "newline_free_bytes": 100000,
            "fork_grandchildren": 2,
            "orphan_grandchildren": 1,
            "ignore_shutdown": true,
        })))
        .unwrap();
        assert_eq!(
            faults,
            Faults {
                crash_after: Some(3),
                hang_invoke: true,
                invoke_delay: Some(Duration::from_millis(250)),
                panic_on_invoke: false,
                health: HealthMode::NotServingAfter(2),
                flood_stderr: Some(Flood {
                    lines_per_sec: 1000,
                    line_bytes: 200
                }),
                flood_stdout: Some(Flood {
                    lines_per_sec: 10,
                    line_bytes: 40000
                }),
                newline_free_bytes: 100_000,
                fork_grandchildren: 2,
                orphan_grandchildren: 1,
                ignore_shutdown: true,
            }
        );
        assert!(faults.has_side_effects());
        let empty = Faults::from_config(&Config::new(json!({}))).unwrap();
        assert_eq!(empty, Faults::default());
        assert!(!empty.has_side_effects());
        for (given, want) in [
            ("serving", HealthMode::Serving),
            ("not_serving", HealthMode::NotServing),
            ("stop_answering", HealthMode::StopAnswering),
            ("stop_answering_after:7", HealthMode::StopAnsweringAfter(7)),
        ] {
            let f = Faults::from_config(&Config::new(json!({ "health": given }))).unwrap();
            assert_eq!(f.health, want, "{given}");
        }
    }

    #[tokio::test]
    async fn bad_config_is_refused_naming_the_key() {
        let h = harness();
        let cases = [
            (
                json!({"crash_after": 0}),
                "crash_after: expected a whole number 1 or more, got 0",
            ),
            (
                json!({"crash_after": "3"}),
                "crash_after: expected a whole number 1 or more, got \"3\"",
            ),
            (
                json!({"invoke_delay_ms": 1.5}),
                "invoke_delay_ms: expected a whole number from 0 to 86400000, got 1.5",
            ),
            (
                json!({"hang_invoke": "yes"}),
                "hang_invoke: expected true or false, got \"yes\"",
            ),
            (
                json!({"health": "sick"}),
                "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
                 \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got \"sick\"",
            ),
            (
                json!({"health": "not_serving_after:0"}),
                "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
                 \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got \
                 \"not_serving_after:0\"",
            ),
            (
                json!({"flood_stderr": 100}),
                "flood_stderr: expected an object {\"lines_per_sec\": N, \"line_bytes\": M}, \
                 got 100",
            ),
            (
                json!({"flood_stdout": {"lines_per_sec": 10}}),
                "flood_stdout.line_bytes: missing (expected a whole number from 1 to 16777216)",
            ),
            (
                json!({"flood_stdout": {"lines_per_sec": 0, "line_bytes": 1}}),
                "flood_stdout.lines_per_sec: expected a whole number from 1 to 1000000, got 0",
            ),
            (
                json!({"flood_stderr": {"lines_per_sec": 1, "line_bytes": 1, "colour": 1}}),
                "flood_stderr.colour: unknown key (expected lines_per_sec and line_bytes)",
            ),
            (
                json!({"fork_grandchildren": 65}),
                "fork_grandchildren: expected a whole number from 0 to 64, got 65",
            ),
            (
                json!({"orphan_grandchildren": -1}),
                "orphan_grandchildren: expected a whole number from 0 to 64, got -1",
            ),
            (
                json!({"newline_free_bytes": 2_000_000_000u64}),
                "newline_free_bytes: expected a whole number from 0 to 1073741824, got \
                 2000000000",
            ),
            (
                json!({"ignore_shutdown": 1}),
                "ignore_shutdown: expected true or false, got 1",
            ),
        ];
        for (config, want) in cases {
            let err = h.configure(config.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{config}");
            assert_eq!(err.message(), want, "{config}");
        }
        let err = h.configure(json!({"phases": ["x"]})).await.unwrap_err();
        assert!(err.message().contains("unknown field `phases`"), "{err}");
    }

    #[tokio::test]
    async fn invoke_patches_the_count_under_the_instance_name() {
        let h = harness();
        // Before Configure, the manifest name stands in.
        let out = h.invoke("stress", json!({"metadata": {}})).await.unwrap();
        assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(1)));

        h.configure_with(Config::new(json!({})).with_instance_name("stress-b"))
            .await
            .unwrap();
        let out = h.invoke("stress", json!({})).await.unwrap();
        assert_eq!(
            out.context,
            json!({"metadata": {"stress": {"stress-b": {"count": 2}}}})
        );
        assert_eq!(count_pointer("a/b~c"), "/metadata/stress/a~1b~0c/count");
    }

    #[test]
    fn each_invocation_steps_by_its_count() {
        let crash = Faults {
            crash_after: Some(3),
            hang_invoke: true,
            ..Faults::default()
        };
        assert_eq!(crash.step(1), Step::Hang);
        assert_eq!(crash.step(2), Step::Hang);
        assert_eq!(crash.step(3), Step::Crash);
        assert_eq!(crash.step(4), Step::Crash);
        let panics = Faults {
            panic_on_invoke: true,
            hang_invoke: true,
            ..Faults::default()
        };
        assert_eq!(panics.step(1), Step::Panic);
        assert_eq!(Faults::default().step(1_000_000), Step::Answer);
    }

    #[tokio::test]
    async fn crash_after_exits_101_in_the_nth_invocation() {
        let h = Arc::new(harness());
        h.configure(json!({"crash_after": 3})).await.unwrap();
        for n in 1..=2 {
            let out = h.invoke("stress", json!({})).await.unwrap();
            assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(n)));
        }
        let third = tokio::spawn({
            let h = h.clone();
            async move { h.invoke("stress", json!({})).await }
        });
        let panic = third.await.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().unwrap();
        assert_eq!(message, "stress would exit(101)");
    }

    #[tokio::test]
    async fn health_follows_the_mode() {
        let h = harness();
        h.configure(json!({"health": "not_serving"})).await.unwrap();
        assert!(!h.health().is_serving() && !h.health().is_stalled());

        h.configure(json!({"health": "stop_answering"}))
            .await
            .unwrap();
        assert!(h.health().is_serving() && h.health().is_stalled());

        // Configure resets what an earlier mode set.
        h.configure(json!({"health": "serving"})).await.unwrap();
        assert!(h.health().is_serving() && !h.health().is_stalled());

        // Counted since start: the two invocations above were none, so
        // NOT_SERVING comes with the 2nd invocation.
        h.configure(json!({"health": "not_serving_after:2"}))
            .await
            .unwrap();
        h.invoke("stress", json!({})).await.unwrap();
        assert!(h.health().is_serving());
        h.invoke("stress", json!({})).await.unwrap();
        assert!(!h.health().is_serving());
        // Calls are still answered.
        let out = h.invoke("stress", json!({})).await.unwrap();
        assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(3)));

        h.configure(json!({"health": "stop_answering_after:4"}))
            .await
            .unwrap();
        assert!(h.health().is_serving() && !h.health().is_stalled());
        h.invoke("stress", json!({})).await.unwrap();
        assert!(h.health().is_stalled());
    }

    #[test]
    fn health_transitions() {
        assert_eq!(HealthMode::Serving.at_configure(), HealthState::SERVING);
        assert_eq!(HealthMode::NotServingAfter(2).after_invocation(1), None);
        assert_eq!(
            HealthMode::NotServingAfter(2).after_invocation(2),
            Some(HealthState {
                serving: false,
                stalled: false
            })
        );
        assert_eq!(
            HealthMode::StopAnsweringAfter(1).after_invocation(5),
            Some(HealthState {
                serving: true,
                stalled: true
            })
        );
        assert_eq!(HealthMode::NotServing.after_invocation(9), None);
    }

    #[tokio::test]
    async fn delay_and_hang_hold_the_answer() {
        let h = harness();
        h.configure(json!({"invoke_delay_ms": 100})).await.unwrap();
        let started = Instant::now();
        h.invoke("stress", json!({})).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));

        h.configure(json!({"hang_invoke": true})).await.unwrap();
        let hung =
            tokio::time::timeout(Duration::from_millis(200), h.invoke("stress", json!({}))).await;
        assert!(hung.is_err(), "a hung Invoke answered: {hung:?}");
    }

    #[tokio::test]
    async fn panic_on_invoke_panics_in_the_call() {
        let h = Arc::new(harness());
        h.configure(json!({"panic_on_invoke": true})).await.unwrap();
        let call = tokio::spawn({
            let h = h.clone();
            async move { h.invoke("stress", json!({})).await }
        });
        let panic = call.await.unwrap_err().into_panic();
        assert_eq!(
            panic.downcast_ref::<String>().unwrap(),
            "stress: panicking in Invoke on purpose (invocation 1)"
        );
    }
}
