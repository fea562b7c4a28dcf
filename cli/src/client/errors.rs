//! Why the daemon could not be reached, or refused a call, in words a
//! person can act on. What the daemon says is passed on as it said it (its
//! messages name the plugin, file or field); `main` escapes it.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tonic::{Code, Status};

/// A daemon's socket whose process runs as another user.
#[derive(Debug, thiserror::Error)]
#[error(
    "the process listening there runs as {who}, not as you; refusing to send it anything \
     (is the socket in a directory another user controls?)"
)]
pub(super) struct ForeignPeer {
    /// The peer's user, by name where it has one.
    who: String,
}

/// The dial error for a peer running as `uid`.
pub(super) fn foreign_peer(uid: u32) -> std::io::Error {
    std::io::Error::new(ErrorKind::PermissionDenied, ForeignPeer { who: user(uid) })
}

/// What a failed dial of `socket` means for the person who typed the
/// command.
pub(super) fn dial_error(socket: &Path, err: std::io::Error) -> anyhow::Error {
    let path = socket.display();
    if err.get_ref().is_some_and(|e| e.is::<ForeignPeer>()) {
        return anyhow::anyhow!("the outboard daemon socket {path}: {err}");
    }
    match err.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => no_daemon(socket),
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied connecting to {path}: {}; only that user (or the group the \
             daemon allows) may use it. Start your own with `outboard up --config FILE`, or \
             point --control-socket / OUTBOARD_CONTROL_SOCKET at yours",
            owner(socket)
        ),
        _ => anyhow::anyhow!("cannot connect to the outboard daemon at {path}: {err}"),
    }
}

/// Nobody listens on `socket`.
pub(super) fn no_daemon(socket: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no outboard daemon is listening on {}; start one with `outboard up --config FILE` \
         (or point --control-socket / OUTBOARD_CONTROL_SOCKET at a running one)",
        socket.display()
    )
}

/// A call the daemon refused or that did not reach it, as an error.
pub(crate) fn call_error(socket: &Path, status: &Status) -> anyhow::Error {
    let path = socket.display();
    let message = status.message();
    if is_connection_lost(status) {
        if is_gone(status) {
            return no_daemon(socket);
        }
        return anyhow::anyhow!(
            "the connection to the outboard daemon at {path} was lost (did it stop?): {}",
            chain(status)
        );
    }
    match status.code() {
        // The daemon's own words name the plugin, the file or the field.
        Code::NotFound
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::AlreadyExists => anyhow::anyhow!("{message}"),
        Code::Unavailable => anyhow::anyhow!("the outboard daemon at {path}: {message}"),
        Code::Unimplemented => anyhow::anyhow!(
            "the outboard daemon at {path} does not serve this call; is it a different \
             outboard version? ({message})"
        ),
        Code::Cancelled => {
            anyhow::anyhow!("the call to the outboard daemon at {path} was cancelled")
        }
        code => anyhow::anyhow!("the outboard daemon at {path} answered {code:?}: {message}"),
    }
}

/// True if `status` comes from the transport (the daemon went away or
/// could not be redialled), not from the daemon.
fn is_connection_lost(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// True if the redial found nobody listening.
fn is_gone(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            )
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// An error and its sources on one line: transport errors keep the useful
/// part ("Connection refused") in their source chain.
pub(super) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// Who owns `socket` (or, when it cannot be looked at, its directory).
fn owner(socket: &Path) -> String {
    let looked = std::fs::metadata(socket)
        .map(|m| ("the socket", m))
        .or_else(|_| {
            let dir = socket.parent().unwrap_or(Path::new("/"));
            std::fs::metadata(dir).map(|m| ("its directory", m))
        });
    match looked {
        Ok((what, meta)) => format!("{what} belongs to {}", user(meta.uid())),
        Err(_) => "its owner cannot be looked up".to_owned(),
    }
}

/// `name (uid N)`, or `uid N` for a uid without a name.
fn user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("user {name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The login name of `uid`, from the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to live memory of the size given; the
    // strings getpwuid_r writes point into `buf`, read before it is freed.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_daemon_says_how_to_start_one() {
        let err = dial_error(
            Path::new("/run/x/control.sock"),
            std::io::Error::from(ErrorKind::NotFound),
        );
        assert_eq!(
            err.to_string(),
            "no outboard daemon is listening on /run/x/control.sock; start one with \
             `outboard up --config FILE` (or point --control-socket / OUTBOARD_CONTROL_SOCKET \
             at a running one)"
        );
        let refused = dial_error(
            Path::new("/s"),
            std::io::Error::from(ErrorKind::ConnectionRefused),
        );
        assert!(refused.to_string().starts_with("no outboard daemon"));
    }

    #[test]
    fn permission_denied_names_the_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("control.sock");
        std::fs::write(&socket, "").expect("file");
        let err = dial_error(&socket, std::io::Error::from(ErrorKind::PermissionDenied));
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        let text = err.to_string();
        assert!(
            text.starts_with("permission denied connecting to"),
            "{text}"
        );
        assert!(text.contains("the socket belongs to user"), "{text}");
        assert!(text.contains(&format!("(uid {me})")), "{text}");
    }

    #[test]
    fn a_foreign_peer_is_named_and_refused() {
        let err = dial_error(Path::new("/s"), foreign_peer(4242));
        let text = err.to_string();
        assert!(text.contains("runs as uid 4242, not as you"), "{text}");
    }

    #[test]
    fn the_daemons_own_words_pass_through() {
        let socket = Path::new("/s");
        let err = call_error(socket, &Status::not_found("no plugin named ghost"));
        assert_eq!(err.to_string(), "no plugin named ghost");
        let err = call_error(socket, &Status::permission_denied("uid 7 may not"));
        assert_eq!(err.to_string(), "uid 7 may not");
        let err = call_error(socket, &Status::unimplemented(""));
        assert!(err.to_string().contains("different outboard version"));
    }
}
