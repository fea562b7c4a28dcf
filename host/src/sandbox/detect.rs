//! What this machine offers a sandbox, found at runtime: nothing is
//! assumed from the distribution or the kernel version, because a
//! container, a hybrid cgroup mount or a locked-down sysctl changes the
//! answer on the same kernel.
//!
//! Every probe reads `/proc` and `/sys`, or tries the operation on a
//! throwaway thread (a network namespace), so detection has no lasting
//! effect on the host.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The cgroup v1 controllers a sandbox uses.
pub const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// What the machine offers, as found by [`detect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offers {
    /// The unified (v2) hierarchy, if mounted.
    pub cgroup_v2: Option<CgroupV2>,
    /// Each v1 controller of [`V1_CONTROLLERS`] that is mounted.
    pub cgroup_v1: Vec<CgroupV1>,
    /// The Landlock ABI version the kernel reports; `None` if the kernel
    /// lacks Landlock or it is disabled at boot.
    pub landlock_abi: Option<u32>,
    /// True if this process may create a network namespace (it was tried).
    pub network_namespace: bool,
    /// True if this process runs with the capability to administer the
    /// system (`CAP_SYS_ADMIN`), which creating a cgroup or a network
    /// namespace without a user namespace needs.
    pub privileged: bool,
    /// True if the host runs as root (effective uid 0), which dropping a
    /// plugin to another user or group needs.
    pub root: bool,
    /// True if unprivileged users may create user namespaces (and so
    /// network namespaces inside them).
    pub unprivileged_user_namespaces: bool,
}

/// The unified hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupV2 {
    /// Where it is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
    /// in a hybrid setup).
    pub mount: PathBuf,
    /// This process's cgroup, as a directory under the mount.
    pub own: PathBuf,
    /// The controllers available there (`cgroup.controllers`); on a hybrid
    /// mount those bound to v1 are missing.
    pub controllers: Vec<String>,
    /// The controllers it already hands down to children
    /// (`cgroup.subtree_control`).
    pub delegated: Vec<String>,
    /// True if this process may create a child cgroup of its own.
    pub writable: bool,
}

/// One mounted v1 controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupV1 {
    /// The controller: `memory`, `pids` or `cpu`.
    pub controller: String,
    /// Where its hierarchy is mounted.
    pub mount: PathBuf,
    /// This process's cgroup in it, as a directory under the mount.
    pub own: PathBuf,
    /// True if this process may create a child cgroup there.
    pub writable: bool,
}

impl Offers {
    /// True if a v2 cgroup can limit memory, processes and CPU here.
    pub fn cgroup_v2_usable(&self) -> bool {
        self.cgroup_v2.as_ref().is_some_and(|v2| {
            v2.writable
                && V1_CONTROLLERS
                    .iter()
                    .all(|c| v2.controllers.iter().any(|have| have == c))
        })
    }

    /// The writable v1 hierarchy of `controller`, if any.
    pub fn cgroup_v1(&self, controller: &str) -> Option<&CgroupV1> {
        self.cgroup_v1
            .iter()
            .find(|c| c.controller == controller && c.writable)
    }
}

/// Finds what this machine offers.
pub fn detect() -> Offers {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = cgroup_mounts(&mountinfo);
    let memberships = memberships(&own);
    let cgroup_v2 = mounts
        .iter()
        .find(|m| m.v2)
        .map(|m| v2_at(&m.path, membership(&memberships, "")));
    let cgroup_v1 = V1_CONTROLLERS
        .iter()
        .filter_map(|&controller| {
            let mount = mounts
                .iter()
                .find(|m| !m.v2 && m.options.iter().any(|o| o == controller))?;
            let own = under(&mount.path, membership(&memberships, controller));
            Some(CgroupV1 {
                controller: controller.to_owned(),
                writable: writable(&own),
                mount: mount.path.clone(),
                own,
            })
        })
        .collect();
    Offers {
        cgroup_v2,
        cgroup_v1,
        landlock_abi: landlock_abi(),
        network_namespace: can_unshare_network(),
        privileged: has_sys_admin(),
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
        unprivileged_user_namespaces: unprivileged_user_namespaces(),
    }
}

/// A cgroup filesystem's mount.
#[derive(Debug, PartialEq, Eq)]
struct CgroupMount {
    path: PathBuf,
    /// True for `cgroup2`.
    v2: bool,
    /// The superblock options; for v1 they name the controllers.
    options: Vec<String>,
}

