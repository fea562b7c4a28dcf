//! A whole file: `outboard.toml` with its `[defaults]`, `[phases.NAME]` and
//! `[[plugin]]` tables, or a plugin directory's `plugin.toml`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use outboard_proto::names::{invalid_phase_name, is_valid_phase_name};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::lines::LineIndex;
use super::source::{Scope, Source};
use super::{DaemonToml, DefaultsToml, EventsToml, FileToml, HttpToml, PhaseToml, PluginToml};
use crate::config::error::{ConfigError, Location, Subject};
use crate::config::limits::{self, MAX_CONFIG_FILE_BYTES};
use crate::config::phase::{PhaseSpec, job_profile};
use crate::config::spec::{DaemonSpec, Defaults, EventsSpec, HostConfig, HttpSpec, PluginSpec};
use crate::config::value::DurationText;

/// The host's config file name.
pub const CONFIG_FILE_NAME: &str = "outboard.toml";
/// The file that makes a folder in a plugin directory a plugin.
pub const PLUGIN_FILE_NAME: &str = "plugin.toml";
/// The manifest `outboard install` leaves in a plugin folder it installed
/// (every file's SHA-256, the plugin's name and version).
pub const PACKAGE_MANIFEST_FILE: &str = "outboard-package.toml";

/// Reads and resolves an `outboard.toml`. Relative paths in it are relative
/// to the directory the file really is in: through a symlink, the target's.
pub fn load(path: impl AsRef<Path>) -> Result<HostConfig, ConfigError> {
    let path = path.as_ref();
    let text = read(path)?;
    // The file was just read, so it resolves; the fallback is for a file
    // removed in between, which then anchors where it was named.
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    HostConfig::parse_in(&text, path, real.parent().unwrap_or(Path::new("")))
}

impl HostConfig {
    /// Parses `text` as if read from `path`: `path` names the file in errors
    /// and its directory anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<HostConfig, ConfigError> {
        HostConfig::parse_in(text, path, path.parent().unwrap_or(Path::new("")))
    }

    /// Parses `text` read from `path`, relative paths relative to `base`.
    fn parse_in(text: &str, path: &Path, base: &Path) -> Result<HostConfig, ConfigError> {
        let file: FileToml = from_toml(text, path)?;
        let src = Source::new(path, text, base);
        let defaults = file.defaults.resolve(&src)?;
        let mut phases = BTreeMap::new();
        for (name, phase) in file.phases {
            let spec = phase.resolve(&name, &src)?;
            phases.insert(name.into_inner(), spec);
        }
        let plugins = plugins(file.plugin, &src, &defaults)?;
        let daemon = file.daemon.resolve(&src)?;
        let http = file.http.resolve(&src)?;
        let mut secrets = BTreeMap::new();
        for (name, table) in &file.secrets {
            let spec = table.get_ref().resolve(name.get_ref(), name.span(), &src)?;
            secrets.insert(name.get_ref().clone(), spec);
        }
        let state = file.state.resolve(&src)?;
        let services = file.services.resolve(&src)?;
        let events = file.events.resolve(&src)?;
        Ok(HostConfig {
            plugins,
            defaults,
            phases,
            daemon,
            http,
            secrets,
            state,
            services,
            events,
        })
    }
}

