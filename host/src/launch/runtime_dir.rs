//! A plugin launch's private runtime directory (mode 0700), holding its
//! socket, and the sweep of those left by hosts that died.
//!
//! A directory belongs to the host that holds the `flock` on its
//! `host.lock` for as long as it lives: the kernel drops the lock when the
//! host dies, however it dies. A pid would not do: a host in another PID
//! namespace sharing the base has a pid that means nothing here, and a dead
//! host's pid may name a live stranger.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::Rng;

/// The longest socket path `bind(2)` accepts: `sun_path` is 108 bytes,
/// including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The environment variable naming where runtime directories are created.
pub const ENV_RUNTIME_DIR: &str = "OUTBOARD_RUNTIME_DIR";

/// The socket's file name inside a runtime directory.
const SOCKET_NAME: &str = "plugin.sock";

/// The file in a runtime directory whose `flock` the owning host holds for
/// its whole life; it holds the host's pid, for people.
pub const HOST_LOCK_FILE: &str = "host.lock";

/// Where the lock file is written and locked before it is renamed to
/// [`HOST_LOCK_FILE`], so that a sweep never finds it unlocked.
const HOST_LOCK_NEW: &str = "host.lock.new";

/// Bases already swept by this process.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Removes, once per base and process, the runtime directories of this user
/// whose host has died (a SIGKILLed host cannot remove its own): those whose
/// `host.lock` nobody holds. A directory without one (an older host's, or
/// one being created) or another user's is left alone.
fn sweep_once(base: &Path) {
    let Ok(mut swept) = SWEPT.lock() else {
        return;
    };
    if !swept.insert(base.to_owned()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let path = entry.path();
        // Ours: a directory of this user's, or one handed to a plugin's
        // user whose `host.lock` (which stays the host's) is this user's.
        let owned = |p: &Path, dir: bool| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() == dir && m.uid() == me)
        };
        let ours = entry.file_name().to_string_lossy().starts_with("ob-")
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && (owned(&path, true) || owned(&path.join(HOST_LOCK_FILE), false));
        if !ours {
            continue;
        }
        // Held while the directory goes, so two sweeps cannot both act.
        let Some(_lock) = take_abandoned_lock(&path.join(HOST_LOCK_FILE)) else {
            continue;
        };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!("removed {} left by a host that died", path.display()),
            Err(err) => tracing::debug!("cannot remove stale {}: {err}", path.display()),
        }
    }
}

/// The lock at `path`, if it is a regular file nobody holds a lock on.
/// Opened without following links or blocking on a FIFO: the directory may
/// be anything a stranger left.
pub(crate) fn take_abandoned_lock(path: &Path) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    // SAFETY: flock on a descriptor we own.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    taken.then_some(file)
}

