//! Where `NOTIFY_SOCKET` points, and one datagram sent there.
//!
//! systemd gives either a filesystem path (`/run/systemd/notify`) or a
//! socket in the abstract namespace written `@name` (its user manager and
//! containers use those). The `sd-notify` crate's own sender passes the
//! variable to `connect` as a path, which would look for a file named
//! `@name`, so the address is resolved here; the crate still formats every
//! message.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The service manager's socket, as `NOTIFY_SOCKET` named it.
#[derive(Debug, Clone)]
pub(crate) struct Address {
    /// Where datagrams go.
    addr: SocketAddr,
    /// The variable's value, for messages.
    shown: String,
}

impl Address {
    /// `value` resolved: `@name` is the abstract socket `name`, an absolute
    /// path is a socket on disk; anything else (a relative path, a `vsock:`
    /// address) is refused with a message that says which forms work.
    pub(crate) fn parse(value: &OsStr) -> io::Result<Address> {
        let bytes = value.as_bytes();
        let shown = value.to_string_lossy().into_owned();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            Some(b'/') => SocketAddr::from_pathname(value)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "NOTIFY_SOCKET={shown:?} is neither an absolute path nor an abstract \
                         socket (@name); no other form is supported"
                    ),
                ));
            }
        };
        Ok(Address { addr, shown })
    }

    /// The variable's value, for messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Sends `message` as one datagram, from a fresh socket (the manager
    /// may have re-created its own since the last one: `systemctl
    /// daemon-reexec`). Never blocks: a manager whose queue is full gets
    /// an error (`WouldBlock`), not a stalled daemon.
    pub(crate) fn send(&self, message: &str) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        socket.connect_addr(&self.addr)?;
        let sent = socket.send(message.as_bytes())?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("only {sent} of {} bytes were sent", message.len()),
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Receives one datagram, waiting at most a few seconds.
    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_socket_receives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let address = Address::parse(path.as_os_str()).unwrap();
        address.send("READY=1\n").unwrap();
        assert_eq!(recv(&manager), "READY=1\n");
    }

    #[test]
    fn an_abstract_socket_receives() {
        let name = format!("outboard-test-notify-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let address = Address::parse(OsStr::new(&format!("@{name}"))).unwrap();
        address.send("STOPPING=1\n").unwrap();
        assert_eq!(recv(&manager), "STOPPING=1\n");
    }

    #[test]
    fn other_forms_are_refused_with_the_forms_that_work() {
        for bad in ["relative/notify", "vsock:2:1234", ""] {
            let err = Address::parse(OsStr::new(bad)).unwrap_err();
            assert!(
                err.to_string().contains("abstract socket (@name)"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn nobody_listening_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let address = Address::parse(dir.path().join("gone").as_os_str()).unwrap();
        assert!(address.send("READY=1\n").is_err());
    }
}
