//! The state directory and its database file: created private, and refused
//! when another local user could have planted or could tamper with them.

use std::fs::{self, DirBuilder, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StateError;

/// The database's file name inside the state directory.
pub const DB_FILE: &str = "state.db";

/// Creates `dir` (and missing parents) mode 0700 when absent, checks it is
/// safe, and returns the path of the database file in it, created 0600.
pub(crate) fn prepare(dir: &Path) -> Result<PathBuf, StateError> {
    check_ancestors(dir)?;
    match fs::symlink_metadata(dir) {
        Err(error) if error.kind() == ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io(dir, source))?,
        Err(source) => return Err(io(dir, source)),
        Ok(_) => {}
    }
    // Checked after creation too: a directory that appeared meanwhile is
    // judged like any other.
    let meta = fs::symlink_metadata(dir).map_err(|source| io(dir, source))?;
    check_dir(dir, &meta)?;
    // The database is opened by its real path: SQLite's no-follow open
    // refuses a symlink anywhere in the path, and a parent that is one
    // (`/var/lib` on another disk) is the operator's business, judged by
    // `check_ancestors` through its target.
    let real = fs::canonicalize(dir).map_err(|source| io(dir, source))?;
    let file = real.join(DB_FILE);
    prepare_file(&file)?;
    Ok(file)
}

/// Refuses a directory that is a symlink, not a directory, owned by another
/// user, or writable by group or others (any of those lets someone else
/// swap the database under us).
fn check_dir(dir: &Path, meta: &Metadata) -> Result<(), StateError> {
    if meta.file_type().is_symlink() {
        return Err(unsafe_path(
            dir,
            "is a symlink; give the real directory (a symlink could be re-pointed by whoever owns it)",
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_path(dir, "is not a directory"));
    }
    check_owner(dir, meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_path(
            dir,
            &format!(
                "is writable by group or others (mode {:o}); run `chmod 700 {}`",
                meta.mode() & 0o777,
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses a directory whose parents let another user move it away and put
/// their own in its place: a parent owned by someone other than this user or
/// root, or one that others may write to without the sticky bit (`/tmp`'s
/// 1777 is fine: there nobody may rename what is not theirs). Checked
/// before anything is created, from the nearest part of the path that exists.
fn check_ancestors(dir: &Path) -> Result<(), StateError> {
    let absolute = std::path::absolute(dir).map_err(|source| io(dir, source))?;
    let existing = absolute
        .ancestors()
        .find(|path| fs::symlink_metadata(path).is_ok())
        .unwrap_or(Path::new("/"));
    let real = fs::canonicalize(existing).map_err(|source| io(existing, source))?;
    // The directory itself, when it exists, is judged by `check_dir`.
    let skip = usize::from(existing == absolute);
    for parent in real.ancestors().skip(skip) {
        let meta = fs::metadata(parent).map_err(|source| io(parent, source))?;
        if meta.uid() != 0 {
            check_owner(parent, &meta).map_err(|_| {
                unsafe_path(
                    dir,
                    &format!(
                        "its parent {} is owned by uid {}, who could replace it; use a directory under one of your own",
                        parent.display(),
                        meta.uid()
                    ),
                )
            })?;
        }
        if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(unsafe_path(
                dir,
                &format!(
                    "its parent {} is writable by everyone without the sticky bit, so anyone could replace it; run `chmod o-w {}` or choose another place",
                    parent.display(),
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Creates the database file 0600 if absent, never through a symlink, and
/// tightens the mode of an existing one of ours.
fn prepare_file(file: &Path) -> Result<(), StateError> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file);
    let handle = match opened {
        Ok(handle) => handle,
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_path(file, "is a symlink; remove it"));
        }
        Err(source) => return Err(io(file, source)),
    };
    let meta = handle.metadata().map_err(|source| io(file, source))?;
    if !meta.is_file() {
        return Err(unsafe_path(file, "is not a regular file"));
    }
    check_owner(file, &meta)?;
    if meta.mode() & 0o077 != 0 {
        handle
            .set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|source| io(file, source))?;
    }
    Ok(())
}

/// Refuses a file or directory owned by anyone but the effective user.
fn check_owner(path: &Path, meta: &Metadata) -> Result<(), StateError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_path(
            path,
            &format!(
                "is owned by uid {}, not by this user (uid {me}); use a state directory of your own",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// An [`StateError::Unsafe`] for `path`.
fn unsafe_path(path: &Path, reason: &str) -> StateError {
    StateError::Unsafe {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// An [`StateError::Io`] for `path`.
fn io(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}
