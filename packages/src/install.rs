//! Install: stage beside the target, verify, start once, swap into place.
//! Uninstall and the list of installed packages.
//!
//! Nothing is written into the plugin directory except a hidden staging
//! folder (`.outboard-install-*`, removed on every path out) until the
//! final rename, so a refused package leaves the directory as it was, and
//! an upgrade leaves the previous version in place until the new one has
//! started.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::asks::{ConfigAsk, config_asks};
use crate::error::PackageError;
use crate::keys::TrustedKey;
use crate::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, PackageManifest, SIGNATURE_FILE};
use crate::probe::{PROBE_USER, describe_once, spec_of};
use crate::swap::{exchange, rename_noreplace};
use crate::unpack::{PLUGIN_PREFIX, read_record, unpack};
use crate::verify::{check_files, check_signature, signer_of};
use outboard_host::PluginSpec;

/// How to install a package.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The plugin directory to install into (it must exist).
    pub plugin_dir: PathBuf,
    /// The keys whose signatures are accepted.
    pub trusted: Vec<TrustedKey>,
    /// Install a package that carries no signature.
    pub allow_unsigned: bool,
    /// The user install starts the plugin as when it runs as root;
    /// `None`: [`PROBE_USER`].
    pub probe_user: Option<String>,
    /// Install a package whose `plugin.toml` sets keys only the operator
    /// should set (grants, `sandbox.user`, ...).
    pub accept_config: bool,
}

/// A plugin installed from a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The plugin's name (its folder's name).
    pub name: String,
    /// Its version.
    pub version: String,
    /// The key id of the signature it was installed with, `None` if unsigned.
    pub signer: Option<String>,
    /// Its folder.
    pub path: PathBuf,
    /// The version it replaced, if it replaced one.
    pub replaced: Option<String>,
    /// What its `plugin.toml` asks beyond its code (grants, sandbox,
    /// ...), in the file's order; empty when listed rather than installed.
    pub asks: Vec<ConfigAsk>,
}

/// Installs `package` into `options.plugin_dir` (module docs).
pub async fn install(package: &Path, options: &InstallOptions) -> Result<Installed, PackageError> {
    let dir = &options.plugin_dir;
    // The signature first, read without writing anything: nothing of an
    // untrusted package is believed, nor written.
    let record = read_record(package)?;
    let manifest_text = record
        .manifest
        .ok_or_else(|| PackageError::Malformed(format!("the package holds no {MANIFEST_FILE}")))?;
    let signer = check_signature(
        manifest_text.as_bytes(),
        record.signature.as_deref(),
        &options.trusted,
        options.allow_unsigned,
    )?;
    let manifest = PackageManifest::parse(&manifest_text)?;
    let target = dir.join(&manifest.name);
    check_replaceable(&target)?;
    let staging = tempfile::Builder::new()
        .prefix(".outboard-install-")
        .tempdir_in(dir)
        .map_err(PackageError::io(dir))?;
    let root = staging.path();
    // Searchable, so that a plugin run as another user reaches its folder
    // in it when started once.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(PackageError::io(root))?;
    unpack(package, root)?;
    // The file is read twice: what was unpacked must be what was verified.
    let unpacked_record = (
        read_small(&root.join(MANIFEST_FILE))?,
        read_small(&root.join(SIGNATURE_FILE))?,
    );
    if unpacked_record != (Some(manifest_text), record.signature) {
        return Err(PackageError::Malformed(format!(
            "{} changed while it was read; install it again",
            package.display()
        )));
    }
    let unpacked = root.join(PLUGIN_PREFIX.trim_end_matches('/'));
    fs::create_dir_all(&unpacked).map_err(PackageError::io(&unpacked))?;
    check_files(&manifest, &unpacked)?;
    // The folder takes the plugin's name: a plugin.toml without `name` is
    // then named as it will be once installed.
    let candidate = root.join(&manifest.name);
    fs::rename(&unpacked, &candidate).map_err(PackageError::io(&candidate))?;
    let spec = spec_of(&candidate).map_err(|reason| PackageError::Mismatch {
        expected: manifest.name.clone(),
        reason,
    })?;
    let asks = config_asks(&candidate, &spec).map_err(PackageError::Malformed)?;
    let refused: Vec<String> = (asks.iter())
        .filter(|a| a.operator_only.is_some())
        .map(ConfigAsk::describe)
        .collect();
    if !refused.is_empty() && !options.accept_config {
        return Err(PackageError::OperatorConfig {
            file: format!(
                "{}/{}",
                manifest.name,
                outboard_host::config::PLUGIN_FILE_NAME
            ),
            refused,
        });
    }
    // The plugin runs next, as another user when install is root: nothing
    // it runs as may change what was checked.
    only_ours(dir, true)?;
    only_ours(root, false)?;
    let probe_user = options.probe_user.as_deref().unwrap_or(PROBE_USER);
    check_plugin(&manifest, spec, probe_user).await?;
    // The plugin has run: what it may have changed in its own folder is
    // not what was signed.
    check_files(&manifest, &candidate)?;
    keep_record(root, &candidate)?;
    let replaced = place(&candidate, &target)?;
    Ok(Installed {
        name: manifest.name,
        version: manifest.version,
        signer,
        path: target,
        replaced,
        asks,
    })
}

