//! A plugin directory → a package (`.tar.gz`), signed or not.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::error::PackageError;
use crate::keys::SigningKey;
use crate::manifest::{ALLOWED_MODE, FileEntry, MANIFEST_FILE, PackageManifest, SIGNATURE_FILE};
use crate::paths::escape_reason;
use crate::unpack::{MAX_ENTRIES, MAX_TOTAL_BYTES, PLUGIN_PREFIX};

/// What a package says about its plugin (the CLI asks the plugin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMeta {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
}

/// The conventional file name of a package: `NAME-VERSION.tar.gz`.
pub fn package_file_name(meta: &PackageMeta) -> String {
    format!("{}-{}.tar.gz", meta.name, meta.version)
}

/// Builds the package of the plugin directory `dir` into `out` (replaced
/// atomically if it exists), signed with `key` if given; returns its
/// manifest. Only regular files and directories are packed: a symlink or
/// a special file is an error naming it.
pub fn pack(
    dir: &Path,
    meta: &PackageMeta,
    key: Option<&SigningKey>,
    out: &Path,
) -> Result<PackageManifest, PackageError> {
    let mut files = Vec::new();
    collect(dir, "", &mut files)?;
    if files.len() > MAX_ENTRIES {
        return Err(PackageError::Malformed(format!(
            "{} holds {} files; a package holds at most {MAX_ENTRIES}",
            dir.display(),
            files.len()
        )));
    }
    let mut entries = Vec::with_capacity(files.len());
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut total: u64 = 0;
    for (relative, mode) in files {
        let path = dir.join(&relative);
        let content = fs::read(&path).map_err(PackageError::io(&path))?;
        total += content.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(PackageError::Malformed(format!(
                "{} holds more than {MAX_TOTAL_BYTES} bytes, the most a package may hold",
                dir.display()
            )));
        }
        let sha256 = hex::encode(Sha256::digest(&content));
        append(
            &mut tar,
            &format!("{PLUGIN_PREFIX}{relative}"),
            mode,
            &content,
        )?;
        entries.push(FileEntry {
            path: relative,
            mode: format!("{mode:o}"),
            sha256,
        });
    }
    let manifest = PackageManifest::new(meta.name.clone(), meta.version.clone(), entries);
    let text = manifest.to_toml()?;
    // The manifest must read back as valid: a name the host refuses fails
    // here, not at install.
    PackageManifest::parse(&text)?;
    append(&mut tar, MANIFEST_FILE, 0o644, text.as_bytes())?;
    if let Some(key) = key {
        let signature = sign(key, &manifest, text.as_bytes())?;
        append(&mut tar, SIGNATURE_FILE, 0o644, signature.as_bytes())?;
    }
    let bytes = tar
        .into_inner()
        .and_then(GzEncoder::finish)
        .map_err(PackageError::io(out))?;
    write_atomically(out, &bytes)?;
    Ok(manifest)
}

/// Every regular file under `dir/prefix`, sorted, with its mode masked to
/// what a package may carry.
pub(crate) fn collect(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, u32)>,
) -> Result<(), PackageError> {
    let here = dir.join(prefix);
    let mut names = fs::read_dir(&here)
        .map_err(PackageError::io(&here))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(PackageError::io(&here))?;
    names.sort();
    for name in names {
        let Some(name) = name.to_str() else {
            return Err(PackageError::Malformed(format!(
                "{}: {name:?} is not UTF-8; rename it",
                here.display()
            )));
        };
        let relative = format!("{prefix}{name}");
        if let Some(reason) = escape_reason(&relative) {
            return Err(PackageError::entry(&relative, reason));
        }
        if prefix.is_empty() && (name == MANIFEST_FILE || name == SIGNATURE_FILE) {
            return Err(PackageError::entry(
                &relative,
                "that name is reserved for the package's manifest",
            ));
        }
        let path = dir.join(&relative);
        let meta = fs::symlink_metadata(&path).map_err(PackageError::io(&path))?;
        if meta.is_dir() {
            collect(dir, &format!("{relative}/"), files)?;
        } else if meta.is_file() {
            files.push((relative, meta.permissions().mode() & ALLOWED_MODE));
        } else {
            return Err(PackageError::entry(
                &relative,
                "packages carry regular files and directories only; replace the symlink or special file with a regular file",
            ));
        }
    }
    Ok(())
}

/// Appends one regular file, owned by root, dated 0: the same directory
/// packs to the same bytes.
fn append(
    tar: &mut tar::Builder<GzEncoder<Vec<u8>>>,
    path: &str,
    mode: u32,
    content: &[u8],
) -> Result<(), PackageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, path, Cursor::new(content))
        .map_err(|e| PackageError::Malformed(format!("cannot pack {path}: {e}")))
}

/// The minisign signature of the manifest `text`, its trusted comment
/// naming the plugin and version (minisign -V prints it).
fn sign(key: &SigningKey, manifest: &PackageManifest, text: &[u8]) -> Result<String, PackageError> {
    let trusted = format!("outboard package {} {}", manifest.name, manifest.version);
    let untrusted = format!("signature from outboard key {}", key.key_id());
    minisign::sign(
        Some(&key.public),
        &key.secret,
        Cursor::new(text),
        Some(&trusted),
        Some(&untrusted),
    )
    .map(|signature| signature.into_string())
    .map_err(|e| PackageError::Key {
        source_name: key.key_id(),
        reason: format!("signing failed: {e}"),
    })
}

/// Writes `bytes` to `out` through a temporary file beside it.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".outboard-package-")
        .tempfile_in(parent)
        .map_err(PackageError::io(parent))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(PackageError::io(out))?;
    // A package is public data: readable by whoever installs it.
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(PackageError::io(out))?;
    file.persist(out).map_err(|e| PackageError::Io {
        path: out.to_owned(),
        error: e.error,
    })?;
    Ok(())
}
