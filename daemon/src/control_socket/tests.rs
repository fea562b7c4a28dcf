use std::os::unix::fs::MetadataExt;

use super::*;

fn socket_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ctl").join("control.sock")
}

#[test]
fn the_socket_is_private_and_goes_with_its_lock_when_dropped() {
    let base = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&base);
    let socket = Claim::take(&path, None)
        .expect("claimed")
        .bind()
        .expect("bound");
    let meta = fs::metadata(&path).expect("socket");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let pid = fs::read_to_string(lock_path(&path)).expect("lock file");
    assert_eq!(pid.trim(), std::process::id().to_string());
    assert!(!socket.replaced_stale());
    drop(socket);
    assert!(!path.exists(), "the socket is removed");
    assert!(!lock_path(&path).exists(), "the lock file is removed");
}

#[test]
fn with_a_group_the_socket_is_0660_in_it() {
    let base = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&base);
    // SAFETY: getegid cannot fail and touches no memory.
    let gid = unsafe { libc::getegid() };
    let group = Group {
        name: "own".into(),
        gid,
    };
    let socket = Claim::take(&path, Some(group))
        .expect("claimed")
        .bind()
        .expect("bound");
    let meta = fs::metadata(socket.path()).expect("socket");
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, gid));
}

#[test]
fn a_second_claim_is_refused_naming_the_holders_pid() {
    let base = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&base);
    let first = Claim::take(&path, None).expect("claimed");
    let err = Claim::take(&path, None).expect_err("held").to_string();
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
    drop(first);
    Claim::take(&path, None).expect("free again once the first is gone");
}

#[test]
fn a_stale_socket_is_replaced_but_a_file_is_not() {
    let base = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&base);
    fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    // A daemon killed while listening leaves its socket file behind.
    drop(UnixListener::bind(&path).expect("bind"));
    let socket = Claim::take(&path, None)
        .expect("claimed")
        .bind()
        .expect("bound");
    assert!(socket.replaced_stale());
    drop(socket);

    fs::write(&path, "precious").expect("write");
    let err = Claim::take(&path, None)
        .expect("claimed")
        .bind()
        .expect_err("not a socket")
        .to_string();
    assert!(err.contains("is a regular file, not a socket"), "{err}");
    assert_eq!(fs::read_to_string(&path).expect("kept"), "precious");
}

#[test]
fn a_symlink_for_the_lock_is_refused_not_followed() {
    let base = tempfile::tempdir().expect("temp dir");
    let path = socket_in(&base);
    fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let target = base.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, lock_path(&path)).expect("symlink");
    let err = Claim::take(&path, None).expect_err("symlink").to_string();
    assert!(
        err.contains("cannot take the control socket's lock"),
        "{err}"
    );
    assert!(!target.exists(), "nothing was created through the link");
}

#[test]
fn what_is_not_a_socket_is_named_once() {
    let kind = |path: &str| kind_of(fs::symlink_metadata(path).expect("exists").file_type());
    assert_eq!(kind("/dev/null"), "a character device");
    assert_eq!(kind("/"), "a directory");
}
