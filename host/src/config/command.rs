//! Command resolution: a plugin's `command` as an absolute path to an
//! executable, or why it is not one; and a plugin given as a command line.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use outboard_proto::names::MAX_NAME_LEN;

use super::error::{ConfigError, io_reason};
use super::spec::PluginSpec;

/// A spec for a plugin given as a command line (`outboard describe -- CMD
/// ARGS...`): the command resolves like a config's `command`, relative to
/// the current directory, and the name is the executable's file name made
/// into a valid plugin name. Built-in defaults; no config.
pub fn spec_for_command(argv: &[String]) -> Result<PluginSpec, ConfigError> {
    let Some((command, args)) = argv.split_first() else {
        return Err(ConfigError::Command {
            command: String::new(),
            why: "is empty: give the plugin's executable".into(),
        });
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path = resolve_command(command, &cwd, false).map_err(|why| ConfigError::Command {
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

/// Resolves `command` to an absolute path to an executable file, or says why
/// it cannot (the caller prefixes the quoted command).
pub(super) fn resolve_command(
    command: &str,
    base: &Path,
    bare_in_base: bool,
) -> Result<PathBuf, String> {
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

/// Whether `path` is an executable file, or why not.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
