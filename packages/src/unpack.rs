//! A package → a staging directory, refusing every entry that is not a
//! plain file or directory at a path inside the package.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flate2::read::GzDecoder;
use tar::EntryType;

use crate::error::PackageError;
use crate::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE};
use crate::paths::escape_reason;

/// The archive folder holding the plugin directory's files.
pub(crate) const PLUGIN_PREFIX: &str = "plugin/";
/// The most entries a package may hold.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// The most bytes a package may unpack to (a decompression bomb stops here).
pub(crate) const MAX_TOTAL_BYTES: u64 = 1 << 30;

/// Unpacks `package` into the empty directory `staging`: the manifest and
/// its signature at the top, the plugin's files under `plugin/`. Files are
/// written 0600 (their modes come from the signed manifest later, not from
/// the archive's headers).
pub(crate) fn unpack(package: &Path, staging: &Path) -> Result<(), PackageError> {
    let mut archive = open(package)?;
    let entries = archive.entries().map_err(|e| corrupt(package, &e))?;
    let mut budget = Budget {
        entries: 0,
        bytes: 0,
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(package, &e))?;
        budget.entries += 1;
        if budget.entries > MAX_ENTRIES {
            return Err(PackageError::Malformed(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| PackageError::entry("(not UTF-8)", "the path is not UTF-8"))?;
        if let Some(reason) = escape_reason(&name) {
            return Err(PackageError::entry(&name, reason));
        }
        let kind = entry.header().entry_type();
        let top_level = name == MANIFEST_FILE || name == SIGNATURE_FILE;
        let plugin_folder = kind == EntryType::Directory && name.trim_end_matches('/') == "plugin";
        if !top_level && !plugin_folder && !name.starts_with(PLUGIN_PREFIX) {
            return Err(PackageError::entry(
                &name,
                format!("a package holds only {MANIFEST_FILE}, {SIGNATURE_FILE} and plugin/"),
            ));
        }
        let target = staging.join(name.trim_end_matches('/'));
        match kind {
            EntryType::Directory if !top_level => {
                fs::create_dir_all(&target).map_err(PackageError::io(&target))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let limit = if top_level {
                    MAX_MANIFEST_BYTES
                } else {
                    MAX_TOTAL_BYTES - budget.bytes
                };
                budget.bytes += write_file(&mut entry, &name, &target, limit)?;
            }
            other => return Err(PackageError::entry(&name, refusal(other, &entry))),
        }
    }
    Ok(())
}

/// A package's manifest and signature, as its archive holds them.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// The text of `outboard-package.toml`, if the archive holds one.
    pub(crate) manifest: Option<String>,
    /// The text of its `.minisig`, if the archive holds one.
    pub(crate) signature: Option<String>,
}

/// Reads the manifest and its signature from `package`, writing nothing:
/// the first of install's two passes, so that the signature is checked
/// before a file of the package is written anywhere.
pub(crate) fn read_record(package: &Path) -> Result<Record, PackageError> {
    let mut archive = open(package)?;
    let entries = archive.entries().map_err(|e| corrupt(package, &e))?;
    let mut record = Record::default();
    for (n, entry) in entries.enumerate() {
        let entry = entry.map_err(|e| corrupt(package, &e))?;
        if n >= MAX_ENTRIES {
            return Err(PackageError::Malformed(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        let slot = match &*entry.path_bytes() {
            name if name == MANIFEST_FILE.as_bytes() => &mut record.manifest,
            name if name == SIGNATURE_FILE.as_bytes() => &mut record.signature,
            // Everything else is checked by `unpack`, once the signature is.
            _ => continue,
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if slot.is_some() {
            return Err(PackageError::entry(
                &name,
                "the path appears twice in the archive",
            ));
        }
        if !matches!(
            entry.header().entry_type(),
            EntryType::Regular | EntryType::Continuous
        ) {
            return Err(PackageError::entry(&name, "not a regular file"));
        }
        let mut text = String::new();
        entry
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| corrupt(package, &e))?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(PackageError::entry(
                &name,
                format!("larger than {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        *slot = Some(text);
    }
    Ok(record)
}

/// The archive in the regular file `package`.
fn open(package: &Path) -> Result<tar::Archive<GzDecoder<File>>, PackageError> {
    let file = File::open(package).map_err(PackageError::io(package))?;
    let meta = file.metadata().map_err(PackageError::io(package))?;
    if !meta.is_file() {
        return Err(PackageError::Malformed(format!(
            "{} is not a regular file",
            package.display()
        )));
    }
    Ok(tar::Archive::new(GzDecoder::new(file)))
}

/// How much has been unpacked so far.
struct Budget {
    /// Entries seen.
    entries: usize,
    /// Bytes written.
    bytes: u64,
}

/// Writes one entry to the new file `target` (its parents created), at
/// most `limit` bytes; returns how many.
fn write_file(
    entry: &mut impl Read,
    name: &str,
    target: &Path,
    limit: u64,
) -> Result<u64, PackageError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(PackageError::io(parent))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists => {
                PackageError::entry(name, "the path appears twice in the archive")
            }
            _ => PackageError::Io {
                path: target.to_owned(),
                error,
            },
        })?;
    let written = io::copy(&mut entry.take(limit.saturating_add(1)), &mut file)
        .map_err(PackageError::io(target))?;
    if written > limit {
        return Err(PackageError::entry(
            name,
            format!("the package unpacks to more than {limit} bytes"),
        ));
    }
    Ok(written)
}

/// Why an entry of `kind` is refused, naming a link's target.
fn refusal(kind: EntryType, entry: &tar::Entry<'_, impl Read>) -> String {
    let target = entry
        .link_name_bytes()
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_default();
    match kind {
        EntryType::Symlink => format!(
            "a symlink (to {target:?}); packages carry no symlinks, which could point out of the plugin's folder"
        ),
        EntryType::Link => format!("a hard link (to {target:?}); packages carry no hard links"),
        EntryType::Char | EntryType::Block => {
            "a device file; packages carry regular files only".to_owned()
        }
        EntryType::Fifo => "a FIFO; packages carry regular files only".to_owned(),
        EntryType::Directory => "a directory where the manifest belongs".to_owned(),
        other => {
            format!("an entry of type {other:?}; packages carry regular files and directories only")
        }
    }
}

/// A corrupt archive, naming the package.
fn corrupt(package: &Path, error: &io::Error) -> PackageError {
    PackageError::Malformed(format!(
        "{} is not a readable .tar.gz: {error}",
        package.display()
    ))
}
