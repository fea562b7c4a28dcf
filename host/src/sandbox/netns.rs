//! A network namespace of the plugin's own, made in the child before exec:
//! `network = "none"` leaves it empty (even `lo` down), `"loopback"` brings
//! `lo` up. The host still reaches the plugin: its socket is a path in the
//! filesystem, which no network namespace hides.

use std::io;

/// Moves the calling process into a new, empty network namespace.
pub(crate) fn unshare() -> io::Result<()> {
    // SAFETY: unshare with a flag has no memory-safety preconditions.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings the loopback interface up in the calling process's namespace:
/// `SIOCGIFFLAGS` then `SIOCSIFFLAGS` with `IFF_UP` on a datagram socket.
/// System calls only, for use between fork and exec.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket, two ioctls on a zeroed ifreq whose name is set from
    // a static buffer, and a close; nothing allocates.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if result == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if result != 0 {
            return Err(err);
        }
    }
    Ok(())
}
