//! A plugin launch's private runtime directory (mode 0700), holding its
//! socket, and the sweep of those left by hosts that died.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The longest socket path `bind(2)` accepts: `sun_path` is 108 bytes,
/// including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The environment variable naming where runtime directories are created.
pub const ENV_RUNTIME_DIR: &str = "OUTBOARD_RUNTIME_DIR";

/// The socket's file name inside a runtime directory.
const SOCKET_NAME: &str = "plugin.sock";

/// The file in a runtime directory naming the host process that owns it.
pub const HOST_PID_FILE: &str = "host.pid";

/// Bases already swept by this process.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Removes, once per base and process, the runtime directories whose host
/// has died (a SIGKILLed host cannot remove its own). A directory without a
/// readable `host.pid`, or whose host is alive, is left alone.
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
    for entry in entries.flatten() {
        let path = entry.path();
        let is_runtime_dir = entry.file_name().to_string_lossy().starts_with("ob-")
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_runtime_dir {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(HOST_PID_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !process_alive(owner) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    "removed {} left by a host that died (pid {owner})",
                    path.display()
                ),
                Err(err) => tracing::debug!("cannot remove stale {}: {err}", path.display()),
            }
        }
    }
}

/// True if a process with this pid exists (a zombie counts: its parent may
/// still be about to clean up).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 checks for existence only.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A private directory (mode 0700) for one plugin launch, holding its
/// socket. Removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    dir: tempfile::TempDir,
}

impl RuntimeDir {
    /// Creates a fresh directory under `$OUTBOARD_RUNTIME_DIR`, or `/tmp`.
    pub fn create() -> io::Result<RuntimeDir> {
        let base = std::env::var_os(ENV_RUNTIME_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        RuntimeDir::create_in(&base)
    }

    /// Creates a fresh directory under `base`; refuses a base so long that
    /// the socket path would not fit in `sun_path`.
    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        // "ob-" plus tempfile's six random characters, then "/plugin.sock".
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
        sweep_once(base);
        // Created 0700 from the start: no moment where others can look in.
        let dir = tempfile::Builder::new()
            .prefix("ob-")
            .rand_bytes(6)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        // Which host owns it, so that a later host can remove it if this one
        // was killed before it could.
        std::fs::write(
            dir.path().join(HOST_PID_FILE),
            std::process::id().to_string(),
        )?;
        Ok(RuntimeDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the plugin must bind its socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn runtime_dirs_of_dead_hosts_are_swept_and_others_kept() {
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
        let alive = base.path().join("ob-alive1");
        let foreign = base.path().join("ob-nopid1");
        for dir in [&stale, &alive, &foreign] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        std::fs::write(stale.join(HOST_PID_FILE), dead_pid.to_string()).expect("write");
        std::fs::write(alive.join(HOST_PID_FILE), "1").expect("write");
        let fresh = RuntimeDir::create_in(base.path()).expect("create");
        assert!(!stale.exists(), "a dead host's directory is removed");
        assert!(alive.exists() && foreign.exists(), "others are left alone");
        assert_eq!(
            std::fs::read_to_string(fresh.path().join(HOST_PID_FILE)).expect("read"),
            std::process::id().to_string()
        );
    }

    #[test]
    fn runtime_dir_refuses_a_base_the_handshake_cannot_carry() {
        let err = RuntimeDir::create_in(Path::new("/tmp/a|b")).expect_err("pipe");
        assert!(err.to_string().contains("contains '|'"), "{err}");
    }
}
