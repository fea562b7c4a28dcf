//! The state directory: created private, and refused with a message naming
//! the path when another user could reach into it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use outboard_state::{DB_FILE, Database, KvLimits, KvStore, StateError};

/// The permission bits of `path` (not following a symlink).
fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").mode() & 0o777
}

/// Asserts `result` is an [`StateError::Unsafe`] naming `path`, and that
/// its message contains `why`.
fn assert_refused(result: Result<Database, StateError>, path: &Path, why: &str) {
    let error = result.expect_err("must be refused");
    assert!(matches!(error, StateError::Unsafe { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message} should name {}",
        path.display()
    );
    assert!(message.contains(why), "{message} should say {why}");
}

#[test]
fn a_new_directory_is_0700_and_its_files_0600() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("a").join("b").join("state");
    let db = Database::open(&state).expect("open");
    db.set("ns", "k", b"v", None, &KvLimits::default())
        .expect("set");
    for created in [dir.path().join("a"), state.clone()] {
        assert_eq!(mode(&created), 0o700, "{}", created.display());
    }
    for file in [DB_FILE, "state.db-wal", "state.db-shm"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
}

#[test]
fn a_writable_directory_is_refused_and_a_loose_file_tightened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    drop(Database::open(&state).expect("create"));
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_refused(
        Database::open(&state),
        &state,
        "writable by group or others",
    );
    fs::set_permissions(&state, fs::Permissions::from_mode(0o770)).expect("chmod");
    assert_refused(Database::open(&state), &state, "chmod 700");

    // A readable (not writable) directory is accepted; the file stays private.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(state.join(DB_FILE), fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Database::open(&state).expect("a 0755 directory is fine"));
    assert_eq!(mode(&state.join(DB_FILE)), 0o600);
}

#[test]
fn symlinks_are_refused_for_the_directory_and_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let real = dir.path().join("real");
    drop(Database::open(&real).expect("create"));
    let link = dir.path().join("link");
    symlink(&real, &link).expect("symlink");
    assert_refused(Database::open(&link), &link, "symlink");

    let state = dir.path().join("state");
    fs::create_dir(&state).expect("mkdir");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).expect("chmod");
    symlink(real.join(DB_FILE), state.join(DB_FILE)).expect("symlink");
    assert_refused(Database::open(&state), &state.join(DB_FILE), "symlink");

    let file = dir.path().join("file");
    fs::write(&file, b"").expect("write");
    assert_refused(Database::open(&file), &file, "not a directory");
}

#[test]
fn a_directory_under_a_symlinked_parent_opens_and_keeps_its_data() {
    // `/var/lib` on another disk, or a checkout whose `target` is a link:
    // only the directory itself and its file must not be symlinks.
    let dir = tempfile::tempdir().expect("temp dir");
    let real = dir.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = dir.path().join("link");
    symlink(&real, &link).expect("symlink");
    let state = link.join("state");
    let db = Database::open(&state).expect("open under a symlinked parent");
    db.set("ns", "k", b"v", None, &KvLimits::default())
        .expect("set");
    drop(db);
    let again = Database::open(&state).expect("reopen");
    assert_eq!(
        again.get("ns", "k").expect("get").expect("kept").value,
        b"v"
    );
    assert!(real.join("state").join(DB_FILE).is_file());
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    drop(Database::open(&state).expect("create"));
    let me = fs::metadata(&state).expect("stat").uid();
    // Only root can give a directory away; as anyone else, a directory of
    // root's stands in for "another user's".
    let (theirs, owner) = if me == 0 {
        std::os::unix::fs::chown(&state, Some(65_534), None).expect("chown to nobody");
        (state.clone(), 65_534)
    } else {
        (Path::new("/").to_path_buf(), 0)
    };
    assert_refused(
        Database::open(&theirs),
        &theirs,
        &format!("owned by uid {owner}"),
    );
    if me == 0 {
        // Given back, the database is usable again and the file, once given
        // away, is refused on its own.
        std::os::unix::fs::chown(&state, Some(0), None).expect("chown back");
        std::os::unix::fs::chown(state.join(DB_FILE), Some(65_534), None).expect("chown file");
        assert_refused(
            Database::open(&state),
            &state.join(DB_FILE),
            "owned by uid 65534",
        );
    }
}

#[test]
fn a_parent_that_anyone_may_write_to_without_the_sticky_bit_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = dir.path().join("open");
    fs::create_dir(&open).expect("mkdir");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
    let state = open.join("state");
    assert_refused(
        Database::open(&state),
        &state,
        "writable by everyone without the sticky bit",
    );
    assert!(!state.exists(), "refused before anything was created");
    // With the sticky bit (as /tmp has), nobody may rename what is not theirs.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
    drop(Database::open(&state).expect("a sticky parent is fine"));
}