/// Where runtime directories (and the hosts' cgroup locks) are created:
/// `$OUTBOARD_RUNTIME_DIR`, or `/tmp`.
pub(crate) fn base() -> PathBuf {
    std::env::var_os(ENV_RUNTIME_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// A private directory (mode 0700) for one plugin launch, holding its
/// socket. Removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    /// The directory.
    path: PathBuf,
    /// `host.lock`, locked for as long as this lives.
    lock: Option<File>,
}

impl RuntimeDir {
    /// Creates a fresh directory under `$OUTBOARD_RUNTIME_DIR`, or `/tmp`.
    pub fn create() -> io::Result<RuntimeDir> {
        RuntimeDir::create_in(&base())
    }

    /// Creates a fresh directory under `base`; refuses a base so long that
    /// the socket path would not fit in `sun_path`.
    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        check_base(base)?;
        sweep_once(base);
        let mut dir = RuntimeDir {
            path: make_private_dir(base)?,
            lock: None,
        };
        // On an error `dir` is dropped, which removes the directory.
        dir.lock = Some(dir.take_lock()?);
        Ok(dir)
    }

    /// Writes our pid to a new lock file, locks it, and only then gives it
    /// its name: a sweep never sees `host.lock` unlocked while we live.
    fn take_lock(&self) -> io::Result<File> {
        let new = self.path.join(HOST_LOCK_NEW);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&new)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        file.write_all(std::process::id().to_string().as_bytes())?;
        std::fs::rename(&new, self.path.join(HOST_LOCK_FILE))?;
        Ok(file)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the plugin must bind its socket.
    pub fn socket_path(&self) -> PathBuf {
        self.path.join(SOCKET_NAME)
    }

    /// Gives the directory, and the sockets already in it (an attachment's),
    /// to the user and group a plugin runs as when the host drops to them:
    /// the plugin binds its socket there and connects to those. `host.lock`
    /// stays the host's, which is how a later sweep knows the directory.
    /// Refused, saying which, if a directory above is not searchable by
    /// that user: the plugin could not reach its socket.
    pub fn hand_to(&self, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
        for dir in self.path.ancestors().skip(1) {
            let meta = std::fs::metadata(dir)?;
            let mode = meta.mode();
            let searchable = mode & 0o001 != 0
                || (meta.uid() == uid && mode & 0o100 != 0)
                || (meta.gid() == gid && mode & 0o010 != 0);
            if !searchable {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} (mode {:o}, owner {}) is not searchable by uid {uid}, which the \
                         plugin runs as (sandbox.user): it could not reach its socket; make it \
                         searchable (chmod o+x) or set {ENV_RUNTIME_DIR} to a directory that is",
                        dir.display(),
                        mode & 0o7777,
                        meta.uid()
                    ),
                ));
            }
        }
        std::os::unix::fs::lchown(&self.path, Some(uid), Some(gid))?;
        for entry in std::fs::read_dir(&self.path)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_socket()) {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }
}

impl Drop for RuntimeDir {
    /// Removes the files the host and the protocol put there by name, then
    /// the directory: unlike a recursive removal, that needs no descriptor,
    /// so it works even when the host has run out of them (`EMFILE`). Only
    /// if the plugin left something else does it fall back to one.
    fn drop(&mut self) {
        self.lock = None;
        for name in [SOCKET_NAME, HOST_LOCK_FILE, HOST_LOCK_NEW] {
            let _ = std::fs::remove_file(self.path.join(name));
        }
        if std::fs::remove_dir(&self.path).is_err()
            && let Err(err) = std::fs::remove_dir_all(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove runtime directory {}: {err}",
                self.path.display()
            );
        }
    }
}

/// Refuses a base whose socket path would not fit in `sun_path`, or that
/// the handshake line cannot carry.
fn check_base(base: &Path) -> io::Result<()> {
    // "ob-" plus six random characters, then "/plugin.sock".
    let socket_len = base.as_os_str().len() + "/ob-XXXXXX/".len() + SOCKET_NAME.len();
    if socket_len > MAX_SOCKET_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "runtime directory base {} is too long: the socket path would be {socket_len} bytes, \
                 the limit is {MAX_SOCKET_PATH}; set {ENV_RUNTIME_DIR} to a shorter directory",
                base.display()
            ),
        ));
    }
    // The socket path travels in the `|`-separated handshake line.
    if base
        .as_os_str()
        .to_string_lossy()
        .contains(['|', '\n', '\r'])
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "runtime directory base {:?} contains '|' or a line break, which the handshake line \
                 cannot carry; set {ENV_RUNTIME_DIR} to another directory",
                base.display()
            ),
        ));
    }
    Ok(())
}

