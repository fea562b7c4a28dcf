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
//! ```
//!
//! `command` is an absolute path, a path relative to the file's directory
//! when it contains a `/`, or a bare name looked up on `PATH`. It is resolved
//! when the file is loaded, so a missing executable is reported then, with
//! the file and the line, not at the first spawn.
//!
//! A plugin directory holds one folder per plugin, each with a `plugin.toml`
//! taking the keys of a `[[plugin]]` table. There `name` defaults to the
//! folder's name, relative paths are relative to the folder, a bare
//! `command` names an executable in the folder if there is one (else it is
//! looked up on `PATH`), and `working_dir` defaults to the folder.
//!
//! Unknown keys are errors, so a typo is caught with the file and the line.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outboard_proto::handshake;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use outboard_proto::names::{
    MAX_NAME_LEN, invalid_phase_name, invalid_plugin_name, is_valid_phase_name,
    is_valid_plugin_name,
};

mod phase;
mod supervision;

pub use phase::{
    FailurePolicy, JOB_PHASES, Mode, PhaseSpec, Retry, SubscriptionOverride, job_profile,
};
pub use supervision::{RestartPolicy, Supervision};

/// How long a plugin has from spawn to its handshake line, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call to a plugin may take, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a plugin has to exit after `Shutdown` before SIGTERM, by default.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The host's config file name.
pub const CONFIG_FILE_NAME: &str = "outboard.toml";
/// The file that makes a folder in a plugin directory a plugin.
pub const PLUGIN_FILE_NAME: &str = "plugin.toml";
/// Environment variable listing plugin directories, separated by `:`.
pub const ENV_PLUGIN_DIR: &str = "OUTBOARD_PLUGIN_DIR";

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
        }
    }
}

/// Values a plugin gets when it does not set its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// See [`PluginSpec::handshake_timeout`].
    pub handshake_timeout: Duration,
    /// See [`PluginSpec::call_timeout`].
    pub call_timeout: Duration,
    /// See [`PluginSpec::stop_grace`].
    pub stop_grace: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
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
}

