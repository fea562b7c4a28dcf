//! Where the control socket lives: `OUTBOARD_CONTROL_SOCKET`, else the
//! user's runtime directory (`$XDG_RUNTIME_DIR/outboard/`), else
//! `/run/outboard/` for root and a per-uid directory under `/tmp` for
//! everyone else. The daemon and the CLI resolve it the same way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable naming the control socket.
pub const ENV_CONTROL_SOCKET: &str = "OUTBOARD_CONTROL_SOCKET";

/// The socket's file name inside its directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The longest socket path the kernel takes (`sun_path` is 108 bytes, one
/// of them the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A socket path the kernel cannot bind or connect to.
#[derive(Debug, thiserror::Error)]
pub enum SocketPathError {
    /// Longer than [`MAX_SOCKET_PATH`].
    #[error(
        "the control socket path {path} is {len} bytes, over the {MAX_SOCKET_PATH} a Unix socket \
         takes; choose a shorter one with --control-socket or {ENV_CONTROL_SOCKET}",
        path = .0.display(),
        len = .0.as_os_str().len()
    )]
    TooLong(PathBuf),
    /// Not absolute: it would depend on the working directory.
    #[error(
        "the control socket path {} is relative; give an absolute path",
        .0.display()
    )]
    Relative(PathBuf),
}

/// The control socket to use: `explicit` (`--control-socket`) if given,
/// else the default from this process's environment and uid.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, SocketPathError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => default_path(
            std::env::var_os(ENV_CONTROL_SOCKET),
            std::env::var_os("XDG_RUNTIME_DIR"),
            // SAFETY: geteuid cannot fail and touches no memory.
            unsafe { libc::geteuid() },
        ),
    };
    check(path)
}

/// The default path, from the two variables and the effective uid. An
/// empty or relative `XDG_RUNTIME_DIR` is ignored, as the XDG base
/// directory specification says.
pub fn default_path(
    control_socket: Option<OsString>,
    runtime_dir: Option<OsString>,
    euid: u32,
) -> PathBuf {
    if let Some(path) = control_socket.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let runtime_dir = runtime_dir
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    let dir = match (runtime_dir, euid) {
        (Some(dir), _) => dir.join("outboard"),
        (None, 0) => PathBuf::from("/run/outboard"),
        (None, uid) => PathBuf::from(format!("/tmp/outboard-{uid}")),
    };
    dir.join(SOCKET_NAME)
}

fn check(path: PathBuf) -> Result<PathBuf, SocketPathError> {
    if !path.is_absolute() {
        return Err(SocketPathError::Relative(path));
    }
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(SocketPathError::TooLong(path));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_the_runtime_directory_then_a_per_uid_default() {
        let explicit = default_path(Some("/srv/ob.sock".into()), Some("/run/user/7".into()), 7);
        assert_eq!(explicit, Path::new("/srv/ob.sock"));
        let xdg = default_path(None, Some("/run/user/7".into()), 7);
        assert_eq!(xdg, Path::new("/run/user/7/outboard/control.sock"));
        let user = default_path(Some("".into()), None, 1000);
        assert_eq!(user, Path::new("/tmp/outboard-1000/control.sock"));
        let root = default_path(None, Some("relative".into()), 0);
        assert_eq!(root, Path::new("/run/outboard/control.sock"));
    }

    #[test]
    fn a_path_the_kernel_cannot_take_is_refused_naming_it() {
        let long = PathBuf::from(format!("/{}", "d".repeat(MAX_SOCKET_PATH)));
        let err = check(long).expect_err("too long").to_string();
        assert!(err.contains("over the 107"), "{err}");
        let err = check("x.sock".into()).expect_err("relative").to_string();
        assert!(err.contains("relative"), "{err}");
        assert!(check(PathBuf::from(format!("/{}", "d".repeat(106)))).is_ok());
    }
}
