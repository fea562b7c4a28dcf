//! A plugin instance's own cgroup: made before the spawn, limits written,
//! the child placed in it before exec, removed once the plugin has exited.
//!
//! v2 when the unified hierarchy offers `memory`, `pids` and `cpu` and the
//! host may write there; otherwise one directory per v1 controller asked
//! for. Each directory is made under the host's own cgroup (a nested one
//! in a container), named `outboard-<plugin>-<host pid>-<host id>-<n>` so
//! that two hosts, or two instances of one plugin, never share one.
//!
//! The host id is random, and names the host's cgroup lock,
//! `outboard-cg-<host id>.lock` in the runtime base, which the host
//! `flock`s for its whole life: the kernel lets go when it dies, however it
//! dies. A later host sweeps a cgroup only if it can take that lock. The
//! pid in the name is for people: across pid namespaces sharing one
//! hierarchy it means nothing.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::SandboxSpec;
use crate::launch::runtime_dir::{self, take_abandoned_lock};
use crate::sandbox::detect::Offers;
use crate::sandbox::plan::{CgroupKind, CgroupPlan};

/// The CFS period the CPU quota is a share of (100 ms, the kernel's
/// default).
const CPU_PERIOD_US: u64 = 100_000;

/// Numbers instances' cgroups within this host.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// An instance's cgroup: one directory (v2) or one per controller (v1).
#[derive(Debug)]
pub struct Cgroup {
    kind: CgroupKind,
    /// The directories, the memory controller's first when it has one.
    dirs: Vec<PathBuf>,
    /// The directory holding the memory controller's files, and the
    /// limit written there, if memory is limited.
    memory: Option<(PathBuf, u64)>,
    /// Its hold on the host's cgroup lock, let go once every directory is
    /// gone (kept for ever if one could not be removed, so that the lock
    /// file stays for the next host's sweep).
    hold: Option<HostHold>,
}

impl Cgroup {
    /// Makes `plugin`'s cgroup as `plan` decided, with `spec`'s limits.
    pub(crate) fn create(
        plugin: &str,
        spec: &SandboxSpec,
        plan: &CgroupPlan,
        offers: &Offers,
    ) -> io::Result<Cgroup> {
        sweep_once(offers);
        let hold = HostHold::take(&HOST_LOCK)?;
        let name = name(plugin, &hold.id);
        if plan.kind == CgroupKind::V2 {
            let own = offers
                .cgroup_v2
                .as_ref()
                .map(|v2| v2.own.clone())
                .ok_or_else(|| io::Error::other("no cgroup v2 hierarchy"))?;
            return Cgroup::create_v2(&own, &name, spec, plan, hold);
        }
        let mut cgroup = Cgroup {
            kind: CgroupKind::V1,
            dirs: Vec::new(),
            memory: None,
            hold: Some(hold),
        };
        let controllers = [
            ("memory", plan.memory),
            ("pids", plan.pids),
            ("cpu", plan.cpu),
        ];
        for (controller, _) in controllers.into_iter().filter(|(_, on)| *on) {
            let v1 = offers
                .cgroup_v1(controller)
                .ok_or_else(|| io::Error::other(format!("no writable v1 {controller} cgroup")))?;
            let dir = v1.own.join(&name);
            fs::create_dir(&dir).map_err(|e| annotate(e, &dir))?;
            // Pushed at once, so that a failure below removes it.
            cgroup.dirs.push(dir.clone());
            match controller {
                "memory" => {
                    cgroup.limit_memory_v1(&dir, spec)?;
                    cgroup.memory = spec.memory.map(|limit| (dir, limit));
                }
                "pids" => write_limit(&dir, "pids.max", spec.pids)?,
                _ => {
                    write_file(&dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    let quota = spec.cpu_millis.map(|m| u64::from(m) * CPU_PERIOD_US / 1000);
                    write_limit(&dir, "cpu.cfs_quota_us", quota)?;
                }
            }
        }
        Ok(cgroup)
    }

    /// v1 memory: the limit, and the same for memory plus swap where the
    /// kernel accounts swap, so that swapping does not lift it.
    fn limit_memory_v1(&self, dir: &Path, spec: &SandboxSpec) -> io::Result<()> {
        write_limit(dir, "memory.limit_in_bytes", spec.memory)?;
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write_limit(dir, "memory.memsw.limit_in_bytes", spec.memory)?;
        }
        Ok(())
    }

