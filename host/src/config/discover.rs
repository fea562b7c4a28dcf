//! Plugin directories: one folder per plugin, each with a `plugin.toml`,
//! named by `--plugin-dir` or `OUTBOARD_PLUGIN_DIR`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Location};
use super::schema::{PLUGIN_FILE_NAME, load_plugin_file};
use super::spec::{Defaults, HostConfig, PluginSpec};

/// Environment variable listing plugin directories, separated by `:`.
pub const ENV_PLUGIN_DIR: &str = "OUTBOARD_PLUGIN_DIR";

/// The plugins in `dirs` (see the module docs), with built-in defaults.
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<PluginSpec>, ConfigError> {
    discover_with(dirs, &Defaults::default())
}

/// The plugins in `dirs`, filling in what their `plugin.toml` leaves out
/// from `defaults` (typically `outboard.toml`'s). Sorted by name; a name
/// found twice is an error naming both files.
pub fn discover_with(
    dirs: &[PathBuf],
    defaults: &Defaults,
) -> Result<Vec<PluginSpec>, ConfigError> {
    let mut found: Vec<PluginSpec> = Vec::new();
    // Name → index in `found`: a lookup per folder, not a scan.
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut seen_dirs = Vec::new();
    for dir in dirs {
        // The same directory named twice (say by --plugin-dir and by
        // OUTBOARD_PLUGIN_DIR) is one directory, not a set of duplicates.
        let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        if seen_dirs.contains(&canonical) {
            continue;
        }
        seen_dirs.push(canonical);
        let read_dir_error = |error| ConfigError::ReadDir {
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
            // Only a plugin.toml that is not there means "not a plugin"; one
            // that is there but cannot be read (a FIFO, a device, no
            // permission) is an error from load_plugin_file, never a plugin
            // silently left out.
            if let Err(e) = fs::symlink_metadata(&file)
                && e.kind() == io::ErrorKind::NotFound
            {
                tracing::debug!(folder = %folder.display(), "no {PLUGIN_FILE_NAME}, not a plugin");
                continue;
            }
            let Some(spec) = load_plugin_file(&file, &folder, defaults)? else {
                tracing::debug!(file = %file.display(), "plugin disabled");
                continue;
            };
            if let Some(&other) = names.get(&spec.name) {
                return Err(defined_twice(&found[other], spec));
            }
            names.insert(spec.name.clone(), found.len());
            found.push(spec);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The one plugin folder `folder` (its `plugin.toml`), with built-in
/// defaults; `None` if the file disables it. Used by package builds and
/// installs, which handle a single folder rather than a plugin directory.
pub fn load_plugin_folder(folder: &Path) -> Result<Option<PluginSpec>, ConfigError> {
    load_plugin_file(&folder.join(PLUGIN_FILE_NAME), folder, &Defaults::default())
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

impl HostConfig {
    /// Adds plugins found elsewhere (plugin directories); a name already
    /// taken is an error naming both sources. Keeps the list sorted.
    pub fn add_plugins(&mut self, more: Vec<PluginSpec>) -> Result<(), ConfigError> {
        // Name → index: a lookup per added plugin, not a scan.
        let mut names: HashMap<String, usize> = (self.plugins.iter().enumerate())
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        for spec in more {
            if let Some(&i) = names.get(&spec.name) {
                return Err(defined_twice(&self.plugins[i], spec));
            }
            names.insert(spec.name.clone(), self.plugins.len());
            self.plugins.push(spec);
        }
        self.plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }
}

/// `second` has the name `first` has, naming the files of both.
fn defined_twice(first: &PluginSpec, second: PluginSpec) -> ConfigError {
    ConfigError::Duplicate {
        first: Location::file(&first.source),
        second: Location::file(&second.source),
        name: second.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_dir_list() {
        assert_eq!(
            split_dirs(OsStr::new("/a::/b/c:")),
            [PathBuf::from("/a"), PathBuf::from("/b/c")]
        );
        assert!(split_dirs(OsStr::new("")).is_empty());
    }
}
