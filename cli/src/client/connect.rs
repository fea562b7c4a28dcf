//! Connecting to the daemon: resolve the socket, dial it (bounded), check
//! that the process on the other end runs as us (or root), or shares its
//! socket with a group of ours on purpose, and hand the connection to
//! tonic. Every later redial is checked the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::control::v1::control_service_client::ControlServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::errors::{dial_error, foreign_peer};

/// How long a dial may take: a daemon answers at once or not at all.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call that should answer at once (a status) may take: a
/// stopped or wedged daemon still accepts connections into its backlog, so
/// only a deadline on the call tells the person waiting.
pub(crate) const PROMPT_CALL: Duration = Duration::from_secs(10);

/// A connection to a running daemon.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// Its control socket, for messages.
    pub(crate) socket: PathBuf,
    /// The control API.
    pub(crate) rpc: ControlServiceClient<Channel>,
}

impl Daemon {
    /// Connects to the daemon on `explicit` (`--control-socket`), else on
    /// the default socket; the error says how to start one when none
    /// listens.
    pub(crate) async fn connect(explicit: Option<&Path>) -> anyhow::Result<Daemon> {
        let socket = outboard_daemon::socket::resolve(explicit)?;
        // A daemon of another user is trusted only on a socket someone
        // named: the default path could be one another user planted.
        let named = explicit.is_some()
            || std::env::var_os(outboard_daemon::socket::ENV_CONTROL_SOCKET)
                .is_some_and(|v| !v.is_empty());
        let first = dial(&socket, named)
            .await
            .map_err(|e| dial_error(&socket, e))?;
        // The first connection is the one just checked; a redial (after
        // the daemon restarted, say) is checked again in `dial`.
        let first = Arc::new(Mutex::new(Some(first)));
        let path = socket.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let (path, first) = (path.clone(), first.clone());
            async move {
                let ready = first.lock().ok().and_then(|mut f| f.take());
                let stream = match ready {
                    Some(stream) => stream,
                    None => dial(&path, named).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        // The URI is required by the API but unused: the connector always
        // dials the socket.
        let channel = Endpoint::from_static("http://outboard.daemon")
            .connect_with_connector(connector)
            .await
            .map_err(|e| anyhow::anyhow!("{}", super::errors::chain(&e)))?;
        Ok(Daemon {
            socket,
            rpc: ControlServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        })
    }
}

impl Daemon {
    /// `call`'s answer, or an error saying the daemon does not answer if
    /// none comes within [`PROMPT_CALL`].
    pub(crate) async fn promptly<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(PROMPT_CALL, call).await {
            Ok(answer) => answer.map_err(|s| super::call_error(&self.socket, &s)),
            Err(_) => anyhow::bail!(
                "the outboard daemon at {} does not answer within {} (is it stopped, or \
                 overloaded?)",
                self.socket.display(),
                humantime::format_duration(PROMPT_CALL)
            ),
        }
    }
}

/// Dials `socket` and checks the peer: a daemon of another user (a socket
/// planted where ours should be) would be sent our contexts, environment
/// included, so it is refused before anything is written, unless `named`
/// and [`shared_with_us`].
async fn dial(socket: &Path, named: bool) -> std::io::Result<UnixStream> {
    let stream = tokio::time::timeout(DIAL_TIMEOUT, UnixStream::connect(socket))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}",
                    humantime::format_duration(DIAL_TIMEOUT)
                ),
            )
        })??;
    let peer = stream.peer_cred()?.uid();
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if peer != me && peer != 0 && !(named && shared_with_us(socket, peer)) {
        return Err(foreign_peer(peer));
    }
    Ok(stream)
}

/// True if the daemon running as `peer` shares `socket` with a group of
/// ours on purpose (`outboard up --control-group`): the socket is its own,
/// in one of our groups and open to that group, and its directory is its
/// own and writable by nobody else, and nothing above it belongs to a third
/// user, so no third user can have put it there.
fn shared_with_us(socket: &Path, peer: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(file), Some(Ok(dir))) = (
        std::fs::symlink_metadata(socket),
        socket.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    file.uid() == peer
        && file.mode() & 0o060 == 0o060
        && in_our_groups(file.gid())
        && dir.is_dir()
        && dir.uid() == peer
        && dir.mode() & 0o022 == 0
        && socket.parent().is_some_and(|d| {
            outboard_daemon::control_socket::untrusted_ancestor(d, &[me, peer]).is_none()
        })
}

/// True if `gid` is our effective group or one of our supplementary ones.
fn in_our_groups(gid: u32) -> bool {
    // SAFETY: getegid cannot fail and touches no memory.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 1024];
    // SAFETY: the buffer holds `groups.len()` entries, as the call is told.
    let count = unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) };
    usize::try_from(count).is_ok_and(|n| groups[..n.min(groups.len())].contains(&gid))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, chown};

    use super::*;

    /// A daemon's directory and socket file, owned by `owner`, in `group`.
    fn layout(
        owner: u32,
        group: u32,
        dir_mode: u32,
        sock_mode: u32,
    ) -> (tempfile::TempDir, PathBuf) {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("run");
        std::fs::create_dir(&dir).expect("dir");
        let socket = dir.join("control.sock");
        std::fs::write(&socket, b"").expect("file");
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(sock_mode))
            .expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode)).expect("chmod");
        chown(&socket, Some(owner), Some(group)).expect("chown");
        chown(&dir, Some(owner), Some(group)).expect("chown");
        (base, socket)
    }

    #[test]
    fn another_users_daemon_is_trusted_only_on_a_socket_it_shares_with_our_group() {
        // SAFETY: getegid cannot fail and touches no memory.
        let (ours, peer) = (unsafe { libc::getegid() }, 4242);
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: only root can give files to another uid");
            return;
        }
        let (_keep, shared) = layout(peer, ours, 0o710, 0o660);
        assert!(shared_with_us(&shared, peer), "the --control-group layout");
        for (why, dir_mode, sock_mode, group, owner) in [
            ("socket closed to the group", 0o710, 0o600, ours, peer),
            ("directory writable by the group", 0o770, 0o660, ours, peer),
            ("a group that is not ours", 0o710, 0o660, 4243, peer),
            ("files of a third user", 0o710, 0o660, ours, 4244),
        ] {
            let (_keep, socket) = layout(owner, group, dir_mode, sock_mode);
            assert!(!shared_with_us(&socket, peer), "{why}");
        }
    }
}