    /// One v2 directory under `own`, the controllers enabled for children
    /// of `own` if they are not yet (the plan chose v2 only where that is
    /// allowed: `own` is the root, or hands them down already).
    fn create_v2(
        own: &Path,
        name: &str,
        spec: &SandboxSpec,
        plan: &CgroupPlan,
        hold: HostHold,
    ) -> io::Result<Cgroup> {
        let delegated = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
        let asked = [
            ("memory", plan.memory),
            ("pids", plan.pids),
            ("cpu", plan.cpu),
        ];
        let missing: Vec<String> = asked
            .iter()
            .filter(|(c, on)| *on && !delegated.split_whitespace().any(|d| d == *c))
            .map(|(c, _)| c)
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            write_file(own, "cgroup.subtree_control", &missing.join(" "))?;
        }
        let dir = own.join(name);
        fs::create_dir(&dir).map_err(|e| annotate(e, &dir))?;
        let cgroup = Cgroup {
            kind: CgroupKind::V2,
            dirs: vec![dir.clone()],
            memory: spec.memory.map(|limit| (dir.clone(), limit)),
            hold: Some(hold),
        };
        write_limit(&dir, "memory.max", spec.memory)?;
        if spec.memory.is_some() && dir.join("memory.swap.max").exists() {
            write_file(&dir, "memory.swap.max", "0")?;
        }
        write_limit(&dir, "pids.max", spec.pids)?;
        if let Some(millis) = spec.cpu_millis {
            let quota = u64::from(millis) * CPU_PERIOD_US / 1000;
            write_file(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        Ok(cgroup)
    }

    /// Each directory's `cgroup.procs`, opened now (before the fork) so
    /// that the child joins with one `write` each.
    pub(crate) fn procs_files(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|dir| {
                let path = dir.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| annotate(e, &path))
            })
            .collect()
    }

    /// The memory limit, if the kernel killed a process of the cgroup for
    /// going over it (`oom_kill` in v2's `memory.events`, in v1's
    /// `memory.oom_control`).
    pub fn out_of_memory(&self) -> Option<u64> {
        let (dir, limit) = self.memory.as_ref()?;
        let file = match self.kind {
            CgroupKind::V2 => "memory.events",
            CgroupKind::V1 => "memory.oom_control",
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
            .then_some(*limit)
    }

    /// Kills what is left in the cgroup and removes its directories,
    /// waiting (blocking, up to [`REMOVE_WAIT`] each) for the killed to be
    /// gone. Members that outlived the plugin are what the cgroup was for:
    /// none may stay behind unlimited once it is gone.
    pub fn remove(&mut self) {
        let mut all_gone = true;
        for dir in self.dirs.drain(..).rev() {
            if let Err(err) = remove_dir(&dir) {
                tracing::warn!("cannot remove the cgroup {}: {err}", dir.display());
                all_gone = false;
            }
        }
        match self.hold.take() {
            Some(hold) if !all_gone => std::mem::forget(hold),
            hold => drop(hold),
        }
    }
}

