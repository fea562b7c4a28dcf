//! A `[plugin.sandbox]` or `[defaults.sandbox]` table, resolved: each key
//! the table sets replaces the fallback's (for a plugin, the defaults'),
//! `filesystem` as a whole.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::source::Scope;
use crate::config::error::ConfigError;
use crate::config::limits;
use crate::config::sandbox::{self, FilesystemSpec, Network, SandboxSpec};

/// The `sandbox` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SandboxToml {
    memory: Option<Spanned<String>>,
    cpu: Option<Spanned<Cores>>,
    pids: Option<Spanned<u32>>,
    open_files: Option<Spanned<u32>>,
    core_dumps: Option<bool>,
    network: Option<Network>,
    filesystem: Option<Spanned<FilesystemToml>>,
    best_effort: Option<bool>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
}

/// `cpu = 1` or `cpu = 0.5`: TOML tells integers from floats.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Cores {
    Whole(i64),
    Fraction(f64),
}

/// `filesystem = { read = [...], write = [...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesystemToml {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

impl SandboxToml {
    /// The sandbox: this table's keys over `fallback`'s; relative paths are
    /// relative to `base`.
    pub(super) fn resolve(
        &self,
        fallback: &SandboxSpec,
        base: &Path,
        scope: &Scope<'_>,
    ) -> Result<SandboxSpec, ConfigError> {
        let mut spec = fallback.clone();
        if let Some(memory) = &self.memory {
            spec.memory = Some(
                sandbox::parse_size(memory.get_ref())
                    .map_err(|why| scope.invalid(Some(memory.span()), "sandbox.memory", why))?,
            );
        }
        if let Some(cpu) = &self.cpu {
            let cores = match *cpu.get_ref() {
                Cores::Whole(n) => n as f64,
                Cores::Fraction(f) => f,
            };
            spec.cpu_millis = Some(
                sandbox::cpu_millis(cores)
                    .map_err(|why| scope.invalid(Some(cpu.span()), "sandbox.cpu", why))?,
            );
        }
        if self.pids.is_some() {
            spec.pids = Some(scope.count("sandbox.pids", &self.pids, 0, limits::SANDBOX_PIDS)?);
        }
        if self.open_files.is_some() {
            spec.open_files = Some(scope.count(
                "sandbox.open_files",
                &self.open_files,
                0,
                limits::SANDBOX_OPEN_FILES,
            )?);
        }
        spec.core_dumps = self.core_dumps.or(spec.core_dumps);
        spec.network = self.network.unwrap_or(spec.network);
        if let Some(fs) = &self.filesystem {
            spec.filesystem = Some(fs.get_ref().resolve(base, fs.span(), scope)?);
        }
        spec.best_effort = self.best_effort.unwrap_or(spec.best_effort);
        if let Some(user) = &self.user {
            spec.user = Some(account(user, "sandbox.user", scope)?);
        }
        if let Some(group) = &self.group {
            spec.group = Some(account(group, "sandbox.group", scope)?);
        }
        Ok(spec)
    }
}

impl FilesystemToml {
    /// The lists as absolute paths; none empty or holding a NUL.
    fn resolve(
        &self,
        base: &Path,
        span: std::ops::Range<usize>,
        scope: &Scope<'_>,
    ) -> Result<FilesystemSpec, ConfigError> {
        let paths = |list: &[String], key: &str| -> Result<Vec<PathBuf>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, path)| {
                    if path.trim().is_empty() || path.contains('\0') {
                        return Err(scope.invalid(
                            Some(span.clone()),
                            &format!("sandbox.filesystem.{key}[{i}]"),
                            "is empty or holds a NUL: name a file or directory".into(),
                        ));
                    }
                    Ok(base.join(path))
                })
                .collect()
        };
        Ok(FilesystemSpec {
            read: paths(&self.read, "read")?,
            write: paths(&self.write, "write")?,
        })
    }
}

/// A user or group: a name or a number, neither empty nor holding a NUL
/// or a colon (which no account name may). Looked up at launch, where the
/// host also checks that it runs as root.
fn account(value: &Spanned<String>, field: &str, scope: &Scope<'_>) -> Result<String, ConfigError> {
    let name = value.get_ref().trim();
    if name.is_empty() || name.contains(['\0', ':']) {
        return Err(scope.invalid(
            Some(value.span()),
            field,
            format!("{name:?} is not an account name or number"),
        ));
    }
    Ok(name.to_owned())
}