impl HostConfig {
    /// Parses `text` as if read from `path`: `path` names the file in errors
    /// and its directory anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<HostConfig, RegistryError> {
        let file: FileToml = toml::from_str(text).map_err(|e| RegistryError::Toml {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let src = Source::new(path, text, path.parent().unwrap_or(Path::new("")));
        let defaults = file.defaults.resolve(&src)?;
        let mut phases = BTreeMap::new();
        for (name, phase) in file.phases {
            let spec = phase.resolve(&name, &src)?;
            phases.insert(name.into_inner(), spec);
        }
        let mut plugins = Vec::new();
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for (i, table) in file.plugin.into_iter().enumerate() {
            let at = src.location(table.span());
            let table = table.into_inner();
            let name = match &table.name {
                Some(name) => name.clone(),
                None => {
                    return Err(RegistryError::Invalid {
                        at,
                        subject: format!("plugin #{}", i + 1),
                        field: "name".into(),
                        why: "is missing (every [[plugin]] needs a name)".into(),
                    });
                }
            };
            let name_at = src.location(name.span());
            let Some(spec) = table.resolve(name.into_inner(), &src, &defaults, None)? else {
                continue;
            };
            if let Some(first) = seen.insert(spec.name.clone(), name_at.clone()) {
                return Err(RegistryError::Duplicate {
                    name: spec.name,
                    first,
                    second: name_at,
                });
            }
            plugins.push(spec);
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(HostConfig {
            plugins,
            defaults,
            phases,
        })
    }

    /// Adds plugins found elsewhere (plugin directories); a name already
    /// taken is an error naming both sources. Keeps the list sorted.
    pub fn add_plugins(&mut self, more: Vec<PluginSpec>) -> Result<(), RegistryError> {
        for spec in more {
            if let Some(existing) = self.plugin(&spec.name) {
                return Err(RegistryError::Duplicate {
                    first: Location::file(&existing.source),
                    second: Location::file(&spec.source),
                    name: spec.name,
                });
            }
            self.plugins.push(spec);
        }
        self.plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

/// Reads and resolves an `outboard.toml`.
pub fn load(path: impl AsRef<Path>) -> Result<HostConfig, RegistryError> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|error| RegistryError::Read {
        path: path.to_owned(),
        error,
    })?;
    HostConfig::parse(&text, path)
}

/// A spec for a plugin given as a command line (`outboard describe -- CMD
/// ARGS...`): the command resolves like a config's `command`, relative to
/// the current directory, and the name is the executable's file name made
/// into a valid plugin name. Built-in defaults; no config.
pub fn spec_for_command(argv: &[String]) -> Result<PluginSpec, RegistryError> {
    let Some((command, args)) = argv.split_first() else {
        return Err(RegistryError::Command {
            command: String::new(),
            why: "is empty: give the plugin's executable".into(),
        });
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path = resolve_command(command, &cwd, false).map_err(|why| RegistryError::Command {
        command: command.clone(),
        why,
    })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut spec = PluginSpec::new(name_from(&file_name), path);
    spec.args = args.to_vec();
    spec.source = PathBuf::from(COMMAND_LINE_SOURCE);
    Ok(spec)
}

/// What [`PluginSpec::source`] says for a plugin given on the command line.
pub const COMMAND_LINE_SOURCE: &str = "<command line>";

/// `file_name` as a plugin name: lowercased, other characters as `-`,
/// leading `-`/`_` dropped, at most 64 characters; `plugin` if nothing is
/// left.
fn name_from(file_name: &str) -> String {
    let name: String = file_name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(MAX_NAME_LEN)
        .collect();
    if name.is_empty() {
        "plugin".into()
    } else {
        name
    }
}

/// The plugins in `dirs` (see the module docs), with built-in defaults.
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<PluginSpec>, RegistryError> {
    discover_with(dirs, &Defaults::default())
}

/// The plugins in `dirs`, filling in what their `plugin.toml` leaves out
/// from `defaults` (typically `outboard.toml`'s). Sorted by name; a name
/// found twice is an error naming both files.
pub fn discover_with(
    dirs: &[PathBuf],
    defaults: &Defaults,
) -> Result<Vec<PluginSpec>, RegistryError> {
    let mut found: Vec<PluginSpec> = Vec::new();
    let mut seen_dirs = Vec::new();
    for dir in dirs {
        // The same directory named twice (say by --plugin-dir and by
        // OUTBOARD_PLUGIN_DIR) is one directory, not a set of duplicates.
        let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if seen_dirs.contains(&canonical) {
            continue;
        }
        seen_dirs.push(canonical);
        let read_dir_error = |error| RegistryError::ReadDir {
            path: dir.clone(),
            error,
        };
        let mut folders = fs::read_dir(dir)
            .map_err(read_dir_error)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_dir_error)?;
        folders.sort();
        for folder in folders.into_iter().filter(|p| p.is_dir()) {
            let file = folder.join(PLUGIN_FILE_NAME);
            if !file.is_file() {
                tracing::debug!(folder = %folder.display(), "no {PLUGIN_FILE_NAME}, not a plugin");
                continue;
            }
            let Some(spec) = load_plugin_file(&file, &folder, defaults)? else {
                tracing::debug!(file = %file.display(), "plugin disabled");
                continue;
            };
            if let Some(other) = found.iter().find(|p| p.name == spec.name) {
                return Err(RegistryError::Duplicate {
                    first: Location::file(&other.source),
                    second: Location::file(&spec.source),
                    name: spec.name,
                });
            }
            found.push(spec);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The plugin directories named by `OUTBOARD_PLUGIN_DIR`, in order.
pub fn dirs_from_env() -> Vec<PathBuf> {
    std::env::var_os(ENV_PLUGIN_DIR)
        .map(|list| split_dirs(&list))
        .unwrap_or_default()
}

/// Splits a `:`-separated directory list, dropping empty entries.
pub fn split_dirs(list: &OsStr) -> Vec<PathBuf> {
    std::env::split_paths(list)
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

fn load_plugin_file(
    file: &Path,
    folder: &Path,
    defaults: &Defaults,
) -> Result<Option<PluginSpec>, RegistryError> {
    let text = fs::read_to_string(file).map_err(|error| RegistryError::Read {
        path: file.to_owned(),
        error,
    })?;
    let table: PluginToml = toml::from_str(&text).map_err(|e| RegistryError::Toml {
        path: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let src = Source::new(file, &text, folder);
    let name = match &table.name {
        Some(name) => name.get_ref().clone(),
        None => match folder.file_name().and_then(OsStr::to_str) {
            Some(n) => n.to_owned(),
            None => {
                return Err(RegistryError::Invalid {
                    at: Location::file(file),
                    subject: "plugin".into(),
                    field: "name".into(),
                    why: format!(
                        "is missing and the folder name {:?} is not UTF-8",
                        folder.file_name().unwrap_or_default()
                    ),
                });
            }
        },
    };
    table.resolve(name, &src, defaults, Some(folder))
}

/// Where something was declared: a file and, when known, a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was named to the host.
    pub path: PathBuf,
    /// 1-based line in it.
    pub line: Option<usize>,
}

impl Location {
    fn file(path: &Path) -> Location {
        Location {
            path: path.to_owned(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Why the host's configuration could not be loaded. Every message names the
/// file and, for a value, the field, the line and why.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A config file could not be read.
    #[error("cannot read {}: {}", path.display(), io_reason(error))]
    Read { path: PathBuf, error: io::Error },
    /// A plugin directory could not be listed.
    #[error("cannot read plugin directory {}: {}", path.display(), io_reason(error))]
    ReadDir { path: PathBuf, error: io::Error },
    /// Not TOML, or not the expected shape; `message` is toml's own, which
    /// names the key and the line.
    #[error("{}: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    /// A value that parsed but cannot be used.
    #[error("{at}: {subject}: {field} {why}")]
    Invalid {
        at: Location,
        /// `plugin "name"`, `plugin #2` or `defaults`.
        subject: String,
        /// The key, e.g. `command` or `env.PATH`.
        field: String,
        /// What is wrong, quoting the value.
        why: String,
    },
    /// A plugin given as a command line cannot be run.
    #[error("command {command:?} {why}")]
    Command { command: String, why: String },
    /// Two plugins with one name.
    #[error("plugin {name:?} is defined twice: at {first} and at {second}")]
    Duplicate {
        name: String,
        first: Location,
        second: Location,
    },
}

/// An I/O error's message without the "(os error N)" suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

// --- The file format. These types mirror the TOML; `resolve` turns them
// into specs.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    defaults: DefaultsToml,
    #[serde(default)]
    phases: BTreeMap<Spanned<String>, PhaseToml>,
    #[serde(default)]
    plugin: Vec<Spanned<PluginToml>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsToml {
    handshake_timeout: Option<Spanned<DurationText>>,
    call_timeout: Option<Spanned<DurationText>>,
    stop_grace: Option<Spanned<DurationText>>,
}

/// A `[[plugin]]` table, or a whole `plugin.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginToml {
    name: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
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
    restart: Option<RestartPolicy>,
    health_interval: Option<Spanned<DurationText>>,
    health_misses: Option<Spanned<u32>>,
    backoff_initial: Option<Spanned<DurationText>>,
    backoff_max: Option<Spanned<DurationText>>,
    backoff_reset_after: Option<Spanned<DurationText>>,
    crash_loop_starts: Option<Spanned<u32>>,
    crash_loop_window: Option<Spanned<DurationText>>,
}

/// A `[phases.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseToml {
    mode: Option<Mode>,
    timeout: Option<Spanned<DurationText>>,
    failure_policy: Option<FailurePolicy>,
}

impl PhaseToml {
    fn resolve(self, name: &Spanned<String>, src: &Source<'_>) -> Result<PhaseSpec, RegistryError> {
        let subject = format!("phase {:?}", name.get_ref());
        if !is_valid_phase_name(name.get_ref()) {
            return Err(RegistryError::Invalid {
                at: src.location(name.span()),
                subject,
                field: "name".into(),
                why: invalid_phase_name(name.get_ref()),
            });
        }
        let timeout =
            optional_duration(&self.timeout).map_err(|(span, why)| RegistryError::Invalid {
                at: src.location(span),
                subject,
                field: "timeout".into(),
                why,
            })?;
        // A key left out keeps the phase's default: the job profile's for its
        // phases, sequential and fail-closed for others.
        let base = crate::config::job_profile()
            .get(name.get_ref())
            .copied()
            .unwrap_or_default();
        Ok(PhaseSpec {
            mode: self.mode.unwrap_or(base.mode),
            timeout: timeout.or(base.timeout),
            failure_policy: self.failure_policy.unwrap_or(base.failure_policy),
        })
    }
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

/// A duration as written, parsed with humantime once its span is known.
/// Its own visitor so that `call_timeout = 5` says what is expected.
#[derive(Debug)]
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"10s\" or \"500ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The file being resolved: for error locations and relative paths.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    /// What relative paths are relative to.
    base: &'a Path,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, text: &'a str, base: &'a Path) -> Self {
        Source { path, text, base }
    }

    fn location(&self, span: Range<usize>) -> Location {
        let upto = self.text.get(..span.start).unwrap_or(self.text);
        Location {
            path: self.path.to_owned(),
            line: Some(upto.matches('\n').count() + 1),
        }
    }

    /// `base` as an absolute path (the current directory when it is empty).
    fn base_dir(&self) -> PathBuf {
        let base = if self.base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.base
        };
        std::path::absolute(base).unwrap_or_else(|_| base.to_owned())
    }
}

impl DefaultsToml {
    fn resolve(&self, src: &Source<'_>) -> Result<Defaults, RegistryError> {
        let builtin = Defaults::default();
        let get = |field: &str, value: &Option<Spanned<DurationText>>, fallback, allow_zero| {
            duration(value, fallback, allow_zero).map_err(|(span, why)| RegistryError::Invalid {
                at: src.location(span),
                subject: "defaults".into(),
                field: field.into(),
                why,
            })
        };
        Ok(Defaults {
            handshake_timeout: get(
                "handshake_timeout",
                &self.handshake_timeout,
                builtin.handshake_timeout,
                false,
            )?,
            call_timeout: get(
                "call_timeout",
                &self.call_timeout,
                builtin.call_timeout,
                false,
            )?,
            stop_grace: get("stop_grace", &self.stop_grace, builtin.stop_grace, true)?,
        })
    }
}

/// Host-set variables a plugin's `env` may not override.
const RESERVED_ENV: &[&str] = &[
    handshake::ENV_MAGIC_COOKIE,
    handshake::ENV_PROTOCOL_VERSIONS,
    handshake::ENV_SOCKET,
    handshake::ENV_TOKEN,
    handshake::ENV_PLUGIN_NAME,
];

impl PluginToml {
    /// The spec for this table, or `None` if it is disabled. `folder` is set
    /// for a plugin directory's `plugin.toml`.
    fn resolve(
        self,
        name: String,
        src: &Source<'_>,
        defaults: &Defaults,
        folder: Option<&Path>,
    ) -> Result<Option<PluginSpec>, RegistryError> {
        let invalid =
            |span: Option<Range<usize>>, field: &str, why: String| RegistryError::Invalid {
                at: span.map_or_else(|| Location::file(src.path), |s| src.location(s)),
                subject: format!("plugin {name:?}"),
                field: field.into(),
                why,
            };
        let name_span = self.name.as_ref().map(Spanned::span);
        if !is_valid_plugin_name(&name) {
            let why = match folder {
                Some(_) if self.name.is_none() => format!(
                    "defaults to the folder's name, but {}; set name in {PLUGIN_FILE_NAME}",
                    invalid_plugin_name(&name)
                ),
                _ => invalid_plugin_name(&name),
            };
            return Err(invalid(name_span, "name", why));
        }
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let base = src.base_dir();

        let Some(command) = &self.command else {
            return Err(invalid(
                name_span,
                "command",
                "is missing (the plugin's executable, e.g. command = \"bin/my-plugin\")".into(),
            ));
        };
        let command_path =
            resolve_command(command.get_ref(), &base, folder.is_some()).map_err(|why| {
                invalid(
                    Some(command.span()),
                    "command",
                    format!("{:?} {why}", command.get_ref()),
                )
            })?;

        let mut env = BTreeMap::new();
        for (key, value) in self.env {
            let field = format!("env.{}", key.get_ref());
            let bad = if key.get_ref().is_empty() || key.get_ref().contains(['=', '\0']) {
                Some("is not a valid variable name (empty, or contains '=' or NUL)".to_owned())
            } else if RESERVED_ENV.contains(&key.get_ref().as_str()) {
                Some("is set by the host for the handshake and cannot be configured".to_owned())
            } else if value.contains('\0') {
                Some(format!("{value:?} contains a NUL byte"))
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(invalid(Some(key.span()), &field, why));
            }
            env.insert(key.into_inner(), value);
        }

        let config = match self.config {
            Some(table) => {
                let span = table.span();
                toml_table_to_json(table.into_inner(), "config")
                    .map_err(|(field, why)| invalid(Some(span.clone()), &field, why))?
            }
            None => serde_json::Map::new(),
        };

        let timeout = |field: &str, value: &Option<Spanned<DurationText>>, fallback, allow_zero| {
            duration(value, fallback, allow_zero)
                .map_err(|(span, why)| invalid(Some(span), field, why))
        };
        let handshake_timeout = timeout(
            "handshake_timeout",
            &self.handshake_timeout,
            defaults.handshake_timeout,
            false,
        )?;
        let call_timeout = timeout(
            "call_timeout",
            &self.call_timeout,
            defaults.call_timeout,
            false,
        )?;
        let stop_grace = timeout("stop_grace", &self.stop_grace, defaults.stop_grace, true)?;

        let working_dir = match &self.working_dir {
            Some(dir) => {
                let resolved = base.join(dir.get_ref());
                if !resolved.is_dir() {
                    return Err(invalid(
                        Some(dir.span()),
                        "working_dir",
                        format!(
                            "{:?} is not a directory (resolved to {})",
                            dir.get_ref(),
                            resolved.display()
                        ),
                    ));
                }
                Some(resolved)
            }
            None => folder.map(|_| base.clone()),
        };

        let builtin = Supervision::default();
        let span_of = |d: &Option<Spanned<DurationText>>, name: &str, fallback| {
            duration(d, fallback, false).map_err(|(span, why)| invalid(Some(span), name, why))
        };
        let at_least_one = |n: &Option<Spanned<u32>>, name: &str, fallback: u32| match n {
            Some(n) if *n.get_ref() == 0 => {
                Err(invalid(Some(n.span()), name, "must be at least 1".into()))
            }
            Some(n) => Ok(*n.get_ref()),
            None => Ok(fallback),
        };
        let supervision = Supervision {
            restart: self.restart.unwrap_or(builtin.restart),
            health_interval: span_of(
                &self.health_interval,
                "health_interval",
                builtin.health_interval,
            )?,
            health_misses: at_least_one(
                &self.health_misses,
                "health_misses",
                builtin.health_misses,
            )?,
            backoff_initial: span_of(
                &self.backoff_initial,
                "backoff_initial",
                builtin.backoff_initial,
            )?,
            backoff_max: span_of(&self.backoff_max, "backoff_max", builtin.backoff_max)?,
            backoff_reset_after: span_of(
                &self.backoff_reset_after,
                "backoff_reset_after",
                builtin.backoff_reset_after,
            )?,
            crash_loop_starts: at_least_one(
                &self.crash_loop_starts,
                "crash_loop_starts",
                builtin.crash_loop_starts,
            )?,
            crash_loop_window: span_of(
                &self.crash_loop_window,
                "crash_loop_window",
                builtin.crash_loop_window,
            )?,
        };

        let mut subscriptions = BTreeMap::new();
        for (phase, sub) in self.subscriptions {
            let field = format!("subscriptions.{}", phase.get_ref());
            if !is_valid_phase_name(phase.get_ref()) {
                return Err(invalid(
                    Some(phase.span()),
                    &field,
                    invalid_phase_name(phase.get_ref()),
                ));
            }
            let timeout = optional_duration(&sub.timeout)
                .map_err(|(span, why)| invalid(Some(span), &format!("{field}.timeout"), why))?;
            let retry = match &sub.retry_attempts {
                None if sub.retry_backoff.is_some() => {
                    return Err(invalid(
                        sub.retry_backoff.as_ref().map(Spanned::span),
                        &format!("{field}.retry_backoff"),
                        "has no effect without retry_attempts".into(),
                    ));
                }
                None => None,
                Some(n) if *n.get_ref() == 0 => {
                    return Err(invalid(
                        Some(n.span()),
                        &format!("{field}.retry_attempts"),
                        "must be at least 1 (attempts in all, the first included)".into(),
                    ));
                }
                Some(n) => Some(Retry {
                    attempts: *n.get_ref(),
                    backoff: duration(&sub.retry_backoff, Duration::from_millis(50), true)
                        .map_err(|(span, why)| {
                            invalid(Some(span), &format!("{field}.retry_backoff"), why)
                        })?,
                }),
            };
            subscriptions.insert(
                phase.into_inner(),
                SubscriptionOverride {
                    priority: sub.priority,
                    timeout,
                    failure_policy: sub.failure_policy,
                    enabled: sub.enabled.unwrap_or(true),
                    retry,
                },
            );
        }

        Ok(Some(PluginSpec {
            name,
            command: command_path,
            args: self.args,
            env,
            config,
            handshake_timeout,
            call_timeout,
            stop_grace,
            working_dir,
            grant: self.grant,
            subscriptions,
            supervision,
            source: src.path.to_owned(),
            runtime_base: None,
        }))
    }
}

/// Parses an optional humantime duration; the error carries the value's span
/// and says why.
fn duration(
    value: &Option<Spanned<DurationText>>,
    fallback: Duration,
    allow_zero: bool,
) -> Result<Duration, (Range<usize>, String)> {
    let Some(value) = value else {
        return Ok(fallback);
    };
    let text = &value.get_ref().0;
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() && !allow_zero => {
            Err((value.span(), format!("{text:?} must be longer than zero")))
        }
        Ok(d) => Ok(d),
        Err(e) => Err((
            value.span(),
            format!("{text:?} is not a duration like \"10s\" or \"500ms\": {e}"),
        )),
    }
}

/// Parses an optional, non-zero humantime duration that has no fallback.
fn optional_duration(
    value: &Option<Spanned<DurationText>>,
) -> Result<Option<Duration>, (Range<usize>, String)> {
    match value {
        None => Ok(None),
        Some(_) => duration(value, Duration::ZERO, false).map(Some),
    }
}

/// Resolves `command` to an absolute path to an executable file, or says why
/// it cannot (the caller prefixes the quoted command).
fn resolve_command(command: &str, base: &Path, bare_in_base: bool) -> Result<PathBuf, String> {
    if command.is_empty() {
        return Err("is empty".into());
    }
    if command.contains('/') {
        let resolved = base.join(command);
        return check_executable(&resolved)
            .map(|()| resolved.clone())
            .map_err(|why| format!("{why} (resolved to {})", resolved.display()));
    }
    if bare_in_base {
        let local = base.join(command);
        if check_executable(&local).is_ok() {
            return Ok(local);
        }
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        // An empty PATH entry historically means the current directory;
        // that is a trap, not a feature, so it is skipped.
        if !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join(command);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(if bare_in_base {
        format!(
            "is neither an executable in {} nor found on PATH",
            base.display()
        )
    } else {
        "was not found on PATH (write ./NAME for a file next to the config)".into()
    })
}

fn check_executable(path: &Path) -> Result<(), String> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err("does not exist".into()),
        Err(e) => Err(format!("cannot be inspected: {}", io_reason(&e))),
        Ok(m) if m.is_dir() => Err("is a directory, not an executable".into()),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!(
            "is not executable (mode {:o})",
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => Ok(()),
    }
}

/// A TOML table as a JSON object. Datetimes become their TOML text; a float
/// with no JSON form (nan, inf) is an error naming its key.
fn toml_table_to_json(
    table: toml::Table,
    at: &str,
) -> Result<serde_json::Map<String, Value>, (String, String)> {
    table
        .into_iter()
        .map(|(k, v)| {
            let here = format!("{at}.{k}");
            toml_to_json(v, &here).map(|v| (k, v))
        })
        .collect()
}

fn toml_to_json(value: toml::Value, at: &str) -> Result<Value, (String, String)> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err((at.to_owned(), format!("{f} has no JSON form")));
            }
        },
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(toml_table_to_json(t, at)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    /// A temp dir with an executable `bin/plug` and a non-executable `data`.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("bin")).expect("mkdir");
        executable(&dir.path().join("bin/plug"));
        fs::write(dir.path().join("data"), "").expect("write");
        dir
    }

    fn executable(path: &Path) {
        fs::write(path, "#!/bin/sh\n").expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join(CONFIG_FILE_NAME);
        fs::write(&path, text).expect("write config");
        path
    }

    fn load_err(dir: &Path, text: &str) -> String {
        let path = write_config(dir, text);
        load(&path)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn good_config_round_trip() {
        let dir = fixture();
        let path = write_config(
            dir.path(),
            r#"
[[plugin]]
name = "zeta"
command = "bin/plug"
args = ["--flag", "x"]
env = { RUST_LOG = "debug", EMPTY = "" }
working_dir = "bin"

[plugin.config]
prefix = "CI_"
retries = 3
ratio = 0.5
tags = ["a", "b"]
when = 1979-05-27T07:32:00Z
nested = { deep = true }

[[plugin]]
name = "alpha"
command = "./bin/../bin/plug"
"#,
        );
        let cfg = load(&path).expect("valid config");
        assert_eq!(cfg.defaults, Defaults::default());
        let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"], "sorted by name");
        let zeta = cfg.plugin("zeta").expect("zeta");
        let base = std::path::absolute(dir.path()).expect("absolute");
        assert_eq!(zeta.command, base.join("bin/plug"));
        assert!(zeta.command.is_absolute());
        assert_eq!(zeta.args, ["--flag", "x"]);
        assert_eq!(zeta.env["RUST_LOG"], "debug");
        assert_eq!(zeta.env["EMPTY"], "");
        assert_eq!(
            zeta.working_dir.as_deref(),
            Some(base.join("bin").as_path())
        );
        assert_eq!(zeta.source, path);
        assert_eq!(
            Value::Object(zeta.config.clone()),
            json!({
                "prefix": "CI_", "retries": 3, "ratio": 0.5, "tags": ["a", "b"],
                "when": "1979-05-27T07:32:00Z", "nested": {"deep": true}
            })
        );
        let alpha = cfg.plugin("alpha").expect("alpha");
        assert!(alpha.config.is_empty() && alpha.args.is_empty() && alpha.env.is_empty());
        assert_eq!(alpha.working_dir, None);
        assert_eq!(alpha.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    }

    #[test]
    fn phases_and_subscription_overrides() {
        let dir = fixture();
        let path = write_config(
            dir.path(),
            r#"
[phases.post_container]
mode = "parallel"
timeout = "750ms"
failure_policy = "fail_open"

[phases.submit]

[[plugin]]
name = "p"
command = "bin/plug"

[plugin.subscriptions.post_container]
priority = -5
failure_policy = "fail_closed"

[plugin.subscriptions.pre_container]
enabled = false
timeout = "1s"
"#,
        );
        let cfg = load(&path).expect("valid config");
        assert_eq!(
            cfg.phases["post_container"],
            PhaseSpec {
                mode: Mode::Parallel,
                timeout: Some(Duration::from_millis(750)),
                failure_policy: FailurePolicy::FailOpen,
            }
        );
        assert_eq!(cfg.phases["submit"], PhaseSpec::default());
        // A partial table keeps the job profile's defaults for what it omits.
        let path = write_config(dir.path(), "[phases.cleanup]\ntimeout = \"1s\"\n");
        let cleanup = load(&path).expect("valid").phases["cleanup"];
        assert_eq!(
            (cleanup.mode, cleanup.failure_policy, cleanup.timeout),
            (
                Mode::Parallel,
                FailurePolicy::FailOpen,
                Some(Duration::from_secs(1))
            )
        );
        let subs = &cfg.plugin("p").expect("p").subscriptions;
        assert_eq!(
            subs["post_container"],
            SubscriptionOverride {
                priority: Some(-5),
                timeout: None,
                failure_policy: Some(FailurePolicy::FailClosed),
                enabled: true,
                retry: None,
            }
        );
        assert!(!subs["pre_container"].enabled);
        assert_eq!(subs["pre_container"].timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn bad_phases_are_named() {
        let dir = fixture();
        let err = load_err(dir.path(), "[phases.post_container]\nmode = \"paralel\"\n");
        assert!(err.contains("paralel") && err.contains("parallel"), "{err}");
        let err = load_err(dir.path(), "[phases.\"Pre Container\"]\n");
        assert!(
            err.contains("phase \"Pre Container\"") && err.contains("not a valid phase name"),
            "{err}"
        );
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"p\"\ncommand = \"bin/plug\"\n[plugin.subscriptions.x]\ntimeout = \"0s\"\n",
        );
        assert!(
            err.contains("subscriptions.x.timeout") && err.contains("longer than zero"),
            "{err}"
        );
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"p\"\ncommand = \"bin/plug\"\n[plugin.subscriptions.x]\npriorty = 1\n",
        );
        assert!(err.contains("priorty"), "{err}");
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = load(write_config(dir.path(), "")).expect("valid");
        assert_eq!(cfg, HostConfig::default());
    }

    #[test]
    fn defaults_applied_and_overridden() {
        let dir = fixture();
        let path = write_config(
            dir.path(),
            r#"
[defaults]
handshake_timeout = "3s"
stop_grace = "0s"

[[plugin]]
name = "a"
command = "bin/plug"

[[plugin]]
name = "b"
command = "bin/plug"
handshake_timeout = "1m"
call_timeout = "500ms"
stop_grace = "1s 500ms"
"#,
        );
        let cfg = load(&path).expect("valid config");
        assert_eq!(
            cfg.defaults,
            Defaults {
                handshake_timeout: Duration::from_secs(3),
                call_timeout: DEFAULT_CALL_TIMEOUT,
                stop_grace: Duration::ZERO,
            }
        );
        let a = cfg.plugin("a").expect("a");
        assert_eq!(
            (a.handshake_timeout, a.call_timeout, a.stop_grace),
            (
                Duration::from_secs(3),
                Duration::from_secs(2),
                Duration::ZERO
            )
        );
        let b = cfg.plugin("b").expect("b");
        assert_eq!(
            (b.handshake_timeout, b.call_timeout, b.stop_grace),
            (
                Duration::from_secs(60),
                Duration::from_millis(500),
                Duration::from_millis(1500)
            )
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = fixture();
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncomand = \"bin/plug\"\n",
        );
        assert!(
            err.starts_with(&format!(
                "{}: ",
                dir.path().join(CONFIG_FILE_NAME).display()
            )),
            "{err}"
        );
        assert!(err.contains("comand"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = load_err(dir.path(), "[defaults]\ntimeout = \"1s\"\n");
        assert!(err.contains("timeout") && err.contains("line 2"), "{err}");

        let err = load_err(dir.path(), "[[plugins]]\nname = \"a\"\n");
        assert!(err.contains("plugins"), "{err}");
    }

    #[test]
    fn bad_duration() {
        let dir = fixture();
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\ncall_timeout = \"10 parsecs\"\n",
        );
        assert!(
            err.contains(":4: plugin \"a\": call_timeout \"10 parsecs\" is not a duration like \"10s\" or \"500ms\": unknown time unit \"parsecs\""),
            "{err}"
        );
        let err = load_err(dir.path(), "[defaults]\n\nhandshake_timeout = \"0s\"\n");
        assert!(
            err.ends_with(":3: defaults: handshake_timeout \"0s\" must be longer than zero"),
            "{err}"
        );
        let err = load_err(dir.path(), "[defaults]\ncall_timeout = 10\n");
        assert!(
            err.contains("call_timeout") && err.contains("line 2"),
            "{err}"
        );
        assert!(
            err.ends_with(
                "invalid type: integer `10`, expected a duration string like \"10s\" or \"500ms\""
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_name_or_command() {
        let dir = fixture();
        let err = load_err(dir.path(), "[[plugin]]\nname = \"a\"\nargs = []\n");
        assert!(
            err.ends_with(":2: plugin \"a\": command is missing (the plugin's executable, e.g. command = \"bin/my-plugin\")"),
            "{err}"
        );
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n[[plugin]]\ncommand = \"bin/plug\"\n",
        );
        assert!(err.contains(": plugin #2: name is missing"), "{err}");
    }

    #[test]
    fn command_problems_name_file_line_and_resolution() {
        let dir = fixture();
        let base = std::path::absolute(dir.path()).expect("absolute");
        let path = dir.path().join(CONFIG_FILE_NAME).display().to_string();
        let cases = [
            (
                "../target/debug/env-injectr",
                format!(
                    "does not exist (resolved to {})",
                    base.join("../target/debug/env-injectr").display()
                ),
            ),
            (
                "./bin",
                format!(
                    "is a directory, not an executable (resolved to {})",
                    base.join("./bin").display()
                ),
            ),
            (
                "./data",
                format!(
                    "is not executable (mode 644) (resolved to {})",
                    base.join("./data").display()
                ),
            ),
            (
                "no-such-plugin-binary-here",
                "was not found on PATH (write ./NAME for a file next to the config)".into(),
            ),
            (
                "/nonexistent/plugin",
                "does not exist (resolved to /nonexistent/plugin)".into(),
            ),
        ];
        for (command, why) in cases {
            let err = load_err(
                dir.path(),
                &format!("[[plugin]]\nname = \"env-injector\"\ncommand = {command:?}\n"),
            );
            assert_eq!(
                err,
                format!("{path}:3: plugin \"env-injector\": command {command:?} {why}")
            );
        }
    }

    #[test]
    fn command_relative_to_config_dir() {
        let dir = fixture();
        // Loaded through a relative path with `..`, from another directory:
        // what counts is the file's directory, not the current one.
        let sub = dir.path().join("conf");
        fs::create_dir(&sub).expect("mkdir");
        let path = write_config(
            &sub,
            "[[plugin]]\nname = \"a\"\ncommand = \"../bin/plug\"\n",
        );
        let cfg = load(&path).expect("valid");
        let command = &cfg.plugins[0].command;
        assert!(command.is_absolute(), "{}", command.display());
        assert_eq!(
            fs::canonicalize(command).expect("exists"),
            fs::canonicalize(dir.path().join("bin/plug")).expect("exists")
        );
    }

    #[test]
    fn bare_command_is_looked_up_on_path() {
        let dir = fixture();
        let cfg = load(write_config(
            dir.path(),
            "[[plugin]]\nname = \"shell\"\ncommand = \"sh\"\n",
        ))
        .expect("sh is on PATH");
        let sh = &cfg.plugins[0].command;
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        // A bare name never means a file next to the config.
        let err = load_err(dir.path(), "[[plugin]]\nname = \"a\"\ncommand = \"data\"\n");
        assert!(err.contains("was not found on PATH"), "{err}");
    }

    #[test]
    fn duplicate_names_name_both_lines() {
        let dir = fixture();
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n\n[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n",
        );
        let path = dir.path().join(CONFIG_FILE_NAME).display().to_string();
        assert_eq!(
            err,
            format!("plugin \"a\" is defined twice: at {path}:2 and at {path}:6")
        );
    }

    #[test]
    fn disabled_plugin_is_left_out() {
        let dir = fixture();
        // Disabled plugins are not resolved: a missing command is no error.
        let cfg = load(write_config(
            dir.path(),
            "[[plugin]]\nname = \"off\"\ncommand = \"./gone\"\nenabled = false\n\n[[plugin]]\nname = \"on\"\ncommand = \"bin/plug\"\nenabled = true\n",
        ))
        .expect("valid");
        let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["on"]);
    }

    #[test]
    fn bad_names_env_and_working_dir() {
        let dir = fixture();
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"Env Injector\"\ncommand = \"bin/plug\"\n",
        );
        assert!(err.ends_with(":2: plugin \"Env Injector\": name \"Env Injector\" is not a valid plugin name (1 to 64 characters of a-z, 0-9, '_', '-', starting with a letter or digit)"), "{err}");
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n[plugin.env]\nOUTBOARD_TOKEN = \"x\"\n",
        );
        assert!(err.ends_with(":5: plugin \"a\": env.OUTBOARD_TOKEN is set by the host for the handshake and cannot be configured"), "{err}");
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nworking_dir = \"data\"\n",
        );
        assert!(
            err.contains(
                ":4: plugin \"a\": working_dir \"data\" is not a directory (resolved to /"
            ),
            "{err}"
        );
        let err = load_err(
            dir.path(),
            "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nconfig = { ratio = nan }\n",
        );
        assert!(
            err.ends_with(":4: plugin \"a\": config.ratio NaN has no JSON form"),
            "{err}"
        );
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(CONFIG_FILE_NAME);
        assert_eq!(
            load(&path).expect_err("missing").to_string(),
            format!("cannot read {}: No such file or directory", path.display())
        );
    }

    /// `root/{one,two}/plugin.toml`, `root/notes/` without one, and a file.
    fn plugin_dir() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        let one = root.path().join("one");
        let two = root.path().join("two");
        fs::create_dir_all(&one).expect("mkdir");
        fs::create_dir_all(&two).expect("mkdir");
        fs::create_dir_all(root.path().join("notes")).expect("mkdir");
        fs::write(root.path().join("README"), "not a plugin").expect("write");
        executable(&one.join("one-bin"));
        fs::write(
            one.join(PLUGIN_FILE_NAME),
            "command = \"one-bin\"\ncall_timeout = \"1s\"\n",
        )
        .expect("write");
        fs::write(
            two.join(PLUGIN_FILE_NAME),
            "name = \"second\"\ncommand = \"sh\"\nargs = [\"plugin.sh\"]\n[config]\nk = \"v\"\n",
        )
        .expect("write");
        root
    }

    #[test]
    fn discover_plugin_folders() {
        let root = plugin_dir();
        let specs = discover(&[root.path().to_owned()]).expect("discovers");
        let names: Vec<&str> = specs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["one", "second"], "name defaults to the folder's");
        let base = std::path::absolute(root.path()).expect("absolute");
        let one = &specs[0];
        assert_eq!(
            one.command,
            base.join("one/one-bin"),
            "bare name found in the folder"
        );
        assert_eq!(one.call_timeout, Duration::from_secs(1));
        assert_eq!(one.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        assert_eq!(one.working_dir.as_deref(), Some(base.join("one").as_path()));
        assert_eq!(one.source, root.path().join("one").join(PLUGIN_FILE_NAME));
        let second = &specs[1];
        assert!(second.command.ends_with("sh") && second.command.is_absolute());
        assert_eq!(second.args, ["plugin.sh"]);
        assert_eq!(Value::Object(second.config.clone()), json!({"k": "v"}));

        let defaults = Defaults {
            handshake_timeout: Duration::from_secs(1),
            ..Defaults::default()
        };
        let twice = [root.path().to_owned(), root.path().join("one/..")];
        let specs = discover_with(&twice, &defaults).expect("one directory, named twice");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].handshake_timeout, Duration::from_secs(1));
    }