/// How long a cgroup's killed members have to be gone before its removal
/// is given up (and left to the next host's sweep).
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// Kills every member of the cgroup `dir` until it is empty, then removes
/// it. A directory already gone is fine. v2's `cgroup.kill` (Linux 5.14)
/// kills them all at once, pids unseen; elsewhere [`kill_members`].
fn remove_dir(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + REMOVE_WAIT;
    let mut pause = Duration::from_millis(1);
    let atomic = dir.join("cgroup.kill").exists();
    loop {
        let killed = if atomic {
            write_file(dir, "cgroup.kill", "1")
        } else {
            kill_members(dir)
        };
        match killed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// SIGKILLs the members `cgroup.procs` lists in `dir`, each only if it is
/// still a member once pinned: a pidfd is opened on each pid, then the list
/// is read again, and only a pid still listed is signalled, through its
/// pidfd. A pid that was reused in between names another process by then,
/// which its pidfd does not reach. A `0` (a member outside this pid
/// namespace) is never a pid to signal: `kill(0)` is our own process group.
fn kill_members(dir: &Path) -> io::Result<()> {
    let procs = dir.join("cgroup.procs");
    let pinned: Vec<(libc::pid_t, OwnedFd)> = members(&fs::read_to_string(&procs)?)
        .into_iter()
        .filter_map(|pid| pidfd_open(pid).map(|fd| (pid, fd)))
        .collect();
    if pinned.is_empty() {
        return Ok(());
    }
    let still = members(&fs::read_to_string(&procs)?);
    for (pid, fd) in pinned.iter().filter(|(pid, _)| still.contains(pid)) {
        // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if sent != 0 {
            tracing::debug!(
                "cannot kill {pid} in the cgroup {}: {}",
                dir.display(),
                io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// A pidfd on `pid`, if it names a live process (`None` too on a kernel
/// without pidfds, older than 5.3: then members outlive the sweep and
/// their cgroup stays, which is safer than a kill by a pid maybe reused).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with a pid and no flags returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The pids a `cgroup.procs` lists, without `0`s (members outside the
/// reader's pid namespace) or anything else that is not a process's pid.
fn members(procs: &str) -> Vec<libc::pid_t> {
    procs
        .lines()
        .filter_map(|p| p.trim().parse::<libc::pid_t>().ok())
        .filter(|&p| p > 0)
        .collect()
}

/// This host's cgroup lock: its id, the `flock`ed file (held open) and
/// its path.
#[derive(Debug)]
struct HostLock {
    id: String,
    path: PathBuf,
    _file: File,
}

/// The host's cgroup lock while any of its cgroups exists: taken in the
/// runtime base with the first, and, once the last is gone, its file
/// removed and the lock let go, so that a host leaves no lock file behind
/// (a later cgroup takes a new lock, with a new id).
#[derive(Debug, Default)]
struct HostLocks {
    /// The lock and how many cgroups hold it.
    held: std::sync::Mutex<Option<(HostLock, usize)>>,
}

/// This process's [`HostLocks`], in the runtime base.
static HOST_LOCK: HostLocks = HostLocks {
    held: std::sync::Mutex::new(None),
};

/// One cgroup's hold on the host's lock, given back when dropped.
#[derive(Debug)]
struct HostHold {
    /// The host id the cgroup's name carries.
    id: String,
    locks: &'static HostLocks,
}

impl HostHold {
    /// A hold on `locks`' lock, taken in the runtime base if none is held.
    fn take(locks: &'static HostLocks) -> io::Result<HostHold> {
        HostHold::take_in(locks, &runtime_dir::base())
    }

    /// A hold on `locks`' lock, taken in `base` if none is held.
    fn take_in(locks: &'static HostLocks, base: &Path) -> io::Result<HostHold> {
        let mut held = locks
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (lock, count) = match held.take() {
            Some(lock) => lock,
            None => {
                let lock = take_host_lock(base).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot take the host's cgroup lock: {e}"))
                })?;
                (lock, 0)
            }
        };
        let id = lock.id.clone();
        *held = Some((lock, count + 1));
        Ok(HostHold { id, locks })
    }
}

impl Drop for HostHold {
    fn drop(&mut self) {
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match held.take() {
            Some((lock, count)) if count > 1 => *held = Some((lock, count - 1)),
            // The last: the file goes while still locked, then the lock.
            Some((lock, _)) => {
                let _ = fs::remove_file(&lock.path);
            }
            None => {}
        }
    }
}

/// The lock file's name for host id `id`.
fn lock_name(id: &str) -> String {
    format!("outboard-cg-{id}.lock")
}

/// Makes and locks a new host lock in `base`: written and locked under a
/// temporary name, and only then given its own, so that a sweep never
/// finds it unlocked while the host lives.
fn take_host_lock(base: &Path) -> io::Result<HostLock> {
    let id = format!("{:016x}", rand::random::<u64>());
    let path = base.join(lock_name(&id));
    let new = base.join(format!("{}.new", lock_name(&id)));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&new)
        .map_err(|e| annotate(e, &new))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        let _ = fs::remove_file(&new);
        return Err(annotate(err, &new));
    }
    let written = file
        .write_all(std::process::id().to_string().as_bytes())
        .and_then(|()| fs::rename(&new, &path));
    if let Err(err) = written {
        let _ = fs::remove_file(&new);
        return Err(annotate(err, &path));
    }
    Ok(HostLock {
        id,
        path,
        _file: file,
    })
}

/// A host id as [`take_host_lock`] makes them: 16 lowercase hex digits.
fn is_host_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes, once per process, the cgroups hosts that died left behind (a
/// SIGKILLed host cannot remove its own): those, in each hierarchy this
/// host makes cgroups in, of a host whose lock in the runtime base is
/// this user's and nobody holds; their members are killed first.
fn sweep_once(offers: &Offers) {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| sweep(&parents(offers), &runtime_dir::base()));
}

/// Where this host makes cgroups: its own cgroup in each hierarchy.
fn parents(offers: &Offers) -> Vec<&Path> {
    let mut parents: Vec<&Path> = offers.cgroup_v1.iter().map(|c| c.own.as_path()).collect();
    parents.extend(offers.cgroup_v2.as_ref().map(|v2| v2.own.as_path()));
    parents
}

/// The cgroups that exist for `plugin`, made by the host whose pid is
/// `host_pid`, in every hierarchy a host on this machine makes them in:
/// none once the plugin has exited and its exit is known.
pub fn cgroups_of(plugin: &str, host_pid: u32, offers: &Offers) -> Vec<PathBuf> {
    let plugin = sanitize(plugin);
    cgroups(&parents(offers), |name| {
        parse_name(name).is_some_and(|n| n.plugin == plugin && n.pid == host_pid)
    })
}

/// The cgroups under `parents` whose names `wanted`.
fn cgroups(parents: &[&Path], wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    parents
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_str().is_some_and(&wanted))
        .map(|e| e.path())
        .collect()
}

