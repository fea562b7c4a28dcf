//! The keeper: a tiny process that kills every plugin process group when
//! the host dies, however it dies (SIGKILL included).
//!
//! A parent-death signal reaches only a plugin itself; what the plugin
//! started lives on. So the spawner thread forks, once, before the first
//! plugin, a keeper: a copy of the host that never execs and from then on
//! makes only async-signal-safe system calls (the host has other threads,
//! whose locks the copy may hold forever). It closes every descriptor but
//! its end of a socket pair, ignores the stop signals of a terminal or a
//! service manager (they are for the host, which stops its plugins itself),
//! moves into a process group of its own, and reads fixed-size records:
//! `+pgid` when a plugin's group is registered, `-pgid` when the host found
//! the group empty (so a pgid reused later is never killed). The host's end
//! is close-on-exec and held by nothing else, so end of file means the host
//! is gone: the keeper then SIGKILLs every group still registered and exits.
//!
//! After a clean stop every group is already gone and the keeper simply
//! exits; it is re-parented, like any orphan, to the nearest subreaper or
//! init, which reaps it. Runtime directories are not the keeper's: the next
//! host's sweep removes those of dead hosts.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// How many groups the keeper tracks at once; it allocates nothing after
/// the fork, so the table is sized before. Beyond it, a group still dies
/// by its leader's parent-death signal, only its strays survive.
const CAPACITY: usize = 16 * 1024;

/// The most descriptors the keeper's fallback closes one by one, on kernels
/// without `close_range` (before 5.9).
const MAX_FDS: libc::c_int = 1 << 20;

/// One record: the operation, then the pgid (native byte order).
type Record = [u8; 8];

/// The running keeper, from the host's side.
#[derive(Debug)]
struct Keeper {
    pid: libc::pid_t,
    socket: OwnedFd,
}

static KEEPER: Mutex<Option<Keeper>> = Mutex::new(None);

/// True if `pid` is the current keeper: [`check`] waits for it, so that it
/// notices the keeper's death; the reaper of orphans must leave it alone.
pub(crate) fn is_keeper(pid: u32) -> bool {
    let keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
    keeper.as_ref().is_some_and(|k| k.pid as u32 == pid)
}

/// Registers `pgid` with the keeper, starting it if there is none. A
/// keeper that died, or stopped reading (a stopped process whose socket
/// buffer is full), is replaced, and the new one told every group in
/// `known` as well.
pub(crate) fn register(pgid: u32, known: &BTreeSet<u32>) {
    let mut keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
    if keeper.as_ref().is_some_and(|k| send(k, b'+', pgid).is_ok()) {
        return;
    }
    replace(&mut keeper, known.iter().copied().chain([pgid]));
}

/// Replaces a keeper that has exited, telling the new one every group in
/// `known`; the spawner thread calls it when idle, so that a keeper killed
/// by someone is neither left a zombie nor missing until the next spawn.
pub(crate) fn check(known: &BTreeSet<u32>) {
    let mut keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pid) = keeper.as_ref().map(|k| k.pid) else {
        return;
    };
    // SAFETY: waitpid on our own child, unreaped, so its pid is not reused.
    if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid {
        keeper.take();
        tracing::warn!("the keeper (pid {pid}) exited; starting another");
        replace(&mut keeper, known.iter().copied());
    }
}

/// Kills and reaps the current keeper, if any, and starts another that
/// knows `groups`.
fn replace(keeper: &mut Option<Keeper>, groups: impl Iterator<Item = u32>) {
    if let Some(old) = keeper.take() {
        tracing::warn!(
            "the keeper (pid {}) does not answer; starting another",
            old.pid
        );
        // SAFETY: kill and waitpid on our own unreaped child: its pid cannot
        // have been reused, and SIGKILL makes the wait short.
        unsafe {
            libc::kill(old.pid, libc::SIGKILL);
            libc::waitpid(old.pid, std::ptr::null_mut(), 0);
        }
    }
    match start() {
        Ok(started) => {
            for group in groups {
                let _ = send(&started, b'+', group);
            }
            *keeper = Some(started);
        }
        Err(err) => tracing::warn!(
            "cannot start the keeper ({err}); what plugins start may outlive a killed host"
        ),
    }
}