/// Refuses if anyone but this process's user may change `path` (and,
/// with `!shallow`, all it holds): it must belong to this user, and be
/// writable by no group or other, save a sticky directory when `shallow`
/// (the plugin directory: its entries are then only their owners' to
/// move).
fn only_ours(path: &Path, shallow: bool) -> Result<(), PackageError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).map_err(PackageError::io(path))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let unsafe_because = |reason: String| PackageError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    if shallow {
        if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(unsafe_because(
                "is writable by every user and not sticky (chmod o-w or +t): another user could replace what install checks"
                    .to_owned(),
            ));
        }
        return Ok(());
    }
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "is owned by uid {} with mode {:o}; install needs its staged files owned by uid {me} and writable by no one else",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(PackageError::io(path))? {
            only_ours(&entry.map_err(PackageError::io(path))?.path(), false)?;
        }
    }
    Ok(())
}

/// Moves the manifest and its signature from the staging root into the
/// plugin's folder, readable by all: `outboard plugins` reads them, and
/// anyone can check the installed files against them by hand.
fn keep_record(root: &Path, folder: &Path) -> Result<(), PackageError> {
    for file in [MANIFEST_FILE, SIGNATURE_FILE] {
        let from = root.join(file);
        if from.exists() {
            let to = folder.join(file);
            fs::rename(&from, &to).map_err(PackageError::io(&from))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644))
                .map_err(PackageError::io(&to))?;
        }
    }
    Ok(())
}

/// Starts the staged plugin once and checks its `plugin.toml` and its
/// `Describe` agree with the manifest.
async fn check_plugin(
    manifest: &PackageManifest,
    spec: PluginSpec,
    probe_user: &str,
) -> Result<(), PackageError> {
    let mismatch = |reason: String| PackageError::Mismatch {
        expected: manifest.name.clone(),
        reason,
    };
    if spec.name != manifest.name {
        return Err(mismatch(format!(
            "its plugin.toml names it {:?}, the manifest {:?}",
            spec.name, manifest.name
        )));
    }
    let described = describe_once(&spec, probe_user).await?;
    if described.name != manifest.name {
        return Err(mismatch(format!(
            "the plugin's Describe names it {:?}, the manifest {:?}",
            described.name, manifest.name
        )));
    }
    if described.version != manifest.version {
        return Err(mismatch(format!(
            "the plugin's Describe gives version {}, the manifest {}",
            described.version, manifest.version
        )));
    }
    Ok(())
}

