//! The socket (§5): a socket, mode 0600 or stricter, set before the
//! handshake.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use outboard_host::launch::Launched;

use crate::check::{Check, CheckName};

/// Looks at the socket the plugin announced.
pub(crate) fn check(launched: &Launched) -> Check {
    Check::of(CheckName::SocketPermissions, permissions(launched))
}

fn permissions(launched: &Launched) -> Result<String, String> {
    let socket = launched.socket();
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
            "the socket's mode is {mode:04o}; it must be 0600 or stricter, set before the handshake (§5)"
        ));
    }
    Ok(format!("a socket, mode {mode:04o}"))
}
