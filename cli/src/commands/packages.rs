//! The package commands: `keygen`, `package`, `install`, `uninstall`,
//! `plugins`. The work is outboard-packages'; this file picks the paths
//! and keys from the flags and says what happened.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use outboard_host::config::{CONFIG_FILE_NAME, dirs_from_env};
use outboard_packages::{
    InstallOptions, Installed, PackageMeta, SigningKey, TrustedKey, describe_folder,
    generate_key_pair, install, installed, pack, package_file_name, trusted_keys_in_config,
    uninstall,
};

use super::unless_interrupted;
use crate::args::{InstallArgs, InstallPlace, KeygenArgs, PackageArgs, PluginsArgs, UninstallArgs};
use crate::exit::EXIT_INTERRUPTED;
use crate::render::packages::{InstalledRow, table};

/// `outboard keygen`.
pub(crate) fn keygen(args: KeygenArgs) -> anyhow::Result<u8> {
    let pair = generate_key_pair(&args.out)?;
    let public = std::fs::read_to_string(&pair.public)
        .with_context(|| format!("cannot read {}", pair.public.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "key id {}", pair.key_id)?;
    writeln!(
        out,
        "secret key {} (mode 0600: keep it private)",
        pair.secret.display()
    )?;
    writeln!(out, "public key {}:", pair.public.display())?;
    write!(out, "{public}")?;
    Ok(0)
}

/// `outboard package`.
pub(crate) async fn package(
    args: PackageArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    // The key first: a bad key fails before the plugin is started.
    let key = args
        .sign
        .as_deref()
        .map(SigningKey::from_file)
        .transpose()?;
    let Some(described) = unless_interrupted(describe_folder(&args.dir), shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let described = described?;
    let meta = PackageMeta {
        name: described.name,
        version: described.version,
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(package_file_name(&meta)));
    let manifest = pack(&args.dir, &meta, key.as_ref(), &out)?;
    let signed = match &key {
        Some(key) => format!("signed by key {}", key.key_id()),
        None => "unsigned".to_owned(),
    };
    writeln!(
        std::io::stdout().lock(),
        "{}: {} {}, {} files, {signed}",
        out.display(),
        manifest.name,
        manifest.version,
        manifest.files.len()
    )?;
    Ok(0)
}

/// `outboard install`.
pub(crate) async fn install_package(
    args: InstallArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let plugin_dir = plugin_dir(&args.place)?;
    let mut trusted = match config_file(args.config.as_deref())? {
        Some(file) => trusted_keys_in_config(&file)?,
        None => Vec::new(),
    };
    for key in &args.trust {
        trusted.push(TrustedKey::parse(key)?);
    }
    let options = InstallOptions {
        plugin_dir,
        trusted,
        allow_unsigned: args.allow_unsigned,
        probe_user: Some(args.probe_user.clone()),
        accept_config: args.accept_config,
    };
    let Some(done) = unless_interrupted(install(&args.package, &options), shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let done = done.with_context(|| format!("{} not installed", args.package.display()))?;
    let replaced = match &done.replaced {
        Some(old) => format!(", replacing {old}"),
        None => String::new(),
    };
    writeln!(
        std::io::stdout().lock(),
        "installed {} {} ({}) in {}{replaced}",
        done.name,
        done.version,
        signer(&done),
        done.path.display()
    )?;
    print_asks(&done)?;
    Ok(0)
}

/// What the installed plugin's `plugin.toml` asks beyond its code, for
/// the operator to review.
fn print_asks(done: &Installed) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let file = done
        .path
        .join(outboard_host::config::PLUGIN_FILE_NAME)
        .display()
        .to_string();
    if done.asks.is_empty() {
        writeln!(out, "{file} sets no command, grant, env or sandbox keys")?;
        return Ok(());
    }
    writeln!(out, "{file} sets:")?;
    for ask in &done.asks {
        // The package chose these values: nothing of them reaches the
        // terminal as a control character.
        writeln!(out, "  {}", outboard_host::Escaped::line(&ask.describe()))?;
    }
    Ok(())
}

/// `outboard uninstall`.
pub(crate) fn uninstall_plugin(args: UninstallArgs) -> anyhow::Result<u8> {
    let gone = uninstall(&plugin_dir(&args.place)?, &args.name)?;
    writeln!(
        std::io::stdout().lock(),
        "removed {} {} from {}",
        gone.name,
        gone.version,
        gone.path.display()
    )?;
    Ok(0)
}

/// `outboard plugins`.
pub(crate) fn plugins(args: PluginsArgs) -> anyhow::Result<u8> {
    let dir = plugin_dir(&args.place)?;
    let rows: Vec<InstalledRow> = installed(&dir)?.iter().map(InstalledRow::from).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else if rows.is_empty() {
        writeln!(out, "no package is installed in {}", dir.display())?;
    } else {
        table(&mut out, &rows)?;
    }
    out.flush().context("cannot print the list on stdout")?;
    Ok(0)
}

/// Who signed `one`, for people.
fn signer(one: &Installed) -> String {
    match &one.signer {
        Some(id) => format!("signed by {id}"),
        None => "unsigned".to_owned(),
    }
}

/// `--plugin-dir`, else the first of OUTBOARD_PLUGIN_DIR.
fn plugin_dir(place: &InstallPlace) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &place.plugin_dir {
        return Ok(dir.clone());
    }
    match dirs_from_env().into_iter().next() {
        Some(dir) => Ok(dir),
        None => bail!("no plugin directory: give --plugin-dir DIR (or set OUTBOARD_PLUGIN_DIR)"),
    }
}

/// The config whose `[trust]` counts: `--config`, else ./outboard.toml if
/// there is one.
fn config_file(given: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(file) = given {
        return Ok(Some(file.to_owned()));
    }
    let default = PathBuf::from(CONFIG_FILE_NAME);
    Ok(default.exists().then_some(default))
}
