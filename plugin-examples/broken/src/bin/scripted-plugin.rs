//! A plugin whose answers are scripted, for the host's fan-out tests.
//!
//! Its name is the instance name the host gives it (`OUTBOARD_PLUGIN_NAME`).
//! It subscribes to the phases in `SCRIPTED_SUBSCRIBE`, a comma list of
//! `phase:priority` or `phase:priority:idempotent`. Its config says, per phase, what to do when invoked,
//! in this order:
//!
//! ```json
//! {"pre_container": {
//!     "sleep_ms": 100,                  // wait first
//!     "log_lines": 5000,                // write that many numbered lines to stderr,
//!     "log_width": 4096,                //   each padded with dots to this many bytes
//!     "crash": true,                    // exit(101) mid-call
//!     "crash_once_marker": "<dir>/m",   // crash if <dir>/m is absent, creating it (0600)
//!     "from_context": "/do",            // first: take the keys of the context's
//!                                       //   /do/<its name> over these ones
//!     "error": "message",               // fail with INTERNAL
//!     "error_kind": "unavailable",      //   or: invalid_context, failed_precondition,
//!                                       //   unimplemented, unavailable
//!     "abort": "message",               // veto
//!     "copy": {"/to": "/from"},         // set /to to the context's /from (null if absent)
//!     "set": {"/path": "value"},        // set
//!     "version_at": "/path",            // set /path to its manifest's version
//!     "append": {"/list": "value"},     // set /list/- (append)
//!     "remove": ["/path"]               // remove
//! }}
//! ```
//!
//! A phase without a script answers CONTINUE with no patch.
//!
//! Events: it subscribes to the event patterns in `SCRIPTED_EVENTS` (a
//! comma list; each also asks for `event:subscribe:<pattern>`), and its
//! config's `"events"` script says what to do with each delivery, in this
//! order:
//!
//! ```json
//! {"events": {
//!     "log": "<dir>/events.jsonl",      // append {"plugin","id","name","source","attempt","payload"}
//!     "hold_while": "<dir>/hold",       // then wait while this file exists
//!     "crash_while": "<dir>/crashing",  // then exit(101) while this file exists
//!     "crash": true                     // or always
//! }}
//! ```
//!
//! `SCRIPTED_VERSION` is the version its manifest gives (default `0.1.0`),
//! for tests that install one version over another.
//!
//! `SCRIPTED_START_DELAY_MS` delays the start (before the handshake), for
//! tests that need a plugin to take a while to come back.
//!
//! For the start order: `SCRIPTED_DEPENDS` is a comma list of dependencies
//! for its manifest, each `name`, `name@requirement`, with a trailing `?`
//! when optional. With `SCRIPTED_READY_DIR`, `Configure` refuses unless
//! `<dir>/<dependency>` exists for each required dependency, then waits
//! `SCRIPTED_CONFIGURE_DELAY_MS` and creates `<dir>/<name>`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outboard_plugin::{Config, Event, Invocation, Manifest, Plugin, PluginError, Reply};
use serde_json::{Map, Value};

struct Scripted {
    name: String,
    /// Its manifest's version, from `SCRIPTED_VERSION`.
    version: String,
    /// Lines written for `log_lines` so far, numbering them across calls.
    logged: AtomicU64,
    subscriptions: Vec<(String, i32, bool)>,
    /// Event patterns, from `SCRIPTED_EVENTS`.
    events: Vec<String>,
    /// `(name, requirement, optional)`, from `SCRIPTED_DEPENDS`.
    dependencies: Vec<(String, String, bool)>,
    scripts: Mutex<BTreeMap<String, Map<String, Value>>>,
}

impl Plugin for Scripted {
    fn manifest(&self) -> Manifest {
        let mut manifest =
            Manifest::new(&self.name, &self.version).describe("Answers as its config scripts");
        for (phase, priority, idempotent) in &self.subscriptions {
            manifest = if *idempotent {
                manifest.subscribe_idempotent(phase, *priority)
            } else {
                manifest.subscribe(phase, *priority)
            };
        }
        for pattern in &self.events {
            manifest = manifest.subscribe_event(pattern);
        }
        for (name, req, optional) in &self.dependencies {
            manifest = if *optional {
                manifest.depends_on_optional(name, req)
            } else {
                manifest.depends_on(name, req)
            };
        }
        manifest
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let mut scripts = BTreeMap::new();
        for (phase, script) in config.values {
            let Value::Object(script) = script else {
                return Err(PluginError::invalid_config(format!(
                    "the script for {phase} is not an object"
                )));
            };
            scripts.insert(phase, script);
        }
        *self
            .scripts
            .lock()
            .map_err(|_| PluginError::internal("poisoned"))? = scripts;
        self.mark_configured().await
    }

