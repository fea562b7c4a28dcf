//! The control socket's directory: created private (0700, or 0710 with
//! the allowed group so that its members can reach the socket), or, if it
//! exists, checked: a real directory (not a symlink), owned by the
//! daemon's uid, writable by nobody else. Anything else may be an attacker
//! waiting in a shared directory such as `/tmp`, and is refused.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::SocketError;
use super::group::Group;

/// Makes `dir` ready to hold the control socket (see the module's doc).
pub(super) fn prepare(dir: &Path, group: Option<&Group>) -> Result<(), SocketError> {
    let refuse = |reason: String| SocketError::Directory {
        dir: dir.to_owned(),
        reason,
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if let Some(why) = super::untrusted_ancestor(dir, &[euid]) {
        return Err(refuse(format!(
            "is not safe to use: {why}; choose another --control-socket"
        )));
    }
    let created = create(dir)?;
    let meta = fs::symlink_metadata(dir).map_err(|err| refuse(err.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "is a symlink; the daemon only uses a real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    check(&meta, euid, group, created).map_err(refuse)?;
    if created && let Err(err) = restrict(dir, group) {
        // Not left half made: the next start would refuse it for another reason.
        let _ = fs::remove_dir(dir);
        return Err(refuse(match group {
            Some(group) if err.kind() == io::ErrorKind::PermissionDenied => format!(
                "cannot be given to group {} ({err}): the daemon's user must be a member of \
                 the group it shares the socket with",
                group.name
            ),
            _ => format!("cannot set its permissions: {err}"),
        }));
    }
    Ok(())
}

/// Creates `dir` (0700) and its missing parents; true if `dir` itself was
/// created now.
fn create(dir: &Path) -> Result<bool, SocketError> {
    let create_error = |error| SocketError::CreateDir {
        dir: dir.to_owned(),
        error,
    };
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(create_error)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(create_error(err)),
    }
}

/// Whether a directory with `meta` may hold the socket of a daemon running
/// as `euid`; the reason it may not.
fn check(
    meta: &fs::Metadata,
    euid: u32,
    group: Option<&Group>,
    created: bool,
) -> Result<(), String> {
    if meta.uid() != euid {
        return Err(format!(
            "is owned by uid {}, not by this daemon's uid {euid}: whoever owns it could \
             replace the socket; remove it, or choose another --control-socket",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by its group or by everyone (mode {mode:04o}): another user could \
             replace the socket; `chmod go-w` it, or choose another --control-socket"
        ));
    }
    if let Some(group) = group
        && !created
        && !reachable_by(meta, group)
    {
        return Err(format!(
            "cannot be entered by group {} (mode {mode:04o}, group {}), so the group cannot \
             reach the socket; `chgrp {} DIR && chmod g+x DIR`, or remove it so the daemon \
             creates it",
            group.name,
            meta.gid(),
            group.name
        ));
    }
    Ok(())
}

/// True if members of `group` may enter a directory with `meta`.
fn reachable_by(meta: &fs::Metadata, group: &Group) -> bool {
    let mode = meta.mode();
    (meta.gid() == group.gid && mode & 0o010 != 0) || mode & 0o001 != 0
}

/// A directory created now: 0700, or 0710 in `group`, whatever the umask
/// made of it.
fn restrict(dir: &Path, group: Option<&Group>) -> io::Result<()> {
    if let Some(group) = group {
        std::os::unix::fs::chown(dir, None, Some(group.gid))?;
    }
    let mode = if group.is_some() { 0o710 } else { 0o700 };
    fs::set_permissions(dir, Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(gid: u32) -> Group {
        Group {
            name: "ops".into(),
            gid,
        }
    }

    #[test]
    fn a_missing_directory_is_created_private_and_an_existing_private_one_is_kept() {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("a/b/outboard");
        prepare(&dir, None).expect("created");
        let meta = fs::metadata(&dir).expect("exists");
        assert_eq!(meta.mode() & 0o777, 0o700);
        prepare(&dir, None).expect("kept");
    }

    #[test]
    fn with_a_group_the_directory_lets_the_group_enter_and_nothing_more() {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("outboard");
        // SAFETY: getegid cannot fail and touches no memory.
        let gid = unsafe { libc::getegid() };
        prepare(&dir, Some(&group(gid))).expect("created");
        let meta = fs::metadata(&dir).expect("exists");
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o710, gid));
    }

    #[test]
    fn a_symlink_a_shared_directory_or_a_file_is_refused_saying_why() {
        let base = tempfile::tempdir().expect("temp dir");
        let target = base.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = prepare(&link, None).expect_err("symlink").to_string();
        assert!(err.contains("is a symlink"), "{err}");
        assert!(err.contains(&link.display().to_string()), "{err}");

        let shared = base.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, Permissions::from_mode(0o1777)).expect("chmod");
        let err = prepare(&shared, None)
            .expect_err("world-writable")
            .to_string();
        assert!(
            err.contains("writable by its group or by everyone (mode 1777)"),
            "{err}"
        );

        let file = base.path().join("file");
        fs::write(&file, "").expect("write");
        let err = prepare(&file, None).expect_err("a file").to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn another_owner_is_refused_naming_both_uids() {
        let base = tempfile::tempdir().expect("temp dir");
        let meta = fs::metadata(base.path()).expect("meta");
        let err = check(&meta, meta.uid() + 1, None, false).expect_err("not ours");
        let expected = format!(
            "owned by uid {}, not by this daemon's uid {}",
            meta.uid(),
            meta.uid() + 1
        );
        assert!(err.contains(&expected), "{err}");
    }

    #[test]
    fn an_existing_directory_the_group_cannot_enter_is_refused() {
        let base = tempfile::tempdir().expect("temp dir");
        fs::set_permissions(base.path(), Permissions::from_mode(0o700)).expect("chmod");
        let meta = fs::metadata(base.path()).expect("meta");
        let ops = group(meta.gid());
        let err = check(&meta, meta.uid(), Some(&ops), false).expect_err("closed");
        assert!(err.contains("cannot be entered by group ops"), "{err}");
        assert!(check(&meta, meta.uid(), Some(&ops), true).is_ok());
        fs::set_permissions(base.path(), Permissions::from_mode(0o710)).expect("chmod");
        let meta = fs::metadata(base.path()).expect("meta");
        assert!(check(&meta, meta.uid(), Some(&ops), false).is_ok());
    }
}