/// The cgroup mounts in `/proc/self/mountinfo`'s text. A line is
/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                path: PathBuf::from(unescape_mount(mount_point)),
                v2,
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount(path: &str) -> String {
    let mut out = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/self/cgroup`'s lines `ID:CONTROLLERS:PATH`, as (controllers,
/// path); the v2 line has no controllers.
fn memberships(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((controllers, path.to_owned()))
        })
        .collect()
}

/// This process's cgroup for `controller` ("" for v2), relative (no
/// leading `/`), so that it joins under the mount.
fn membership(memberships: &[(Vec<String>, String)], controller: &str) -> PathBuf {
    memberships
        .iter()
        .find(|(controllers, _)| {
            if controller.is_empty() {
                controllers.is_empty()
            } else {
                controllers.iter().any(|c| c == controller)
            }
        })
        .map(|(_, path)| PathBuf::from(path.trim_start_matches('/')))
        .unwrap_or_default()
}

/// `relative` under `mount`, without the trailing `/` an empty one adds.
fn under(mount: &Path, relative: PathBuf) -> PathBuf {
    if relative.as_os_str().is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(relative)
    }
}

/// The v2 hierarchy mounted at `mount`, seen from this process's cgroup.
fn v2_at(mount: &Path, own: PathBuf) -> CgroupV2 {
    let own = under(mount, own);
    let list = |file: &str| -> Vec<String> {
        std::fs::read_to_string(own.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    CgroupV2 {
        mount: mount.to_path_buf(),
        controllers: list("cgroup.controllers"),
        delegated: list("cgroup.subtree_control"),
        writable: writable(&own),
        own,
    }
}

/// True if this process may create entries in `dir` (`access(W_OK)`,
/// which a read-only mount or a cgroup owned by another user refuses).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads a NUL-terminated path and writes nothing.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// The Landlock ABI version, asked of the kernel with
/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, a zero size and the version
    // flag, the call only returns a number; it creates no descriptor.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).ok().filter(|&v| v > 0)
}

/// True if a network namespace can be created: tried on a throwaway
/// thread, since `unshare(CLONE_NEWNET)` moves only the calling thread.
fn can_unshare_network() -> bool {
    std::thread::Builder::new()
        .name("outboard-netns-probe".into())
        // SAFETY: unshare with a flag changes only this thread's namespace;
        // the thread ends right after.
        .spawn(|| unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0)
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or(false)
}

/// True if the effective capabilities include `CAP_SYS_ADMIN` (bit 21).
fn has_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// True if user namespaces are allowed for everyone: a non-zero
/// `user.max_user_namespaces`, and Debian's
/// `kernel.unprivileged_userns_clone` not 0 where it exists.
fn unprivileged_user_namespaces() -> bool {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    read("/proc/sys/user/max_user_namespaces").is_some_and(|n| n > 0)
        && read("/proc/sys/kernel/unprivileged_userns_clone") != Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - cgroup2 none rw
";

    #[test]
    fn hybrid_mounts_are_told_apart() {
        let mounts = cgroup_mounts(HYBRID);
        assert_eq!(mounts.len(), 5);
        assert!(!mounts[0].v2);
        assert!(mounts[1].options.iter().any(|o| o == "memory"));
        assert_eq!(mounts[3].path, Path::new("/sys/fs/cgroup/unified"));
        assert!(mounts[3].v2);
        assert_eq!(mounts[4].path, Path::new("/mnt/with space"));
    }

    #[test]
    fn memberships_find_v1_and_v2_paths() {
        let own = memberships("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(membership(&own, "memory"), Path::new("a/b"));
        assert_eq!(membership(&own, "cpu"), Path::new(""));
        assert_eq!(membership(&own, ""), Path::new("user.slice"));
        assert_eq!(membership(&own, "pids"), Path::new(""));
    }

    /// Prints what this machine offers (`cargo test -p outboard-host
    /// sandbox::detect -- --nocapture`), as docs/SECURITY.md records, and
    /// checks what holds on every Linux: the probes agree with each other.
    #[test]
    fn prints_what_this_machine_offers() {
        let offers = detect();
        println!(
            "{}",
            serde_json::to_string_pretty(&offers).expect("offers serialize")
        );
        if offers.cgroup_v2_usable() {
            assert!(offers.cgroup_v2.is_some());
        }
        for v1 in &offers.cgroup_v1 {
            assert!(v1.own.starts_with(&v1.mount), "{v1:?}");
        }
        if offers.privileged {
            assert!(offers.network_namespace, "CAP_SYS_ADMIN may unshare");
        }
    }
}
