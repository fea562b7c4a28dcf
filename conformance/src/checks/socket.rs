//! The socket (§5): a socket, mode 0600 or stricter, set before the
//! handshake.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use outboard_host::launch::Launched;

use crate::check::{Check, CheckName};

/// Looks at the socket the plugin announced.
pub(crate) fn check(launched: &Launched) -> Check {
    Check::of(CheckName::SocketPermissions, permissions(launched))
}

fn permissions(launched: &Launched) -> Result<String, String> {
    let mode = mode(launched.socket(), "the socket", "§5")?;
    Ok(format!("a socket, mode {mode:04o}"))
}

/// The mode of `socket` (`what`, in the error, which cites `section`): a
/// socket of mode 0600 or stricter, set before the handshake.
pub(crate) fn mode(socket: &Path, what: &str, section: &str) -> Result<u32, String> {
    let meta = std::fs::symlink_metadata(socket)
        .map_err(|e| format!("cannot stat {}: {e}", socket.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} is not a socket (mode {mode:04o})",
            socket.display()
        ));
    }
    if mode & !0o600 != 0 {
        return Err(format!(
            "{what}'s mode is {mode:04o}; it must be 0600 or stricter, set before the handshake ({section})"
        ));
    }
    Ok(mode)
}
