//! Who is on the other end of a control connection, and whether they may
//! be: the kernel's record of the connecting process (`SO_PEERCRED`: uid,
//! gid, pid; `SO_PEERGROUPS`: its supplementary groups), taken when it
//! connected, checked against the daemon's uid and the allowed group.
//!
//! The socket's mode already keeps other users out; this check also holds
//! when the mode does not (a process with `CAP_DAC_OVERRIDE`, such as
//! root, or a socket whose mode someone loosened).

use std::os::fd::AsRawFd;

use crate::control_socket::{Group, group_name};

/// The connecting process, as the kernel recorded it at `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its pid, when the kernel knows it (not across pid namespaces).
    pub pid: Option<i32>,
    /// Its supplementary groups (empty where the kernel cannot say).
    pub groups: Vec<u32>,
}

impl Peer {
    /// The credentials of the process at the other end of `stream`.
    pub(crate) fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().filter(|&pid| pid > 0),
            groups: supplementary_groups(stream.as_raw_fd()),
        })
    }
}

/// Who may use the control socket: the daemon's uid, and the members of
/// one group if the operator allowed one.
#[derive(Debug, Clone)]
pub struct Access {
    /// The daemon's effective uid.
    pub uid: u32,
    /// The allowed group.
    pub group: Option<Group>,
}

impl Access {
    /// This process's uid, and `group`.
    pub fn for_this_process(group: Option<Group>) -> Access {
        // SAFETY: geteuid cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() };
        Access { uid, group }
    }

    /// Whether `peer` may use the socket; if not, why, in words that name
    /// the uid refused and who is admitted.
    pub fn admit(&self, peer: &Peer) -> Result<(), String> {
        if peer.uid == self.uid {
            return Ok(());
        }
        let admitted = match &self.group {
            Some(group) if peer.gid == group.gid || peer.groups.contains(&group.gid) => {
                return Ok(());
            }
            Some(group) => format!(
                "uid {} (the daemon's) and members of group {} (gid {})",
                self.uid, group.name, group.gid
            ),
            None => format!(
                "only uid {} (the daemon's); start it with --control-group to admit a group",
                self.uid
            ),
        };
        let pid = peer
            .pid
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        let group = group_name(peer.gid).unwrap_or_else(|| peer.gid.to_string());
        Err(format!(
            "uid {uid}{pid}, group {group}, is refused: this daemon's control socket admits \
             {admitted}",
            uid = peer.uid
        ))
    }
}

/// `SO_PEERGROUPS` (Linux 4.13): sparc numbers it apart.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x003d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the peer of the Unix socket `fd`; empty if
/// the kernel cannot say (then only the primary gid counts).
fn supplementary_groups(fd: libc::c_int) -> Vec<u32> {
    // NGROUPS_MAX is 65536; start small, grow once to what the kernel asks.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
            .unwrap_or(libc::socklen_t::MAX);
        // SAFETY: `groups` is valid for `len` bytes; the kernel writes at
        // most that and says how much it wrote (or needs) in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return groups;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Vec::new();
        }
        groups.resize(count.min(65_536), 0);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(4242),
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn the_daemons_uid_is_admitted_and_another_is_refused_saying_who_and_why() {
        let access = Access {
            uid: 1000,
            group: None,
        };
        assert!(access.admit(&peer(1000, 1000, &[])).is_ok());
        let err = access.admit(&peer(1001, 1001, &[])).expect_err("refused");
        assert!(err.starts_with("uid 1001 (pid 4242)"), "{err}");
        assert!(err.contains("admits only uid 1000 (the daemon's)"), "{err}");
        assert!(err.contains("--control-group"), "{err}");
    }

    #[test]
    fn a_member_of_the_allowed_group_is_admitted_by_primary_or_supplementary_gid() {
        let access = Access {
            uid: 1000,
            group: Some(Group {
                name: "ops".into(),
                gid: 500,
            }),
        };
        assert!(access.admit(&peer(1001, 500, &[])).is_ok());
        assert!(access.admit(&peer(1002, 1002, &[20, 500])).is_ok());
        let err = access.admit(&peer(1003, 1003, &[20])).expect_err("refused");
        assert!(err.contains("members of group ops (gid 500)"), "{err}");
    }

    #[tokio::test]
    async fn the_kernel_names_this_process_at_both_ends_of_a_pair() {
        let (a, _b) = tokio::net::UnixStream::pair().expect("pair");
        let me = Peer::of(&a).expect("credentials");
        // SAFETY: these calls cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((me.uid, me.gid), (uid, gid));
        assert_eq!(me.pid, Some(std::process::id() as i32));
    }
}
