//! The long-lived spawner thread, and the reaper of what plugins leave
//! behind.
//!
//! Spawning happens on one long-lived thread. Linux's `PR_SET_PDEATHSIG`
//! fires when the *thread* that forked the child exits, not the process, and
//! tokio's blocking-pool threads exit when idle: a plugin forked from one
//! would be killed a few seconds later for no reason.
//!
//! The host is a child subreaper (`PR_SET_CHILD_SUBREAPER`): processes a
//! plugin started and left behind are re-parented to the host rather than to
//! init, which in a container may never reap them. The same thread reaps
//! such orphans, but never a plugin itself nor a child in the host's own
//! process group (tokio waits on those, or the embedding program does), so
//! no other waiter in the host loses an exit status.
//!
//! Each plugin's group is also registered with the keeper (`keeper`), which
//! kills the groups left when the host dies.
//!
//! A plugin gets stdin, stdout and stderr and no other descriptor: whatever
//! the host inherited without close-on-exec (a shell's `3<file`, a
//! supervisor's socket) is marked close-on-exec in the child before exec.
//! The job's command keeps them: a redirection the user wrote on the
//! command line is meant for the command.

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::oneshot;

use crate::launch::keeper;
use crate::launch::process::group_alive;

/// Process groups of plugins spawned by this host whose members may still
/// need reaping.
static PLUGIN_GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// How often the spawner thread looks for orphans to reap when idle: it
/// reads only the host's list of children.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// Reaps the host's zombie children that nobody else waits for: those
/// outside the host's own process group that are not a plugin (tokio waits
/// on plugin leaders, and on job commands, which run in the host's group,
/// as do the children an embedding program spawns itself). Such are what
/// plugins leave behind: members of their groups, and helpers that moved to
/// groups of their own, re-parented to the host as a child subreaper. The
/// keeper is left to `keeper::check`, which waits for it to replace it.
/// Forgets plugin groups that are empty. Returns how many it reaped.
pub fn reap_orphans() -> usize {
    let Ok(mut groups) = PLUGIN_GROUPS.lock() else {
        return 0;
    };
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() } as u32;
    let mut reaped = 0;
    for pid in children() {
        let Some(stat) = ProcStat::read(pid) else {
            continue;
        };
        let plugin = stat.pgrp == pid && groups.contains(&pid);
        if stat.zombie && stat.pgrp != own_group && !plugin && !keeper::is_keeper(pid) {
            let mut status = 0;
            // SAFETY: waitpid on a specific zombie child of ours.
            if unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) } > 0 {
                reaped += 1;
            }
        }
    }
    groups.retain(|&pgid| {
        let alive = group_alive(pgid);
        if !alive {
            keeper::forget(pgid);
        }
        alive
    });
    reaped
}

/// The host's children: listed per thread in `/proc/self/task/*/children`
/// (a few small files, not a scan of every process), or, on a kernel
/// without that file, found by scanning `/proc` for our pid as parent.
fn children() -> Vec<u32> {
    let listed = std::fs::read_dir("/proc/self/task").ok().and_then(|tasks| {
        let mut pids = Vec::new();
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).ok()?;
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        Some(pids)
    });
    if let Some(pids) = listed {
        return pids;
    }
    let me = std::process::id();
    processes_where(|stat| stat.ppid == me)
}

/// The pids of every process, zombies included, whose stat passes `keep`:
/// a scan of all of `/proc`.
fn processes_where(keep: impl Fn(&ProcStat) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ProcStat::read(pid).is_some_and(|s| keep(&s)))
        .collect()
}

