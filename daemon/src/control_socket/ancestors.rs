//! Whether the directories above the control socket's let someone else
//! swap it: a directory owned by another user, writable by others without
//! the sticky bit, or a symlink another user owns (and can re-point) on the
//! way. Checked by the daemon before it makes its directory, and by the
//! client before it trusts another user's daemon.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why the directories above `dir` (not `dir` itself) could let a user
/// other than root and `trusted` replace what is in `dir`; `None` if they
/// cannot (or do not exist yet: the daemon creates them its own).
pub fn untrusted_ancestor(dir: &Path, trusted: &[u32]) -> Option<String> {
    let allowed = |uid: u32| uid == 0 || trusted.contains(&uid);
    // The path as written: a symlink on the way is only as safe as its owner.
    for above in dir.ancestors().skip(1) {
        if let Ok(meta) = std::fs::symlink_metadata(above)
            && meta.file_type().is_symlink()
            && !allowed(meta.uid())
        {
            return Some(format!(
                "{} is a symlink owned by uid {}, who could point it elsewhere",
                above.display(),
                meta.uid()
            ));
        }
    }
    // The directories it leads to.
    let parent = dir.parent()?;
    let real = std::fs::canonicalize(parent).ok()?;
    for above in real.ancestors() {
        let Ok(meta) = std::fs::metadata(above) else {
            continue;
        };
        let mode = meta.mode();
        if !allowed(meta.uid()) {
            return Some(format!(
                "{} belongs to uid {}, who could replace what is in it",
                above.display(),
                meta.uid()
            ));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Some(format!(
                "{} is writable by others (mode {:04o}) without the sticky bit",
                above.display(),
                mode & 0o7777
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};

    use super::*;

    #[test]
    fn another_users_directory_or_symlink_above_is_named_and_a_sticky_tmp_is_fine() {
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: only root can give files to another uid");
            return;
        }
        let base = tempfile::tempdir().expect("temp dir");
        let me = unsafe { libc::geteuid() };
        assert_eq!(untrusted_ancestor(&base.path().join("ob"), &[me]), None);

        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).expect("dir");
        chown(&theirs, Some(4242), None).expect("chown");
        let why = untrusted_ancestor(&theirs.join("ob"), &[me]).expect("refused");
        assert!(why.contains("belongs to uid 4242"), "{why}");
        assert_eq!(untrusted_ancestor(&theirs.join("ob"), &[me, 4242]), None);

        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("dir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let why = untrusted_ancestor(&open.join("ob"), &[me]).expect("refused");
        assert!(why.contains("without the sticky bit"), "{why}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert_eq!(untrusted_ancestor(&open.join("ob"), &[me]), None);

        let link = base.path().join("link");
        symlink(&open, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(4242), None).expect("lchown");
        let why = untrusted_ancestor(&link.join("ob"), &[me]).expect("refused");
        assert!(why.contains("symlink owned by uid 4242"), "{why}");
    }
}
