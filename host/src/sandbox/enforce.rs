//! The walls put up around one plugin process: decided in the host before
//! the fork ([`decide`]: what the machine offers, which fallback, which
//! refusal), then built in the child between fork and exec with system
//! calls only.
//!
//! In the child, in order: `no_new_privs` (always: a setuid program the
//! plugin runs gains nothing), the cgroups joined (so everything after is
//! charged to them), the resource limits, a network namespace of its own
//! for `network = "none"` or `"loopback"` (with `lo` up for the latter),
//! the Landlock domain of `filesystem` (its ruleset made before the fork),
//! for a plugin that stays root the capabilities that climb walls taken
//! away (bounding set, ambient and inheritable sets), and last the drop to another group and user (everything before needs
//! root), after which the parent-death signal, which the kernel clears on
//! a change of credentials, is set again.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;

use crate::config::{Network, SandboxSpec};
use crate::sandbox::cgroup::{self, Cgroup};
use crate::sandbox::detect::Offers;
use crate::sandbox::landlock;
use crate::sandbox::netns;
use crate::sandbox::plan::{Ids, Wall, decide};

/// What a plugin's sandbox left in the host: the walls as built, and the
/// cgroup, kept until the plugin has exited.
#[derive(Debug, Default)]
pub struct Walls {
    /// The walls, as [`plan`](super::plan) describes them.
    pub walls: Vec<Wall>,
    /// The instance's cgroup, if limits asked for one.
    pub cgroup: Option<Cgroup>,
    /// The uid and gid the plugin runs as, if the host dropped to them:
    /// what its runtime directory must belong to.
    pub ids: Option<(libc::uid_t, libc::gid_t)>,
}

/// Decides how `spec` is enforced on this machine and arranges for the
/// child of `cmd` to build it. The cgroup is made now; the rest happens in
/// the child. Errors name the plugin and the setting that cannot be had.
pub fn apply(
    plugin: &str,
    spec: &SandboxSpec,
    offers: &Offers,
    cmd: &mut std::process::Command,
) -> io::Result<Walls> {
    let decisions = decide(plugin, spec, offers)?;
    // Before the cgroup, so that a missing path leaves nothing to undo.
    let landlock = match (decisions.landlock, &spec.filesystem) {
        (Some(abi), Some(fs)) => Some(landlock::prepare(plugin, fs, abi, cmd)?),
        _ => None,
    };
    let cgroup = match &decisions.cgroup {
        Some(plan) => Some(Cgroup::create(plugin, spec, plan, offers).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("plugin {plugin:?}: cannot make its cgroup: {e}"),
            )
        })?),
        None => None,
    };
    let files: Vec<OwnedFd> = match &cgroup {
        Some(cgroup) => cgroup.procs_files()?,
        None => Vec::new(),
    };
    let raw = cgroup::raw(&files);
    let rlimits = decisions.rlimits.clone();
    let network = decisions.network;
    let ids = decisions.ids;
    let host_pid = std::process::id() as libc::pid_t;
    // A root plugin inside walls keeps root's files but not the
    // capabilities that climb walls.
    let walled = decisions.cgroup.is_some()
        || network.is_some()
        || landlock.is_some()
        || !rlimits.is_empty();
    let drop_caps = walled && offers.root && ids.is_none_or(|i| i.uid == 0);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only system calls (prctl, write, setrlimit, unshare, socket, ioctl,
    // close, setgroups, setgid, setuid, getppid, open, landlock_add_rule,
    // landlock_restrict_self, capget, capset) on values prepared before
    // the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Owned by the closure, so open until the command is dropped.
            let _keep = &files;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            cgroup::join(&raw)?;
            for &(resource, value) in &rlimits {
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            match network {
                Some(Network::None) => netns::unshare()?,
                Some(Network::Loopback) => {
                    netns::unshare()?;
                    netns::loopback_up()?;
                }
                _ => {}
            }
            if let Some(ruleset) = &landlock {
                ruleset.restrict()?;
            }
            if drop_caps {
                drop_wall_climbing_capabilities()?;
            }
            if let Some(ids) = ids {
                drop_to(ids, host_pid)?;
            }
            Ok(())
        });
    }
    Ok(Walls {
        walls: decisions.walls,
        cgroup,
        ids: ids.map(|i| (i.uid, i.gid)),
    })
}

/// The capabilities that would let a root plugin climb its walls: leave
/// its network namespace or mount over its files (`CAP_SYS_ADMIN`),
/// reconfigure the network (`CAP_NET_ADMIN`), raise its resource limits
/// (`CAP_SYS_RESOURCE`), trace other processes (`CAP_SYS_PTRACE`), open
/// files by handle around Landlock (`CAP_DAC_READ_SEARCH`), load code into
/// the kernel (`CAP_SYS_MODULE`, `CAP_BPF`, `CAP_PERFMON`), raw devices and
/// I/O (`CAP_MKNOD`, `CAP_SYS_RAWIO`), the clock, reboot, the kernel log,
/// security modules and checkpointing. Numbers from `linux/capability.h`.
const WALL_CLIMBING: [libc::c_int; 16] = [
    2,  // CAP_DAC_READ_SEARCH
    12, // CAP_NET_ADMIN
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    24, // CAP_SYS_RESOURCE
    25, // CAP_SYS_TIME
    27, // CAP_MKNOD
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
    34, // CAP_SYSLOG
    38, // CAP_PERFMON
    39, // CAP_BPF
    40, // CAP_CHECKPOINT_RESTORE
];

/// Removes [`WALL_CLIMBING`] from the bounding set (so that the plugin's
/// `execve` as root does not give them back) and clears the ambient and
/// inheritable sets, which could carry capabilities across it. A
/// capability this kernel does not know (`EINVAL`) is none to drop.
/// System calls only.
fn drop_wall_climbing_capabilities() -> io::Result<()> {
    /// `struct __user_cap_header_struct`.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    /// `struct __user_cap_data_struct`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    /// `_LINUX_CAPABILITY_VERSION_3`: two `Data`, 64 capabilities.
    const VERSION_3: u32 = 0x2008_0522;
    // SAFETY: prctl with constants; capget and capset on a header and a
    // two-element array laid out as the kernel's structs.
    unsafe {
        for cap in WALL_CLIMBING {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(io::Error::last_os_error());
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        data[0].inheritable = 0;
        data[1].inheritable = 0;
        if libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Drops the calling process to `ids` for good (supplementary groups, then
/// the group, then the user: each step needs the privilege the next one
/// gives up), then sets the parent-death signal again and checks that the
/// host is still its parent. System calls only.
fn drop_to(ids: Ids, host_pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: system calls on plain values; setgroups reads one gid.
    unsafe {
        if libc::setgroups(1, &ids.gid) != 0
            || libc::setgid(ids.gid) != 0
            || libc::setuid(ids.uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != host_pid {
            // ESRCH: the host is gone. A raw code allocates nothing
            // (and is all std hands the parent anyway).
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}