/// The fields of `/proc/<pid>/stat` the reaper needs.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// The parent's pid.
    pub ppid: u32,
    /// The process group id.
    pub pgrp: u32,
    /// True if the process has exited and awaits reaping.
    pub zombie: bool,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat`; `None` if the process is gone.
    pub fn read(pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may itself contain spaces
        // and parentheses, so parse from the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        Some(ProcStat {
            ppid,
            pgrp,
            zombie: state == "Z",
        })
    }
}

/// Whether `pid` is `root` or a descendant of it, by the parents in
/// `/proc` (a process gone meanwhile is not).
pub fn descends_from(mut pid: u32, root: u32) -> bool {
    // Bounded: a parent chain longer than this is not a plugin's.
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match ProcStat::read(pid) {
            Some(stat) if stat.ppid > 1 && stat.ppid != pid => pid = stat.ppid,
            _ => return false,
        }
    }
    false
}

/// The pids of every process, zombies included, in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    processes_where(|stat| stat.pgrp == pgid)
}

/// Replaces the keeper if it has exited (someone killed it).
fn check_keeper() {
    let groups = PLUGIN_GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    keeper::check(&groups);
}

/// A request to the spawner thread.
struct SpawnRequest {
    cmd: std::process::Command,
    /// True for a plugin, which leads a process group whose orphans the
    /// host reaps.
    plugin_group: bool,
    runtime: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The spawner thread's inbox; the thread lives as long as the process.
static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Spawns on the spawner thread, registering the new process group while
/// holding the group lock, so that the reaper never sees a child of this
/// host that is not yet known.
fn spawn_registered(req: SpawnRequest) {
    let mut groups = PLUGIN_GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // tokio's Command registers the child with the runtime's SIGCHLD
    // handling, so spawn inside that runtime.
    let _enter = req.runtime.enter();
    let mut cmd = req.cmd;
    if req.plugin_group {
        only_standard_descriptors(&mut cmd);
    }
    let child = tokio::process::Command::from(cmd).spawn();
    if req.plugin_group
        && let Some(pid) = child.as_ref().ok().and_then(Child::id)
    {
        keeper::register(pid, &groups);
        groups.insert(pid);
    }
    drop(groups);
    let _ = req.reply.send(child);
}

/// The most descriptors the fallback of [`only_standard_descriptors`]
/// looks at, when the soft `RLIMIT_NOFILE` is higher (or unlimited).
const MAX_FALLBACK_FDS: libc::rlim_t = 1 << 20;

/// Makes every descriptor above 2 close-on-exec in the child, just before
/// exec. Marked rather than closed: the standard library reports a failed
/// exec through a close-on-exec pipe of its own, which must stay open.
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11) does it in one call;
/// older kernels get a loop of `fcntl` up to the soft `RLIMIT_NOFILE`, read
/// here, before the fork, so the child only makes system calls.
fn only_standard_descriptors(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit.
    let upper = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(MAX_FALLBACK_FDS)
    } else {
        MAX_FALLBACK_FDS
    };
    let upper = libc::c_int::try_from(upper).unwrap_or(libc::c_int::MAX);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (close_range, fcntl); it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::CLOSE_RANGE_CLOEXEC;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, flags) == 0 {
                return Ok(());
            }
            for fd in 3..upper {
                let current = libc::fcntl(fd, libc::F_GETFD);
                if current >= 0 && current & libc::FD_CLOEXEC == 0 {
                    libc::fcntl(fd, libc::F_SETFD, current | libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}

/// Set in a host that runs under an init of its own (`outboard` as PID 1).
static UNDER_INIT: AtomicBool = AtomicBool::new(false);

/// Tells the host that an init reaps every orphan that reaches it, so it
/// need not become a child subreaper. Call it before the first plugin starts.
pub fn set_under_init() {
    UNDER_INIT.store(true, Ordering::Relaxed);
}

fn under_init() -> bool {
    UNDER_INIT.load(Ordering::Relaxed)
}

/// Spawns `cmd` on the spawner thread, starting the thread on first use;
/// `plugin_group` registers the child's process group for reaping.
pub(crate) async fn spawn_on_long_lived_thread(
    cmd: std::process::Command,
    plugin_group: bool,
) -> io::Result<Child> {
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new()
            .name("outboard-spawner".into())
            .spawn(move || {
                // Under outboard's own init (PID 1 in a container) every
                // orphan reaches the init, which reaps them all; becoming a
                // subreaper here would keep the job command's orphans as
                // zombies of the host instead.
                // SAFETY: prctl with an integer argument has no memory-safety
                // preconditions.
                if !under_init() && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
                    tracing::warn!(
                        "cannot become a child subreaper ({}); processes plugins leave behind \
                         are re-parented to init",
                        io::Error::last_os_error()
                    );
                }
                loop {
                    match rx.recv_timeout(REAP_INTERVAL) {
                        Ok(req) => spawn_registered(req),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            reap_orphans();
                            check_keeper();
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::error!("cannot start the spawner thread: {err}");
        }
        Mutex::new(tx)
    });
    let (reply, response) = oneshot::channel();
    let request = SpawnRequest {
        cmd,
        plugin_group,
        runtime: tokio::runtime::Handle::current(),
        reply,
    };
    spawner
        .lock()
        .map_err(|_| io::Error::other("the spawner is poisoned"))?
        .send(request)
        .map_err(|_| io::Error::other("the spawner thread is not running"))?;
    response
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}