    async fn on_event(&self, event: Event) -> Result<(), PluginError> {
        let script = self
            .scripts
            .lock()
            .map_err(|_| PluginError::internal("poisoned"))?
            .get("events")
            .cloned()
            .unwrap_or_default();
        let path = |key: &str| script.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(log) = path("log") {
            let line = serde_json::json!({
                "plugin": self.name,
                "id": event.id,
                "name": event.name,
                "source": event.source,
                "attempt": event.attempt,
                "payload": event.payload,
            });
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&log)
                .map_err(|e| PluginError::internal(format!("cannot open {log}: {e}")))?;
            writeln!(file, "{line}")
                .map_err(|e| PluginError::internal(format!("cannot write {log}: {e}")))?;
        }
        if let Some(hold) = path("hold_while") {
            while std::path::Path::new(&hold).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let crash_while = path("crash_while").is_some_and(|p| std::path::Path::new(&p).exists());
        if crash_while || script.get("crash").and_then(Value::as_bool) == Some(true) {
            eprintln!("{}: crashing on purpose in event {}", self.name, event.name);
            std::process::exit(101);
        }
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let mut script = self
            .scripts
            .lock()
            .map_err(|_| PluginError::internal("poisoned"))?
            .get(&invocation.phase)
            .cloned()
            .unwrap_or_default();
        if let Some(at) = script.get("from_context").and_then(Value::as_str)
            && let Some(Value::Object(given)) = invocation.get(&format!("{at}/{}", self.name))
        {
            script.extend(given.clone());
        }
        if let Some(ms) = script.get("sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(count) = script.get("log_lines").and_then(Value::as_u64) {
            let width = script.get("log_width").and_then(Value::as_u64).unwrap_or(0);
            self.log_lines(count, usize::try_from(width).unwrap_or(usize::MAX));
        }
        if let Some(marker) = script.get("crash_once_marker").and_then(Value::as_str)
            && std::fs::OpenOptions::new()
                .write(true)
                // O_EXCL: never through a symbolic link, never an existing
                // file; and the owner's only.
                .create_new(true)
                .mode(0o600)
                .open(marker)
                .is_ok()
        {
            eprintln!(
                "{}: crashing once on purpose in {}",
                self.name, invocation.phase
            );
            std::process::exit(101);
        }
        if script.get("crash").and_then(Value::as_bool) == Some(true) {
            eprintln!("{}: crashing on purpose in {}", self.name, invocation.phase);
            std::process::exit(101);
        }
        if let Some(message) = script.get("error").and_then(Value::as_str) {
            let kind = script.get("error_kind").and_then(Value::as_str);
            return Err(match kind {
                Some("invalid_context") => PluginError::invalid_context(message),
                Some("failed_precondition") => PluginError::failed_precondition(message),
                Some("unimplemented") => PluginError::unimplemented(message),
                Some("unavailable") => PluginError::unavailable(message),
                _ => PluginError::internal(message),
            });
        }
        if let Some(message) = script.get("abort").and_then(Value::as_str) {
            return Ok(Reply::abort(message));
        }
        let mut reply = Reply::ok();
        for (to, from) in script
            .get("copy")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let seen = from
                .as_str()
                .and_then(|from| invocation.get(from))
                .cloned()
                .unwrap_or(Value::Null);
            reply = reply.set(to, seen);
        }
        for (path, value) in script
            .get("set")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            reply = reply.set(path, value.clone());
        }
        if let Some(path) = script.get("version_at").and_then(Value::as_str) {
            reply = reply.set(path, Value::String(self.version.clone()));
        }
        for (path, value) in script
            .get("append")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            reply = reply.set(&format!("{path}/-"), value.clone());
        }
        for path in script
            .get("remove")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(path) = path.as_str() {
                reply = reply.remove(path);
            }
        }
        Ok(reply)
    }
}

impl Scripted {
    /// Writes `count` lines to stderr, `NAME: log line K`, K counting on
    /// from the previous call's, so a reader can tell which are the latest;
    /// each padded with dots to `width` bytes.
    fn log_lines(&self, count: u64, width: usize) {
        let first = self.logged.fetch_add(count, Ordering::Relaxed) + 1;
        let mut err = std::io::stderr().lock();
        for k in first..first + count {
            let mut line = format!("{}: log line {k}", self.name);
            if width > line.len() {
                line.push(' ');
                line.extend(std::iter::repeat_n('.', width - line.len()));
            }
            // A closed stderr is the host's business; the call goes on.
            let _ = writeln!(err, "{line}");
        }
    }

    /// Checks that its required dependencies were configured first, then
    /// (after the configured delay) says that it is.
    async fn mark_configured(&self) -> Result<(), PluginError> {
        let Some(dir) = std::env::var_os("SCRIPTED_READY_DIR").map(std::path::PathBuf::from) else {
            return Ok(());
        };
        for (name, _, optional) in &self.dependencies {
            if !optional && !dir.join(name).exists() {
                return Err(PluginError::invalid_config(format!(
                    "configured before its dependency {name} was"
                )));
            }
        }
        if let Some(ms) = env_ms("SCRIPTED_CONFIGURE_DELAY_MS") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(&self.name))
            .map_err(|e| {
                PluginError::internal(format!("cannot mark {} configured: {e}", self.name))
            })?;
        Ok(())
    }
}

fn env_ms(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() -> ExitCode {
    if let Some(ms) = env_ms("SCRIPTED_START_DELAY_MS") {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let name = std::env::var("OUTBOARD_PLUGIN_NAME").unwrap_or_else(|_| "scripted".to_owned());
    let subscriptions = std::env::var("SCRIPTED_SUBSCRIBE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(':');
            let phase = parts.next()?.trim().to_owned();
            let priority = parts.next()?.trim().parse().ok()?;
            let idempotent = parts.next().is_some_and(|flag| flag.trim() == "idempotent");
            Some((phase, priority, idempotent))
        })
        .collect();
    let dependencies = std::env::var("SCRIPTED_DEPENDS")
        .unwrap_or_default()
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let entry = entry.trim();
            let (entry, optional) = entry
                .strip_suffix('?')
                .map_or((entry, false), |e| (e, true));
            let (name, req) = entry.split_once('@').unwrap_or((entry, ""));
            (name.to_owned(), req.to_owned(), optional)
        })
        .collect();
    let events = std::env::var("SCRIPTED_EVENTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    outboard_plugin::run(Scripted {
        name,
        version: std::env::var("SCRIPTED_VERSION").unwrap_or_else(|_| "0.1.0".to_owned()),
        logged: AtomicU64::new(0),
        subscriptions,
        events,
        dependencies,
        scripts: Mutex::new(BTreeMap::new()),
    })
}