/// Refuses to replace what a package did not install: a plugin folder
/// put there by hand, a file, a symlink.
fn check_replaceable(target: &Path) -> Result<(), PackageError> {
    let refuse = |reason: &str| PackageError::NotInstalled {
        path: target.to_owned(),
        reason: reason.to_owned(),
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(PackageError::Io {
            path: target.to_owned(),
            error,
        }),
        Ok(meta) if !meta.is_dir() => Err(refuse(
            "is in the way and is not a folder; move it away first",
        )),
        Ok(_) if read_installed(target).is_none() => Err(refuse(
            "holds a plugin no package installed; install will not replace it: move it away first",
        )),
        Ok(_) => Ok(()),
    }
}

/// Moves `candidate` to `target` in one rename: exchanged with the folder
/// already there (which then sits in staging and goes with it), or moved
/// into the free place. Returns the replaced version, if any.
fn place(candidate: &Path, target: &Path) -> Result<Option<String>, PackageError> {
    match rename_noreplace(candidate, target) {
        Ok(()) => Ok(None),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists
                || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
        {
            exchange(candidate, target).map_err(PackageError::io(target))?;
            // After the exchange, `candidate` holds what was installed before.
            Ok(read_installed(candidate).map(|old| old.version))
        }
        Err(e) => Err(PackageError::Io {
            path: target.to_owned(),
            error: e,
        }),
    }
}

/// Removes the plugin `name` that a package installed in `plugin_dir`: it
/// is moved aside in one rename, then deleted.
pub fn uninstall(plugin_dir: &Path, name: &str) -> Result<Installed, PackageError> {
    let not_installed = |path: &Path, reason: &str| PackageError::NotInstalled {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !outboard_proto::names::is_valid_plugin_name(name) {
        return Err(not_installed(
            plugin_dir,
            &outboard_proto::names::invalid_plugin_name(name),
        ));
    }
    let target = plugin_dir.join(name);
    let meta = fs::symlink_metadata(&target).map_err(PackageError::io(&target))?;
    if !meta.is_dir() {
        return Err(not_installed(&target, "not a folder; remove it by hand"));
    }
    let Some(found) = read_installed(&target) else {
        return Err(not_installed(
            &target,
            "no package installed it (no readable outboard-package.toml); remove it by hand",
        ));
    };
    let trash = tempfile::Builder::new()
        .prefix(".outboard-uninstall-")
        .tempdir_in(plugin_dir)
        .map_err(PackageError::io(plugin_dir))?;
    let aside = trash.path().join(name);
    fs::rename(&target, &aside).map_err(PackageError::io(&target))?;
    trash.close().map_err(PackageError::io(&aside))?;
    Ok(found)
}

/// Every plugin in `plugin_dir` that a package installed, by name.
pub fn installed(plugin_dir: &Path) -> Result<Vec<Installed>, PackageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(plugin_dir).map_err(PackageError::io(plugin_dir))? {
        let path = entry.map_err(PackageError::io(plugin_dir))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden
            && path.is_dir()
            && let Some(one) = read_installed(&path)
        {
            found.push(one);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The package record in the plugin folder `path`, if it holds a valid one.
fn read_installed(path: &Path) -> Option<Installed> {
    let text = read_small(&path.join(MANIFEST_FILE)).ok()??;
    let manifest = PackageManifest::parse(&text).ok()?;
    let signer = read_small(&path.join(SIGNATURE_FILE))
        .ok()
        .flatten()
        .and_then(|s| signer_of(&s));
    Some(Installed {
        name: manifest.name,
        version: manifest.version,
        signer,
        path: path.to_owned(),
        replaced: None,
        asks: Vec::new(),
    })
}

/// The text of the regular file `path` (at most the manifest's bound), or
/// `None` if there is none.
fn read_small(path: &Path) -> Result<Option<String>, PackageError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(PackageError::Io {
                path: path.to_owned(),
                error,
            });
        }
    };
    if !meta.is_file() || meta.len() > MAX_MANIFEST_BYTES {
        return Err(PackageError::Malformed(format!(
            "{} is not a regular file of at most {MAX_MANIFEST_BYTES} bytes",
            path.display()
        )));
    }
    fs::read_to_string(path)
        .map(Some)
        .map_err(PackageError::io(path))
}
