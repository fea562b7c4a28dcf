//! The control socket on disk: its directory, its lock and the socket file.
//!
//! A daemon first [claims](Claim::take) the socket, before it starts any
//! plugin: the directory is made ready (`dir`) and the lock beside the
//! socket (`PATH.lock`, `lock`) is taken, so a second daemon on the same
//! path refuses at once, naming the pid that holds it. Once the host has
//! started, the claim is [bound](Claim::bind): whatever is left at the
//! path is a stale socket of a daemon that was killed (the lock was free),
//! and is replaced; the new socket gets mode 0600, or 0660 and the allowed
//! group (`group`). Dropping the [`ControlSocket`] removes the socket, then
//! the lock file.

mod ancestors;
mod dir;
mod group;
mod lock;

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub use ancestors::untrusted_ancestor;
pub use group::Group;
pub(crate) use group::name_of as group_name;
use lock::{Lock, LockFailure};

/// Why the control socket cannot be set up; each names the path and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The directory exists but is not safe to use.
    #[error("the control socket's directory {dir} {reason}", dir = .dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The directory could not be created.
    #[error("cannot create the control socket's directory {dir}: {error}", dir = .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot take the control socket's lock {path}: {error}", path = .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// A live daemon holds the socket.
    #[error(
        "another outboard daemon{pid} holds the control socket {socket}; stop it first, or give \
         this one another --control-socket",
        pid = match .pid { Some(pid) => format!(" (pid {pid})"), None => String::new() },
        socket = .socket.display()
    )]
    Held {
        /// The socket.
        socket: PathBuf,
        /// The holder's pid, if it wrote it yet.
        pid: Option<u32>,
    },
    /// Something other than a socket is where the socket goes.
    #[error(
        "{path} is {kind}, not a socket: the daemon replaces only a stale socket; remove it or \
         give another --control-socket",
        path = .path.display()
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The socket could not be bound.
    #[error("cannot listen on the control socket {path}: {error}", path = .path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// The socket's mode or group could not be set.
    #[error(
        "cannot set the control socket {path}'s mode or group: {error}",
        path = .path.display()
    )]
    Permissions {
        /// The socket.
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
}

/// A claimed control socket: its directory ready and its lock held, nothing
/// listening yet.
#[derive(Debug)]
pub struct Claim {
    /// The socket's path.
    path: PathBuf,
    /// The group allowed besides the daemon's uid.
    group: Option<Group>,
    /// Held until the socket is gone.
    lock: Lock,
}

impl Claim {
    /// Claims the control socket at `path` for this process, `group` (if
    /// any) to be allowed on it: refused if another daemon holds it or its
    /// directory is not safe.
    pub fn take(path: &Path, group: Option<Group>) -> Result<Claim, SocketError> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        dir::prepare(dir, group.as_ref())?;
        let lock_path = lock_path(path);
        let lock = Lock::acquire(&lock_path).map_err(|failure| match failure {
            LockFailure::Held(pid) => SocketError::Held {
                socket: path.to_owned(),
                pid,
            },
            LockFailure::Io(error) => SocketError::Lock {
                path: lock_path.clone(),
                error,
            },
        })?;
        Ok(Claim {
            path: path.to_owned(),
            group,
            lock,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Listens on the socket: a stale one left at the path is replaced;
    /// the new one is 0600, or 0660 in the allowed group.
    pub fn bind(self) -> Result<ControlSocket, SocketError> {
        let replaced_stale = remove_stale(&self.path)?;
        let bind_error = |error| SocketError::Bind {
            path: self.path.clone(),
            error,
        };
        let listener = UnixListener::bind(&self.path).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let meta = fs::symlink_metadata(&self.path).map_err(bind_error)?;
        let socket = ControlSocket {
            path: self.path,
            group: self.group,
            listener,
            replaced_stale,
            inode: (meta.dev(), meta.ino()),
            lock: self.lock,
        };
        // Until this is done the socket has the umask's mode, but it sits in
        // a directory nobody else may enter (a group's members at most).
        socket
            .restrict()
            .map_err(|error| SocketError::Permissions {
                path: socket.path.clone(),
                error,
            })?;
        Ok(socket)
    }
}

/// The lock file beside the socket at `socket`: `SOCKET.lock`.
fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Removes the stale socket at `path`, if any; true if there was one.
/// Called under the lock, so no live daemon listens on it.
fn remove_stale(path: &Path) -> Result<bool, SocketError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(SocketError::Bind {
                path: path.to_owned(),
                error,
            });
        }
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_owned(),
            kind: kind_of(kind),
        });
    }
    fs::remove_file(path).map_err(|error| SocketError::Bind {
        path: path.to_owned(),
        error,
    })?;
    tracing::info!(
        "replaced the stale control socket {}: the daemon that made it is gone",
        path.display()
    );
    Ok(true)
}

/// The daemon's listening control socket; dropping it removes the socket
/// file and then the lock.
#[derive(Debug)]
pub struct ControlSocket {
    /// The socket's path.
    path: PathBuf,
    /// The group allowed besides the daemon's uid.
    group: Option<Group>,
    /// Listening, non-blocking.
    listener: UnixListener,
    /// True if a stale socket was replaced.
    replaced_stale: bool,
    /// The socket file's device and inode, so that only this very socket
    /// is removed.
    inode: (u64, u64),
    /// Dropped last: the lock outlives the socket file.
    lock: Lock,
}

impl ControlSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The group allowed on it besides the daemon's uid.
    pub fn group(&self) -> Option<&Group> {
        self.group.as_ref()
    }

    /// True if a stale socket (of a daemon that was killed) was replaced.
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    /// The listener for the server (a second descriptor of the same
    /// socket); must be called inside the tokio runtime.
    pub(crate) fn listener(&self) -> io::Result<tokio::net::UnixListener> {
        tokio::net::UnixListener::from_std(self.listener.try_clone()?)
    }

    /// 0600, or 0660 with the group.
    fn restrict(&self) -> io::Result<()> {
        if let Some(group) = &self.group {
            std::os::unix::fs::chown(&self.path, None, Some(group.gid))?;
        }
        let mode = if self.group.is_some() { 0o660 } else { 0o600 };
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode))
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.inode);
        if ours && let Err(err) = fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the control socket {}: {err}",
                self.path.display()
            );
        }
        // `lock` drops after this: the lock file goes, then the lock.
        let _ = &self.lock;
    }
}

/// What a file that is not a socket is, for people ("a regular file").
fn kind_of(kind: fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a file of another kind"
    }
}

#[cfg(test)]
mod tests;