/// The sweep of the cgroups under `parents` whose hosts' locks are in
/// `base`: for each lock there that this user owns and nobody holds (its
/// host is dead), held while its host's cgroups go; then the lock file
/// goes too, unless a cgroup stayed. A cgroup whose lock is elsewhere or
/// missing is left alone: nothing here says its host is dead.
fn sweep(parents: &[&Path], base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("outboard-cg-"))
            .and_then(|n| n.strip_suffix(".lock"))
            .filter(|id| is_host_id(id))
        else {
            continue;
        };
        let path = entry.path();
        let Some(lock) = take_abandoned_lock(&path) else {
            continue;
        };
        if !lock.metadata().is_ok_and(|m| m.uid() == me) {
            continue;
        }
        let mut left = false;
        for dir in cgroups(parents, |n| parse_name(n).is_some_and(|n| n.id == id)) {
            match remove_dir(&dir) {
                Ok(()) => tracing::info!(
                    "removed the cgroup {} left by a host that died",
                    dir.display()
                ),
                Err(err) => {
                    left = true;
                    tracing::warn!("cannot remove the stale cgroup {}: {err}", dir.display());
                }
            }
        }
        if !left && let Err(err) = fs::remove_file(&path) {
            tracing::debug!("cannot remove {}: {err}", path.display());
        }
    }
}

