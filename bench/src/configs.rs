//! The config files the daemon items run `outboard` with: the example
//! config, moved to the harness's build and scratch directory, and `N`
//! no-op plugins.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use toml::{Table, Value};

use crate::procs::Paths;

/// The example config, as the harness writes it.
#[derive(Debug)]
pub(crate) struct Examples {
    /// The config file.
    pub config: PathBuf,
    /// The plugins in it.
    pub plugins: usize,
    /// The example plugins left out because they are not built, with the
    /// command that was missing.
    pub missing: Vec<String>,
}

/// Writes `examples/outboard.toml` to `dir/examples.toml`, changed so that
/// it runs what this harness built and writes nothing outside `dir`: a
/// command built by cargo (`../target/debug/NAME`) is the harness's
/// sibling of the same profile, every other relative command is resolved
/// against `examples/`, and a working directory is `dir/work` (where the
/// plugins that write files write into `examples/out/`). A plugin whose
/// command does not exist (no Go, no Python tools) is left out and named.
pub(crate) fn examples(paths: &Paths, dir: &Path) -> anyhow::Result<Examples> {
    let source = paths.root.join("examples/outboard.toml");
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("reading {}", source.display()))?;
    let mut table: Table = text
        .parse()
        .with_context(|| format!("parsing {}", source.display()))?;
    let work = dir.join("work");
    let out = work.join("examples/out");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let Some(Value::Array(plugins)) = table.remove("plugin") else {
        bail!("{} has no [[plugin]] tables", source.display());
    };
    let mut kept = Vec::new();
    let mut missing = Vec::new();
    let mut enabled = 0;
    for plugin in plugins {
        let Value::Table(mut plugin) = plugin else {
            bail!("{}: a [[plugin]] is not a table", source.display());
        };
        let name = plugin.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some(command) = plugin.get("command").and_then(Value::as_str) else {
            bail!("{}: plugin {name} has no command", source.display());
        };
        let command = moved_command(paths, command);
        if !command.exists() {
            missing.push(format!("{name} ({})", command.display()));
            continue;
        }
        plugin.insert("command".into(), path_value(&command)?);
        if plugin.contains_key("working_dir") {
            plugin.insert("working_dir".into(), path_value(&work)?);
        }
        if plugin.get("enabled").and_then(Value::as_bool) != Some(false) {
            enabled += 1;
        }
        kept.push(Value::Table(plugin));
    }
    table.insert("plugin".into(), Value::Array(kept));
    anchor_secret_files(&mut table, &paths.root.join("examples"))?;
    let config = dir.join("examples.toml");
    write(&config, &table)?;
    Ok(Examples {
        config,
        plugins: enabled,
        missing,
    })
}

/// Makes each `[secrets.NAME] file` that is relative to the example
/// config absolute, since the config is rewritten elsewhere.
fn anchor_secret_files(table: &mut Table, examples: &Path) -> anyhow::Result<()> {
    let Some(Value::Table(secrets)) = table.get_mut("secrets") else {
        return Ok(());
    };
    for (_, secret) in secrets.iter_mut() {
        let Value::Table(secret) = secret else {
            continue;
        };
        if let Some(file) = secret.get("file").and_then(Value::as_str) {
            let file = examples.join(file);
            secret.insert("file".into(), path_value(&file)?);
        }
    }
    Ok(())
}

/// Writes a config of `count` instances of `bench-noop`, each subscribed
/// to `phase`, to `dir/NAME.toml`.
pub(crate) fn noops(
    paths: &Paths,
    dir: &Path,
    name: &str,
    count: usize,
    phase: &str,
) -> anyhow::Result<PathBuf> {
    let noop = path_value(&paths.bin("bench-noop"))?;
    let plugins = (0..count)
        .map(|i| {
            let mut plugin = Table::new();
            plugin.insert("name".into(), Value::String(format!("noop-{i:03}")));
            plugin.insert("command".into(), noop.clone());
            plugin.insert(
                "args".into(),
                Value::Array(vec![Value::String(phase.to_owned())]),
            );
            Value::Table(plugin)
        })
        .collect();
    let mut table = Table::new();
    table.insert("plugin".into(), Value::Array(plugins));
    let config = dir.join(format!("{name}.toml"));
    write(&config, &table)?;
    Ok(config)
}

/// Where the harness's build keeps what the example config runs.
fn moved_command(paths: &Paths, command: &str) -> PathBuf {
    let command = Path::new(command);
    if let Ok(built) = command.strip_prefix("../target/debug") {
        return paths.bin_dir.join(built);
    }
    normalize(&paths.root.join("examples").join(command))
}

/// `path` without `.` and `..` components (the example's commands climb
/// out of `examples/`), so that the config names each file plainly.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn path_value(path: &Path) -> anyhow::Result<Value> {
    path.to_str()
        .map(|p| Value::String(p.to_owned()))
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn write(path: &Path, table: &Table) -> anyhow::Result<()> {
    let text = toml::to_string(table).context("writing a config as TOML")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An empty file the config loader takes for a program.
    fn program(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, "").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn paths(bin_dir: &Path) -> Paths {
        Paths {
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_owned)
                .unwrap_or_default(),
            bin_dir: bin_dir.to_owned(),
        }
    }

    #[test]
    fn the_example_config_runs_the_harness_build_and_writes_only_in_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).unwrap();
        // Two of the cargo-built examples "built"; the others are missing.
        for name in ["policy-gate", "audit-log"] {
            program(&bin_dir.join(name));
        }
        let examples = examples(&paths(&bin_dir), dir.path()).unwrap();
        let config = outboard_host::config::load(&examples.config).unwrap();
        let names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"policy-gate") && names.contains(&"audit-log"));
        assert_eq!(examples.plugins, config.plugins.len());
        assert_eq!(examples.plugins + examples.missing.len(), 12);
        for plugin in &config.plugins {
            let under = |p: &Path| p.starts_with(&bin_dir) || p.starts_with(&paths(&bin_dir).root);
            assert!(under(&plugin.command), "{}", plugin.command.display());
            assert!(
                !plugin
                    .command
                    .components()
                    .any(|c| c == Component::ParentDir)
            );
        }
        let audit = config
            .plugins
            .iter()
            .find(|p| p.name == "audit-log")
            .unwrap();
        assert_eq!(
            audit.working_dir.as_deref(),
            Some(dir.path().join("work").as_path())
        );
        assert!(dir.path().join("work/examples/out").is_dir());
        assert!(
            examples
                .missing
                .iter()
                .any(|m| m.starts_with("env-injector ("))
        );
        // The phases and defaults come along.
        assert!(config.phases.contains_key("submit"));
    }

    #[test]
    fn noops_is_that_many_no_op_plugins_on_one_phase() {
        let dir = tempfile::tempdir().unwrap();
        program(&dir.path().join("bench-noop"));
        let config = noops(&paths(dir.path()), dir.path(), "many", 3, "bench").unwrap();
        let config = outboard_host::config::load(config).unwrap();
        assert_eq!(config.plugins.len(), 3);
        for plugin in &config.plugins {
            assert_eq!(plugin.command, dir.path().join("bench-noop"));
            assert_eq!(plugin.args, ["bench"]);
        }
    }
}