    #[test]
    fn discover_rejects_duplicates_across_dirs_and_config() {
        let a = plugin_dir();
        let b = plugin_dir();
        let err = discover(&[a.path().to_owned(), b.path().to_owned()])
            .expect_err("\"one\" twice")
            .to_string();
        assert_eq!(
            err,
            format!(
                "plugin \"one\" is defined twice: at {} and at {}",
                a.path().join("one/plugin.toml").display(),
                b.path().join("one/plugin.toml").display()
            )
        );

        let dir = fixture();
        let path = write_config(
            dir.path(),
            "[[plugin]]\nname = \"second\"\ncommand = \"bin/plug\"\n",
        );
        let mut cfg = load(&path).expect("valid");
        let err = cfg
            .add_plugins(discover(&[a.path().to_owned()]).expect("discovers"))
            .expect_err("\"second\" twice")
            .to_string();
        assert_eq!(
            err,
            format!(
                "plugin \"second\" is defined twice: at {} and at {}",
                path.display(),
                a.path().join("two/plugin.toml").display()
            )
        );
    }

    #[test]
    fn add_plugins_keeps_order() {
        let root = plugin_dir();
        let mut cfg = HostConfig::default();
        cfg.plugins.push(PluginSpec::new("zz", "/bin/sh"));
        cfg.add_plugins(discover(&[root.path().to_owned()]).expect("discovers"))
            .expect("no clash");
        let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["one", "second", "zz"]);
    }

    #[test]
    fn discover_errors() {
        let root = plugin_dir();
        fs::write(
            root.path().join("one").join(PLUGIN_FILE_NAME),
            "comand = \"x\"\n",
        )
        .expect("write");
        let err = discover(&[root.path().to_owned()])
            .expect_err("typo")
            .to_string();
        assert!(
            err.starts_with(&root.path().join("one/plugin.toml").display().to_string()),
            "{err}"
        );
        assert!(err.contains("comand"), "{err}");

        let bad = root.path().join("Bad Name");
        fs::create_dir(&bad).expect("mkdir");
        fs::write(bad.join(PLUGIN_FILE_NAME), "command = \"sh\"\n").expect("write");
        fs::write(
            root.path().join("one").join(PLUGIN_FILE_NAME),
            "command = \"sh\"\n",
        )
        .expect("write");
        let err = discover(&[root.path().to_owned()])
            .expect_err("folder name")
            .to_string();
        assert!(err.contains("plugin \"Bad Name\": name defaults to the folder's name, but \"Bad Name\" is not a valid plugin name"), "{err}");

        let missing = root.path().join("missing");
        assert_eq!(
            discover(std::slice::from_ref(&missing))
                .expect_err("missing")
                .to_string(),
            format!(
                "cannot read plugin directory {}: No such file or directory",
                missing.display()
            )
        );
    }

    #[test]
    fn spec_from_command_line() {
        let argv = ["sh".to_owned(), "-c".to_owned(), "exit 0".to_owned()];
        let spec = spec_for_command(&argv).expect("sh is on PATH");
        assert_eq!(spec.name, "sh");
        assert!(spec.command.is_absolute());
        assert_eq!(spec.args, ["-c", "exit 0"]);
        assert_eq!(spec.source, Path::new(COMMAND_LINE_SOURCE));
        let err = spec_for_command(&["./no/such/plugin".to_owned()]).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("command \"./no/such/plugin\" does not exist (resolved to /"),
            "{err}"
        );
        assert!(spec_for_command(&[]).is_err());
        assert_eq!(name_from("My Plugin.py"), "my-plugin-py");
        assert_eq!(name_from("__x"), "x");
        assert_eq!(name_from("..."), "plugin");
    }

    #[test]
    fn plugin_dir_list() {
        assert_eq!(
            split_dirs(OsStr::new("/a::/b/c:")),
            [PathBuf::from("/a"), PathBuf::from("/b/c")]
        );
        assert!(split_dirs(OsStr::new("")).is_empty());
    }
}