/// How long [`retire`] waits for the keeper to go.
const RETIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends the keeper at the host's clean exit: closes the host's end (the
/// keeper kills any group still registered and exits) and reaps it, so that
/// no copy of the host outlives it, not even for the moment an orphan waits
/// for its new parent. Bounded: a keeper stopped by someone is left to exit
/// on its own once it runs again.
pub fn retire() {
    let Some(keeper) = KEEPER.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    drop(keeper.socket);
    let deadline = std::time::Instant::now() + RETIRE_WAIT;
    loop {
        // SAFETY: waitpid on our own child, unreaped, so its pid is not reused.
        let waited = unsafe { libc::waitpid(keeper.pid, std::ptr::null_mut(), libc::WNOHANG) };
        if waited != 0 || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Tells the keeper that group `pgid` is empty and must not be killed.
pub(crate) fn forget(pgid: u32) {
    let keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(keeper) = keeper.as_ref() {
        let _ = send(keeper, b'-', pgid);
    }
}

fn send(keeper: &Keeper, op: u8, pgid: u32) -> io::Result<()> {
    let mut record: Record = [0; 8];
    record[0] = op;
    record[4..].copy_from_slice(&pgid.to_ne_bytes());
    // SAFETY: sends from a valid buffer of the given length. MSG_NOSIGNAL
    // turns a dead keeper into EPIPE instead of SIGPIPE; MSG_DONTWAIT a
    // keeper that stopped reading into EAGAIN instead of a spawner thread
    // blocked for good.
    let sent = unsafe {
        libc::send(
            keeper.socket.as_raw_fd(),
            record.as_ptr().cast(),
            record.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent == record.len() as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Forks the keeper.
fn start() -> io::Result<Keeper> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into a valid array.
    let paired = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if paired != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (host_end, keeper_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Allocated before the fork: the keeper must not allocate.
    let mut table = vec![0 as libc::pid_t; CAPACITY];
    // SAFETY: the child runs only `serve`, which makes async-signal-safe
    // system calls and touches only memory allocated before the fork.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => serve(keeper_end.as_raw_fd(), &mut table),
        pid => Ok(Keeper {
            pid,
            socket: host_end,
        }),
    }
}

/// The keeper's life, in the forked child; never returns.
fn serve(socket: RawFd, table: &mut [libc::pid_t]) -> ! {
    // SAFETY: only async-signal-safe system calls on integers, valid
    // pointers to local plain data and the preallocated table.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_NAME, c"outboard-keeper".as_ptr());
        // Holds no directory busy (an unmount, a removed working directory).
        libc::chdir(c"/".as_ptr());
        calm_signals();
        close_all_but(socket);
        let mut record: Record = [0; 8];
        loop {
            let n = libc::read(socket, record.as_mut_ptr().cast(), record.len());
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n != record.len() as isize {
                // End of file (or an error no retry cures): the host is gone.
                break;
            }
            let mut pgid = [0; 4];
            pgid.copy_from_slice(&record[4..]);
            let pgid = libc::pid_t::from_ne_bytes(pgid);
            if pgid <= 1 {
                continue;
            }
            match record[0] {
                b'+' => {
                    if let Some(slot) = table.iter_mut().find(|slot| **slot == 0) {
                        *slot = pgid;
                    }
                }
                b'-' => {
                    if let Some(slot) = table.iter_mut().find(|slot| **slot == pgid) {
                        *slot = 0;
                    }
                }
                _ => {}
            }
        }
        for &pgid in table.iter().filter(|&&pgid| pgid > 1) {
            libc::kill(-pgid, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Every handler the host installed back to its default (they would write
/// to descriptors the keeper closed), the stop signals ignored, and nothing
/// blocked.
///
/// # Safety
/// Async-signal-safe; for the forked keeper only.
unsafe fn calm_signals() {
    const IGNORED: [libc::c_int; 10] = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    // SAFETY: sigaction and sigprocmask with valid pointers to zeroed
    // (SIG_DFL, empty mask) or filled plain data.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        // The standard signals; real-time ones have no handlers here.
        for signal in 1..32 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                action.sa_sigaction = if IGNORED.contains(&signal) {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Closes every descriptor except `keep`.
///
/// # Safety
/// Async-signal-safe; for the forked keeper only.
unsafe fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range and close on integers.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32);
        }
        if libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32) != 0 {
            for fd in 0..MAX_FDS {
                if fd as libc::c_uint != keep {
                    libc::close(fd);
                }
            }
        }
    }
}
