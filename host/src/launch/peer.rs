//! Who answers at a plugin's socket path. The channel dials the path again
//! whenever its connection drops; by then the runtime directory may be gone
//! and the path someone else's. Before anything is sent on a new connection
//! the host checks that the directory and the socket are still the ones of
//! the handshake, that the peer runs as the plugin's user, and, for a
//! launched plugin, that it is the plugin's process or one of its
//! descendants: another plugin dropped to the same user is neither.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::net::UnixStream;

use crate::launch::spawner::descends_from;

/// Why the host refused a socket; found in a failed call's error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerRefused {
    /// The socket path.
    pub(crate) socket: PathBuf,
    /// What did not match.
    pub(crate) reason: String,
}

impl fmt::Display for PeerRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused to reconnect to {}: {}; nothing was sent to it",
            self.socket.display(),
            self.reason
        )
    }
}

impl std::error::Error for PeerRefused {}

/// A file's identity: the same path may later lead to another file. A
/// freed inode number is soon given again (tmpfs does), so a socket is
/// also known by its change time, set when it was made and, before the
/// handshake, by its chmod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    /// The change time in nanoseconds; 0 for the directory, whose change
    /// time moves with every entry added or removed.
    ctime_ns: i128,
}

impl FileId {
    fn of(meta: &std::fs::Metadata, with_ctime: bool) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime_ns: if with_ctime {
                i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
            } else {
                0
            },
        }
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inode {} on device {}", self.ino, self.dev)?;
        if self.ctime_ns != 0 {
            write!(f, ", changed at {}ns", self.ctime_ns)?;
        }
        Ok(())
    }
}

/// What the socket path led to at the first connection: the runtime
/// directory and the socket the plugin bound.
#[derive(Debug, Clone, Copy)]
struct Identity {
    dir: FileId,
    socket: FileId,
}

/// Checks every connection to one socket path against the first.
#[derive(Debug)]
pub(crate) struct PeerCheck {
    socket: PathBuf,
    /// The uid the plugin runs as: the host's, or the one it dropped to.
    uid: u32,
    /// The plugin's pid, when the host launched it: the peer must be it
    /// or one of its descendants.
    pid: Option<u32>,
    /// Recorded at the first connection, right after the handshake, while
    /// the directory is certainly the host's.
    first: Mutex<Option<Identity>>,
    /// The first refusal: from then on the path is not trusted again.
    refused: Mutex<Option<PeerRefused>>,
}

impl PeerCheck {
    /// A check for connections to `socket`.
    pub(crate) fn new(socket: &Path) -> PeerCheck {
        PeerCheck::for_uid(socket, euid())
    }

    /// A check for connections to `socket`, bound by a plugin running as
    /// `uid`.
    pub(crate) fn for_uid(socket: &Path, uid: u32) -> PeerCheck {
        PeerCheck {
            socket: socket.to_owned(),
            uid,
            pid: None,
            first: Mutex::new(None),
            refused: Mutex::new(None),
        }
    }

    /// A check for connections to `socket`, bound by the plugin whose
    /// process is `pid` (or a descendant of it), running as `uid`.
    pub(crate) fn for_plugin(socket: &Path, uid: u32, pid: u32) -> PeerCheck {
        PeerCheck {
            pid: Some(pid),
            ..PeerCheck::for_uid(socket, uid)
        }
    }

    /// The socket path.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Why a dial was refused, if one was.
    pub(crate) fn refusal(&self) -> Option<PeerRefused> {
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Checks a connection about to be made ([`PeerCheck::before_dial`])
    /// or just made ([`PeerCheck::after_dial`]), remembering a refusal.
    pub(crate) fn remember(&self, check: Result<(), PeerRefused>) -> std::io::Result<()> {
        let Err(refused) = check else {
            return Ok(());
        };
        let mut slot = self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            tracing::warn!("{refused}");
            *slot = Some(refused.clone());
        }
        Err(std::io::Error::other(refused))
    }