/// What a cgroup name this module made says.
#[derive(Debug, PartialEq)]
struct Name<'a> {
    plugin: &'a str,
    pid: u32,
    id: &'a str,
}

/// Reads `outboard-<plugin>-<pid>-<host id>-<n>`.
fn parse_name(name: &str) -> Option<Name<'_>> {
    let rest = name.strip_prefix("outboard-")?;
    let mut fields = rest.rsplitn(4, '-');
    let _n: u64 = fields.next()?.parse().ok()?;
    let id = fields.next().filter(|id| is_host_id(id))?;
    let pid = fields.next()?.parse().ok()?;
    let plugin = fields.next().filter(|p| !p.is_empty())?;
    Some(Name { plugin, pid, id })
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Joins the calling process to the cgroups whose `cgroup.procs` are
/// `files`. Runs in the forked child before exec: one `write` each, no
/// allocation.
pub(crate) fn join(files: &[RawFd]) -> io::Result<()> {
    for &fd in files {
        // SAFETY: writes two bytes from a static buffer to an open fd.
        if unsafe { libc::write(fd, b"0\n".as_ptr().cast(), 2) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The raw descriptors of `files`, for [`join`].
pub(crate) fn raw(files: &[OwnedFd]) -> Vec<RawFd> {
    files.iter().map(AsRawFd::as_raw_fd).collect()
}

/// A new cgroup's name: `outboard-<plugin>-<host pid>-<host id>-<n>`, the
/// plugin's name kept to characters a directory name and a later parse take.
fn name(plugin: &str, host_id: &str) -> String {
    format!(
        "outboard-{}-{}-{host_id}-{}",
        sanitize(plugin),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The plugin's name kept to characters a directory name takes.
fn sanitize(plugin: &str) -> String {
    plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `limit` into `dir/file`, if set.
fn write_limit(dir: &Path, file: &str, limit: Option<impl ToString>) -> io::Result<()> {
    match limit {
        Some(limit) => write_file(dir, file, &limit.to_string()),
        None => Ok(()),
    }
}

/// Writes `value` into `dir/file` (a cgroup file takes one write).
fn write_file(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let path = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| annotate(e, &path))
}

/// `err` with the path it concerns.
fn annotate(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::runtime_dir::tests::hold_lock_elsewhere;

    #[test]
    fn names_carry_the_host_id_back() {
        let made = name("my-plugin/../x y", "0123456789abcdef");
        assert!(made.starts_with("outboard-my-plugin_.._x_y-"), "{made}");
        assert_eq!(
            parse_name(&made),
            Some(Name {
                plugin: "my-plugin_.._x_y",
                pid: std::process::id(),
                id: "0123456789abcdef"
            })
        );
        let id = "00000000000000ff";
        assert_eq!(
            parse_name(&format!("outboard-a-b-12-{id}-3")).map(|n| (n.plugin, n.pid)),
            Some(("a-b", 12))
        );
        assert_eq!(
            parse_name(&format!("outboard-12-{id}-3")),
            None,
            "no plugin"
        );
        assert_eq!(
            parse_name("outboard-p-12-3"),
            None,
            "an older host's: no id"
        );
        assert_eq!(parse_name(&format!("outboard-p-x-{id}-3")), None);
        assert_eq!(parse_name("outboard-p-12-0123456789ABCDEF-3"), None);
        assert_eq!(parse_name(&format!("other-p-12-{id}-3")), None);
    }

    #[test]
    fn pid_0_and_junk_in_cgroup_procs_are_no_members() {
        assert_eq!(members("12\n0\n\n-3\nx\n 7 \n"), vec![12, 7]);
    }

    /// A pid no process has: one that just exited and was reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        pid
    }

    /// A `sleep` in the cgroup `dir`, standing for a plugin left in it.
    fn member_of(dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn");
        write_file(dir, "cgroup.procs", &child.id().to_string()).expect("join");
        child
    }

    #[test]
    fn only_cgroups_of_hosts_whose_lock_nobody_holds_are_swept() {
        let offers = crate::sandbox::detect();
        let Some(parent) = offers.cgroup_v1("pids").map(|c| c.own.clone()).or_else(|| {
            offers
                .cgroup_v2
                .as_ref()
                .filter(|v2| v2.writable)
                .map(|v2| v2.own.clone())
        }) else {
            eprintln!("skipped: no writable cgroup here");
            return;
        };
        let base = tempfile::Builder::new()
            .prefix("obc-")
            .tempdir_in("/tmp")
            .expect("base");
        let id = || format!("{:016x}", rand::random::<u64>());
        let (dead, elsewhere, unknown) = (id(), id(), id());
        // All three hosts' pids are dead here. `elsewhere` stands for a
        // live host in another pid namespace: it holds its lock. `unknown`
        // has no lock in this base.
        let dead_host = dead_pid();
        let dir =
            |plugin: &str, id: &str| parent.join(format!("outboard-{plugin}-{dead_host}-{id}-0"));
        let (stale, kept, foreign) = (
            dir("swept", &dead),
            dir("kept", &elsewhere),
            dir("foreign", &unknown),
        );
        for dir in [&stale, &kept, &foreign] {
            fs::create_dir(dir).expect("mkdir");
        }
        for id in [&dead, &elsewhere] {
            fs::write(base.path().join(lock_name(id)), dead_host.to_string()).expect("lock file");
        }
        let mut holder = hold_lock_elsewhere(&base.path().join(lock_name(&elsewhere)));
        let mut leftover = member_of(&stale);
        let mut live = member_of(&kept);
        sweep(&[parent.as_path()], base.path());
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(!stale.exists(), "a dead host's cgroup is removed");
        let status = leftover.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "what was left in it is killed"
        );
        assert!(
            !base.path().join(lock_name(&dead)).exists(),
            "its lock goes with its cgroups"
        );
        assert!(
            kept.exists(),
            "a live host's cgroup is kept, whatever its pid"
        );
        assert!(
            live.try_wait().expect("try_wait").is_none(),
            "what runs in it is left running"
        );
        assert!(
            foreign.exists(),
            "a cgroup whose lock is not here is left alone"
        );
        let _ = live.kill();
        let _ = live.wait();
        for dir in [&kept, &foreign] {
            remove_dir(dir).expect("remove");
        }
    }

    #[test]
    fn the_lock_file_stays_while_a_cgroup_holds_it_and_goes_with_the_last() {
        let base = tempfile::tempdir().expect("base");
        let locks: &'static HostLocks = Box::leak(Box::default());
        let first = HostHold::take_in(locks, base.path()).expect("first");
        let second = HostHold::take_in(locks, base.path()).expect("second");
        assert_eq!(first.id, second.id, "one lock for the host's cgroups");
        let path = base.path().join(lock_name(&first.id));
        assert!(path.exists());
        drop(first);
        assert!(path.exists(), "held by the second");
        assert!(take_abandoned_lock(&path).is_none(), "and still locked");
        drop(second);
        assert!(!path.exists(), "the last hold takes the file with it");
        assert_eq!(fs::read_dir(base.path()).expect("list").count(), 0);
        let again = HostHold::take_in(locks, base.path()).expect("again");
        assert!(
            base.path().join(lock_name(&again.id)).exists(),
            "a new lock"
        );
    }

    #[test]
    fn a_hosts_own_lock_is_held_while_it_lives() {
        let base = tempfile::Builder::new()
            .prefix("obc-")
            .tempdir_in("/tmp")
            .expect("base");
        let lock = take_host_lock(base.path()).expect("lock");
        let path = base.path().join(lock_name(&lock.id));
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            std::process::id().to_string()
        );
        assert!(take_abandoned_lock(&path).is_none(), "held");
        drop(lock);
        assert!(take_abandoned_lock(&path).is_some(), "let go when it dies");
    }
}