/// Makes `base/ob-XXXXXX`, created 0700 from the start: no moment where
/// others can look in.
fn make_private_dir(base: &Path) -> io::Result<PathBuf> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut last = None;
    for _ in 0..16 {
        let name: String = (0..6)
            .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
            .collect();
        let path = base.join(format!("ob-{name}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free runtime directory name")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn runtime_dir_is_private_and_removed() {
        let dir = RuntimeDir::create().expect("create");
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.socket_path().as_os_str().len() <= MAX_SOCKET_PATH);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn runtime_dir_refuses_a_base_too_long_for_a_socket() {
        let base = PathBuf::from(format!("/tmp/{}", "x".repeat(100)));
        let err = RuntimeDir::create_in(&base).expect_err("too long");
        assert!(err.to_string().contains("the limit is 107"), "{err}");
    }

    /// Holds the `flock` on `lock` in another process until killed.
    pub(crate) fn hold_lock_elsewhere(lock: &Path) -> std::process::Child {
        let child = std::process::Command::new("flock")
            .arg("--exclusive")
            .arg(lock)
            .args(["sleep", "300"])
            .spawn()
            .expect("spawn flock");
        // Wait until the lock is taken: then ours fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Some(file) = take_abandoned_lock(lock) {
            drop(file);
            assert!(
                std::time::Instant::now() < deadline,
                "flock never took the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn a_directory_handed_to_a_plugins_user_is_its_and_still_swept() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: handing a directory to another user needs root");
            return;
        }
        let base = tempfile::Builder::new()
            .prefix("obh-")
            .tempdir_in("/tmp")
            .expect("base");
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let dir = RuntimeDir::create_in(base.path()).expect("create");
        let err = dir.hand_to(65534, 65534).expect_err("base not searchable");
        assert!(
            err.to_string().starts_with(&format!(
                "{} (mode 700, owner 0) is not searchable by uid 65534",
                base.path().display()
            )),
            "{err}"
        );
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let host_socket = std::os::unix::net::UnixListener::bind(dir.path().join("host.sock"))
            .expect("an attachment's socket");
        dir.hand_to(65534, 65534).expect("handed");
        let owner = |p: &Path| {
            std::fs::symlink_metadata(p)
                .map(|m| (m.uid(), m.gid()))
                .expect("stat")
        };
        assert_eq!(owner(dir.path()), (65534, 65534));
        assert_eq!(owner(&dir.path().join("host.sock")), (65534, 65534));
        assert_eq!(
            owner(&dir.path().join(HOST_LOCK_FILE)),
            (0, 0),
            "the lock stays ours"
        );
        // Its host gone (the lock let go without removing it), the next
        // sweep knows it by the lock, though the directory is not root's.
        let path = dir.path().to_owned();
        drop(host_socket);
        let mut dir = dir;
        dir.lock = None;
        std::mem::forget(dir);
        SWEPT.lock().expect("swept").remove(base.path());
        let _next = RuntimeDir::create_in(base.path()).expect("create");
        assert!(!path.exists(), "swept");
    }

    #[test]
    fn only_runtime_dirs_whose_lock_nobody_holds_are_swept() {
        let base = tempfile::Builder::new()
            .prefix("obs-")
            .tempdir_in("/tmp")
            .expect("base");
        let mut dead = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead_pid = dead.id();
        dead.wait().expect("reap");
        let stale = base.path().join("ob-stale1");
        // A live host in another PID namespace: its pid means nothing here
        // (it names a dead process), but it holds its lock.
        let elsewhere = base.path().join("ob-other1");
        let legacy = base.path().join("ob-nolck1");
        for dir in [&stale, &elsewhere, &legacy] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        for dir in [&stale, &elsewhere] {
            std::fs::write(dir.join(HOST_LOCK_FILE), dead_pid.to_string()).expect("write");
        }
        // What a pid-trusting sweep would have acted on.
        for dir in [&elsewhere, &legacy] {
            std::fs::write(dir.join("host.pid"), dead_pid.to_string()).expect("write");
        }
        let mut holder = hold_lock_elsewhere(&elsewhere.join(HOST_LOCK_FILE));
        let fresh = RuntimeDir::create_in(base.path());
        let _ = holder.kill();
        let _ = holder.wait();
        let fresh = fresh.expect("create");
        assert!(!stale.exists(), "a dead host's directory is removed");
        assert!(
            elsewhere.exists(),
            "a live host's directory is kept, whatever its pid"
        );
        assert!(legacy.exists(), "a directory without a lock is left alone");
        assert_eq!(
            std::fs::read_to_string(fresh.path().join(HOST_LOCK_FILE)).expect("read"),
            std::process::id().to_string()
        );
        assert!(
            take_abandoned_lock(&fresh.path().join(HOST_LOCK_FILE)).is_none(),
            "a live host holds its own lock"
        );
    }

    #[test]
    fn runtime_dir_refuses_a_base_the_handshake_cannot_carry() {
        let err = RuntimeDir::create_in(Path::new("/tmp/a|b")).expect_err("pipe");
        assert!(err.to_string().contains("contains '|'"), "{err}");
    }
}