/// The enabled `[[plugin]]` tables' specs, sorted by name; a name given
/// twice is an error naming both lines.
fn plugins(
    tables: Vec<Spanned<PluginToml>>,
    src: &Source<'_>,
    defaults: &Defaults,
) -> Result<Vec<PluginSpec>, ConfigError> {
    let mut plugins = Vec::new();
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    for (i, table) in tables.into_iter().enumerate() {
        let span = table.span();
        let table = table.into_inner();
        let Some(name) = &table.name else {
            return Err(src.scope(Subject::PluginAt(i + 1)).invalid(
                Some(span),
                "name",
                "is missing (every [[plugin]] needs a name)".into(),
            ));
        };
        let name_at = src.location(name.span());
        let name = name.get_ref().clone();
        let Some(spec) = table.resolve(name, src, defaults, None)? else {
            continue;
        };
        if let Some(first) = seen.insert(spec.name.clone(), name_at.clone()) {
            return Err(ConfigError::Duplicate {
                name: spec.name,
                first,
                second: name_at,
            });
        }
        plugins.push(spec);
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

/// Reads and resolves the `plugin.toml` of a plugin directory's `folder`,
/// filling in what it leaves out from `defaults`; `None` if it is disabled.
pub(in crate::config) fn load_plugin_file(
    file: &Path,
    folder: &Path,
    defaults: &Defaults,
) -> Result<Option<PluginSpec>, ConfigError> {
    // The package's digest before plugin.toml: with an install swapping
    // the folder meanwhile, the spec pairs an older digest with a newer
    // plugin.toml (the next reload replaces the plugin once more), never
    // a newer digest with the older plugin.toml.
    let package = package_digest(folder)?;
    let text = read(file)?;
    let table: PluginToml = from_toml(&text, file)?;
    let src = Source::new(file, &text, folder);
    let name = match &table.name {
        Some(name) => name.get_ref().clone(),
        None => match folder.file_name().and_then(OsStr::to_str) {
            Some(n) => n.to_owned(),
            None => {
                return Err(src.scope(Subject::UnnamedPlugin).invalid(
                    None,
                    "name",
                    format!(
                        "is missing and the folder name {:?} is not UTF-8",
                        folder.file_name().unwrap_or_default()
                    ),
                ));
            }
        },
    };
    let Some(mut spec) = table.resolve(name, &src, defaults, Some(folder))? else {
        return Ok(None);
    };
    spec.package = package;
    Ok(Some(spec))
}

/// The SHA-256 of the package manifest in `folder`, if a package installed
/// it. The manifest lists every file's checksum and install checked them,
/// so a new version installed gives a new digest, and a reload replaces
/// the plugin even though its `plugin.toml` did not change.
fn package_digest(folder: &Path) -> Result<Option<String>, ConfigError> {
    let file = folder.join(PACKAGE_MANIFEST_FILE);
    match fs::symlink_metadata(&file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Anything else there (unreadable, not a file, too large) is the
        // error `read` names, never a package silently ignored.
        _ => Ok(Some(hex::encode(Sha256::digest(read(&file)?)))),
    }
}

/// The text of a config file. Only a regular file of at most
/// [`MAX_CONFIG_FILE_BYTES`] is read: it is opened without blocking, so a
/// FIFO cannot hang the host, and checked before a byte is read, so a
/// device cannot feed it forever.
fn read(path: &Path) -> Result<String, ConfigError> {
    let io_error = |error| ConfigError::Read {
        path: path.to_owned(),
        error,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile {
            path: path.to_owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    let too_large = || ConfigError::TooLarge {
        path: path.to_owned(),
        limit: MAX_CONFIG_FILE_BYTES,
    };
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(too_large());
    }
    // The file may grow between the check and the read: read one byte past
    // the limit to notice.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

/// What a file that is not a regular file is, for the error.
fn file_kind(kind: &fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// `text` in the shape of `T`; the error names the line and the column.
fn from_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| LineIndex::new(text).line_column(text, span.start));
        ConfigError::Toml {
            path: path.to_owned(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            message: match e.span().and_then(|span| key_before(text, span.start)) {
                Some(key) => format!("{}: {}", key.escape_debug(), e.message().trim_end()),
                None => e.message().trim_end().to_owned(),
            },
        }
    })
}

/// The key of a `key = value` whose value starts at `offset`, read from the
/// text before it: toml's message does not name the key, and the line it
/// would quote instead may hold a secret.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let key = line.trim_end().strip_suffix('=')?.trim_end();
    let key = key.rsplit([' ', '\t', '{', ',']).next()?;
    (!key.is_empty()).then_some(key)
}

impl DefaultsToml {
    fn resolve(&self, src: &Source<'_>) -> Result<Defaults, ConfigError> {
        let scope = src.scope(Subject::Defaults);
        let mut defaults = timeouts(
            [
                &self.handshake_timeout,
                &self.call_timeout,
                &self.stop_grace,
            ],
            &Defaults::default(),
            &scope,
        )?;
        if let Some(sandbox) = &self.sandbox {
            defaults.sandbox = sandbox.resolve(&defaults.sandbox, &src.base_dir(), &scope)?;
        }
        Ok(defaults)
    }
}

/// The handshake timeout, call timeout and stop grace as written, in that
/// order, each `fallback`'s when left out, each within its bounds.
pub(super) fn timeouts(
    [handshake, call, stop]: [&Option<Spanned<DurationText>>; 3],
    fallback: &Defaults,
    scope: &Scope<'_>,
) -> Result<Defaults, ConfigError> {
    Ok(Defaults {
        handshake_timeout: scope.duration(
            "handshake_timeout",
            handshake,
            fallback.handshake_timeout,
            limits::TIMEOUT,
        )?,
        call_timeout: scope.duration(
            "call_timeout",
            call,
            fallback.call_timeout,
            limits::TIMEOUT,
        )?,
        stop_grace: scope.duration("stop_grace", stop, fallback.stop_grace, limits::STOP_GRACE)?,
        sandbox: fallback.sandbox.clone(),
    })
}

impl DaemonToml {
    fn resolve(&self, src: &Source<'_>) -> Result<DaemonSpec, ConfigError> {
        let scope = src.scope(Subject::Daemon);
        let control_group = match &self.control_group {
            Some(group) if group.get_ref().trim().is_empty() => {
                return Err(scope.invalid(
                    Some(group.span()),
                    "control_group",
                    "is empty: name a group, or leave the key out".into(),
                ));
            }
            Some(group) => Some(group.get_ref().clone()),
            None => None,
        };
        Ok(DaemonSpec {
            control_group,
            drain_timeout: scope.duration(
                "drain_timeout",
                &self.drain_timeout,
                DaemonSpec::default().drain_timeout,
                limits::DRAIN_TIMEOUT,
            )?,
        })
    }
}

impl HttpToml {
    fn resolve(&self, src: &Source<'_>) -> Result<HttpSpec, ConfigError> {
        let Some(listen) = &self.listen else {
            return Ok(HttpSpec::default());
        };
        match listen.get_ref().trim().parse() {
            Ok(addr) => Ok(HttpSpec { listen: Some(addr) }),
            Err(_) => Err(src.scope(Subject::Http).invalid(
                Some(listen.span()),
                "listen",
                format!(
                    "{:?} is not an IP address and a port: write e.g. \"127.0.0.1:9464\" \
                     (\"[::1]:9464\" for IPv6; port 0 picks a free one), or leave the key \
                     out for no listener",
                    listen.get_ref()
                ),
            )),
        }
    }
}

impl EventsToml {
    fn resolve(&self, src: &Source<'_>) -> Result<EventsSpec, ConfigError> {
        let scope = src.scope(Subject::Events);
        let d = EventsSpec::default();
        let backoff_initial = scope.duration(
            "backoff_initial",
            &self.backoff_initial,
            d.backoff_initial,
            limits::EVENT_BACKOFF,
        )?;
        let spec = EventsSpec {
            max_attempts: scope.count(
                "max_attempts",
                &self.max_attempts,
                d.max_attempts,
                limits::EVENT_ATTEMPTS,
            )?,
            backoff_initial,
            // Unset, it is at least the given initial wait: a long
            // `backoff_initial` alone is not an error about a key never set.
            backoff_max: scope.duration(
                "backoff_max",
                &self.backoff_max,
                d.backoff_max.max(backoff_initial),
                limits::EVENT_BACKOFF,
            )?,
            retention: scope.duration(
                "retention",
                &self.retention,
                d.retention,
                limits::EVENT_RETENTION,
            )?,
            dead_retention: scope.duration(
                "dead_retention",
                &self.dead_retention,
                d.dead_retention,
                limits::EVENT_RETENTION,
            )?,
        };
        if spec.backoff_max < spec.backoff_initial {
            let span = self.backoff_max.as_ref().or(self.backoff_initial.as_ref());
            return Err(scope.invalid(
                span.map(Spanned::span),
                "backoff_max",
                format!(
                    "{} is shorter than backoff_initial ({}): make it at least as long",
                    humantime::format_duration(spec.backoff_max),
                    humantime::format_duration(spec.backoff_initial)
                ),
            ));
        }
        Ok(spec)
    }
}

impl PhaseToml {
    fn resolve(self, name: &Spanned<String>, src: &Source<'_>) -> Result<PhaseSpec, ConfigError> {
        let scope = src.scope(Subject::Phase(name.get_ref().clone()));
        if !is_valid_phase_name(name.get_ref()) {
            return Err(scope.invalid(
                Some(name.span()),
                "name",
                invalid_phase_name(name.get_ref()),
            ));
        }
        let timeout = scope.optional_duration("timeout", &self.timeout, limits::TIMEOUT)?;
        // A key left out keeps the phase's default: the job profile's for its
        // phases, sequential and fail-closed for others.
        let base = job_profile()
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