    /// Before dialing: the directory is a private directory of ours and,
    /// after the first connection, the very same one, with the very same
    /// socket in it.
    pub(crate) fn before_dial(&self) -> Result<(), PeerRefused> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let now = self.identity()?;
        let mut first = self
            .first
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *first {
            None => *first = Some(now),
            Some(was) if was.dir != now.dir => {
                return Err(self.refused(format!(
                    "its directory is no longer the one made for the plugin ({} became {})",
                    was.dir, now.dir
                )));
            }
            Some(was) if was.socket != now.socket => {
                return Err(self.refused(format!(
                    "it is no longer the socket the plugin bound at its handshake ({} became {})",
                    was.socket, now.socket
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// After connecting, before sending: the peer runs as the plugin's
    /// user and, if its pid is known, is the plugin or a descendant.
    pub(crate) fn after_dial(&self, stream: &UnixStream) -> Result<(), PeerRefused> {
        let cred = stream
            .peer_cred()
            .map_err(|err| self.refused(format!("cannot read its peer's credentials: {err}")))?;
        let me = self.uid;
        if cred.uid() != me {
            return Err(self.refused(format!(
                "its peer runs as uid {}, not {me} (the plugin's)",
                cred.uid()
            )));
        }
        if let Some(plugin) = self.pid {
            let peer = cred.pid().and_then(|pid| u32::try_from(pid).ok());
            if !peer.is_some_and(|peer| descends_from(peer, plugin)) {
                return Err(self.refused(format!(
                    "its peer (pid {}) is not the plugin's process ({plugin}) or one of its \
                     descendants",
                    peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
                )));
            }
        }
        Ok(())
    }

    /// The directory and the socket as they are now, refused if the
    /// directory is not a private one of ours or the socket not a socket.
    fn identity(&self) -> Result<Identity, PeerRefused> {
        let dir_path = self.socket.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::symlink_metadata(dir_path)
            .map_err(|err| self.refused(format!("its directory: {err}")))?;
        let me = self.uid;
        if !dir.is_dir() || dir.uid() != me || dir.mode() & 0o077 != 0 {
            return Err(self.refused(format!(
                "its directory is not a private directory of uid {me} (owner {}, mode {:o})",
                dir.uid(),
                dir.mode() & 0o7777
            )));
        }
        let socket = std::fs::symlink_metadata(&self.socket)
            .map_err(|err| self.refused(format!("{err}")))?;
        if !socket.file_type().is_socket() || socket.uid() != me {
            return Err(self.refused(format!(
                "it is not a socket of uid {me} (owner {})",
                socket.uid()
            )));
        }
        Ok(Identity {
            dir: FileId::of(&dir, false),
            socket: FileId::of(&socket, true),
        })
    }

    fn refused(&self, reason: String) -> PeerRefused {
        PeerRefused {
            socket: self.socket.clone(),
            reason,
        }
    }
}

/// The host's effective uid, which its plugins run as unless it drops them
/// to another.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The refusal in an error's source chain, if that is why it failed.
pub(crate) fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<PeerRefused> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(refused) = err.downcast_ref::<PeerRefused>() {
            return Some(refused.clone());
        }
        if let Some(refused) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<PeerRefused>())
        {
            return Some(refused.clone());
        }
        next = err.source();
    }
    None
}

/// A temporary directory under `/tmp` (short socket paths) that only its
/// owner may enter, as a plugin's runtime directory is, for tests that dial.
#[cfg(test)]
pub(crate) fn private_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_replaced_at_the_path_is_refused_before_dialing() {
        let dir = private_dir("obp-");
        let socket = dir.path().join("plugin.sock");
        let first = tokio::net::UnixListener::bind(&socket).expect("bind");
        let check = PeerCheck::new(&socket);
        check.before_dial().expect("the plugin's socket");
        let stream = UnixStream::connect(&socket).await.expect("connect");
        check.after_dial(&stream).expect("our own uid");
        // The socket goes, an impostor binds the same path.
        drop((stream, first));
        std::fs::remove_file(&socket).expect("unlink");
        let _impostor = tokio::net::UnixListener::bind(&socket).expect("bind");
        let err = check.before_dial().expect_err("replaced");
        assert!(
            err.to_string().starts_with(&format!(
                "refused to reconnect to {}: it is no longer the socket the plugin bound",
                socket.display()
            )),
            "{err}"
        );
        // Remembered: never trusted again.
        assert!(check.remember(check.before_dial()).is_err());
        assert_eq!(check.refusal(), Some(err));
    }

    #[tokio::test]
    async fn a_peer_of_the_same_user_that_is_not_the_plugin_is_refused() {
        let dir = tempfile::Builder::new()
            .prefix("obp-")
            .tempdir_in("/tmp")
            .expect("dir");
        let socket = dir.path().join("plugin.sock");
        // Bound by this process: the plugin when it is us, an impostor of
        // the same user (another plugin dropped to it) when the plugin is
        // a child of ours.
        let _listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let stream = UnixStream::connect(&socket).await.expect("connect");
        PeerCheck::for_plugin(&socket, euid(), std::process::id())
            .after_dial(&stream)
            .expect("the plugin itself");
        let mut plugin = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn");
        let err = PeerCheck::for_plugin(&socket, euid(), plugin.id())
            .after_dial(&stream)
            .expect_err("not the plugin");
        let _ = plugin.kill();
        let _ = plugin.wait();
        assert_eq!(
            err.reason,
            format!(
                "its peer (pid {}) is not the plugin's process ({}) or one of its descendants",
                std::process::id(),
                plugin.id()
            )
        );
    }

    #[test]
    fn a_directory_others_can_enter_is_refused() {
        let dir = tempfile::Builder::new()
            .prefix("obp-")
            .tempdir_in("/tmp")
            .expect("dir");
        let socket = dir.path().join("plugin.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let err = PeerCheck::new(&socket).before_dial().expect_err("open dir");
        assert!(err.reason.contains("not a private directory"), "{err}");
    }
}
