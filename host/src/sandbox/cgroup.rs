//! A plugin instance's own cgroup: made before the spawn, limits written,
//! the child placed in it before exec, removed once the plugin has exited.
//!
//! v2 when the unified hierarchy offers `memory`, `pids` and `cpu` and the
//! host may write there; otherwise one directory per v1 controller asked
//! for. Each directory is made under the host's own cgroup (a nested one
//! in a container), named `outboard-<plugin>-<host pid>-<n>` so that two
//! hosts, or two instances of one plugin, never share one.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::SandboxSpec;
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
        let name = name(plugin);
        if plan.kind == CgroupKind::V2 {
            let own = offers
                .cgroup_v2
                .as_ref()
                .map(|v2| v2.own.clone())
                .ok_or_else(|| io::Error::other("no cgroup v2 hierarchy"))?;
            return Cgroup::create_v2(&own, &name, spec, plan);
        }
        let mut cgroup = Cgroup {
            kind: CgroupKind::V1,
            dirs: Vec::new(),
            memory: None,
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

    /// The directories, for tests and reports.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Kills what is left in the cgroup and removes its directories,
    /// waiting (blocking, up to [`REMOVE_WAIT`] each) for the killed to be
    /// gone. Members that outlived the plugin are what the cgroup was for:
    /// none may stay behind unlimited once it is gone.
    pub fn remove(&mut self) {
        for dir in self.dirs.drain(..).rev() {
            if let Err(err) = remove_dir(&dir) {
                tracing::warn!("cannot remove the cgroup {}: {err}", dir.display());
            }
        }
    }
}

/// How long a cgroup's killed members have to be gone before its removal
/// is given up (and left to the next host's sweep).
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// Kills every member of the cgroup `dir` until it is empty, then removes
/// it. A directory already gone is fine.
fn remove_dir(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + REMOVE_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let procs = match fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(procs) => procs,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is
            // a member of this plugin's cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
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

/// Removes, once per process, the cgroups a host that died left behind
/// (a SIGKILLed host cannot remove its own): in each hierarchy this host
/// makes cgroups in, those named `outboard-<plugin>-<pid>-<n>` whose
/// host pid is not a live process, their members killed first. A pid
/// reused by another process since keeps its cgroup until a later sweep.
fn sweep_once(offers: &Offers) {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        for parent in parents(offers) {
            sweep(parent);
        }
    });
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
    let prefix = format!("outboard-{}-{host_pid}-", sanitize(plugin));
    parents(offers)
        .into_iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect()
}

/// The sweep of one parent cgroup directory.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(host) = name.to_str().and_then(host_pid) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let alive = unsafe { libc::kill(host, 0) } == 0
            || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        if alive {
            continue;
        }
        let dir = entry.path();
        match remove_dir(&dir) {
            Ok(()) => tracing::info!(
                "removed the cgroup {} left by a host that died",
                dir.display()
            ),
            Err(err) => tracing::warn!("cannot remove the stale cgroup {}: {err}", dir.display()),
        }
    }
}

/// The host pid in a cgroup name this module made, `outboard-<plugin>-<pid>-<n>`.
fn host_pid(name: &str) -> Option<libc::pid_t> {
    let rest = name.strip_prefix("outboard-")?;
    let mut fields = rest.rsplitn(3, '-');
    let _n: u64 = fields.next()?.parse().ok()?;
    let pid = fields.next()?.parse().ok()?;
    let _plugin = fields.next()?;
    Some(pid).filter(|&p| p > 0)
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

/// A new cgroup's name: `outboard-<plugin>-<host pid>-<n>`, the plugin's
/// name kept to characters a directory name and a later parse take.
fn name(plugin: &str) -> String {
    format!(
        "outboard-{}-{}-{}",
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

    #[test]
    fn names_carry_the_host_pid_back() {
        let made = name("my-plugin/../x y");
        assert!(made.starts_with("outboard-my-plugin_.._x_y-"), "{made}");
        assert_eq!(host_pid(&made), Some(std::process::id() as libc::pid_t));
        assert_eq!(host_pid("outboard-a-b-12-3"), Some(12));
        assert_eq!(host_pid("outboard-12-3"), None, "no plugin");
        assert_eq!(host_pid("outboard-p-x-3"), None);
        assert_eq!(host_pid("other-p-12-3"), None);
        assert_eq!(host_pid("outboard-p-0-3"), None);
    }

    /// A pid no process has: one that just exited and was reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        pid
    }

    #[test]
    fn a_dead_hosts_cgroups_are_swept_with_what_is_left_in_them() {
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
        let stale = parent.join(format!("outboard-swept-{}-0", dead_pid()));
        let live = parent.join(format!("outboard-kept-{}-0", std::process::id()));
        for dir in [&stale, &live] {
            fs::create_dir(dir).expect("mkdir");
        }
        // A leftover of the dead host's plugin, still running in it.
        let mut leftover = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn");
        write_file(&stale, "cgroup.procs", &leftover.id().to_string()).expect("join");
        sweep(&parent);
        assert!(!stale.exists(), "a dead host's cgroup is removed");
        let status = leftover.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "what was left in it is killed"
        );
        assert!(live.exists(), "a live host's cgroup is kept");
        remove_dir(&live).expect("remove");
    }
}
