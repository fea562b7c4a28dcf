//! Why the host's configuration could not be loaded, and where.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where something was declared: a file and, when known, a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was named to the host.
    pub path: PathBuf,
    /// 1-based line in it.
    pub line: Option<usize>,
}

impl Location {
    /// The whole file, no line.
    pub(super) fn file(path: &Path) -> Location {
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

/// What a rejected value belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A plugin, by the name it has or would have: `plugin "name"`.
    Plugin(String),
    /// A `[[plugin]]` table without a name, by its place from 1:
    /// `plugin #2`.
    PluginAt(usize),
    /// A `plugin.toml` whose name cannot be told: `plugin`.
    UnnamedPlugin,
    /// The `[defaults]` section: `defaults`.
    Defaults,
    /// A `[phases.NAME]` section: `phase "name"`.
    Phase(String),
    /// The `[daemon]` section: `daemon`.
    Daemon,
    /// The `[http]` section: `http`.
    Http,
    /// The `[state]` section: `state`.
    State,
    /// The `[services]` section: `services`.
    Services,
    /// The `[events]` section: `events`.
    Events,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Plugin(name) => write!(f, "plugin {name:?}"),
            Subject::PluginAt(n) => write!(f, "plugin #{n}"),
            Subject::UnnamedPlugin => f.write_str("plugin"),
            Subject::Defaults => f.write_str("defaults"),
            Subject::Phase(name) => write!(f, "phase {name:?}"),
            Subject::Daemon => f.write_str("daemon"),
            Subject::Http => f.write_str("http"),
            Subject::State => f.write_str("state"),
            Subject::Services => f.write_str("services"),
            Subject::Events => f.write_str("events"),
        }
    }
}

/// Why the host's configuration could not be loaded. Every message names the
/// file and, for a value, the field, the line and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file could not be read.
    #[error("cannot read {}: {}", path.display(), io_reason(error))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: io::Error,
    },
    /// A config file is not a regular file (a FIFO, a device, a
    /// directory...).
    #[error("cannot read {}: it is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is instead, e.g. `a FIFO`.
        kind: &'static str,
    },
    /// A config file is larger than any config needs to be.
    #[error("cannot read {}: it is larger than {} MiB, the most a config file may hold", path.display(), limit >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// A plugin directory could not be listed.
    #[error("cannot read plugin directory {}: {}", path.display(), io_reason(error))]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why it could not be listed.
        error: io::Error,
    },
    /// Not TOML, or not the expected shape: `FILE:LINE:COLUMN: message`,
    /// toml's message without its quote of the line, which could hold a
    /// secret (an `env` value on the same line).
    #[error("{}{}: {message}", path.display(), position(*line, *column))]
    Toml {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem, when toml tells.
        line: Option<usize>,
        /// 1-based column (in characters) of the problem, when toml tells.
        column: Option<usize>,
        /// toml's message, e.g. "unknown field `comand`, expected one of ...".
        message: String,
    },
    /// A value that parsed but cannot be used.
    #[error("{at}: {subject}: {field} {why}")]
    Invalid {
        /// The file and line of the value (or of its table).
        at: Location,
        /// The plugin, phase or section it belongs to.
        subject: Subject,
        /// The key, e.g. `command` or `env.PATH`.
        field: String,
        /// What is wrong, quoting the value.
        why: String,
    },
    /// A plugin given as a command line cannot be run.
    #[error("command {command:?} {why}")]
    Command {
        /// The command as given.
        command: String,
        /// Why it cannot be run.
        why: String,
    },
    /// Two plugins with one name.
    #[error("plugin {name:?} is defined twice: at {first} and at {second}")]
    Duplicate {
        /// The name.
        name: String,
        /// Where it was declared first.
        first: Location,
        /// Where it was declared again.
        second: Location,
    },
}

/// `:LINE:COLUMN` (or `:LINE`), or nothing.
fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// An I/O error's message without the "(os error N)" suffix.
pub(super) fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}
