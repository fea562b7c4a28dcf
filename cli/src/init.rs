//! PID 1 in a container: a tiny init in front of the host, in tini's shape.
//!
//! A container's PID 1 inherits every orphan in the container and must reap
//! it, or zombies pile up; and the kernel delivers to PID 1 only the signals
//! it has handlers for, so `docker stop`'s SIGTERM must be caught. The host
//! cannot simply run a blanket `waitpid(-1)` reaper: tokio waits on the
//! host's own children (plugins, the job's command) by pid, and a blanket
//! reaper would steal their exit statuses (the "Known traps" of the design).
//!
//! So, before any thread exists, [`become_init_if_pid1`] forks. The child
//! returns and runs as the normal host. The parent becomes the init, a
//! single-threaded loop with no tokio in it:
//!
//! - SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are
//!   forwarded to the host, which turns SIGTERM and SIGINT into its orderly
//!   stop.
//! - On SIGCHLD it reaps every zombie child with `waitpid(-1, WNOHANG)`. Its
//!   only own child is the host, so everything else it reaps is an orphan
//!   the kernel re-parented to it; the host's children stay the host's.
//! - When the host exits, it goes on reaping for up to a second, until it
//!   has no children left, then exits with the host's status (128 + the
//!   signal if the host was killed).
//!
//! The host moves into a process group of its own and, if the init owned
//! the terminal, takes the terminal's foreground: a Ctrl-C then reaches the
//! host (and the job's command) once, from the terminal, instead of a
//! second time through the init. The host dies with the init
//! (`PR_SET_PDEATHSIG`), which matters only outside a PID namespace.
//!
//! `OUTBOARD_INIT=1` turns the init on whatever the pid, to test it outside
//! a container; there it also becomes a child subreaper, so orphans reach it
//! as they would reach PID 1. `OUTBOARD_INIT=0` turns it off even as PID 1.

use std::ffi::OsStr;
use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The variable that forces the init on (`1`) or off (`0`); otherwise it is
/// on exactly when `outboard` is PID 1.
pub(crate) const ENV_INIT: &str = "OUTBOARD_INIT";

/// The signals the init passes on to the host.
pub(crate) const FORWARDED: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// How long the init goes on reaping after the host exited.
const DRAIN: Duration = Duration::from_secs(1);

/// How long the init sleeps at most between two reaping rounds.
const TICK: Duration = Duration::from_secs(1);

/// When `outboard` is PID 1 (or [`ENV_INIT`] is `1`), forks: returns `None`
/// in the child, which goes on as the host, and `Some(status)` in the
/// parent once it has served as the init, with the host's exit status.
/// Returns `None` at once when no init is wanted, or when it cannot be set
/// up (with a warning on stderr): then the host runs without one.
///
/// Call it first thing in `main`: forking is only sound while the process
/// has a single thread, so with more than one it refuses.
pub(crate) fn become_init_if_pid1() -> Option<ExitCode> {
    let setting = std::env::var_os(ENV_INIT);
    if !wanted(setting.as_deref(), std::process::id()) {
        return None;
    }
    if thread_count().is_some_and(|n| n > 1) {
        eprintln!("outboard: not starting the init: the process already runs other threads");
        return None;
    }
    match become_init() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("outboard: cannot start the init, running without one: {err}");
            None
        }
    }
}

/// Whether to become the init, given [`ENV_INIT`] and our pid.
fn wanted(setting: Option<&OsStr>, pid: u32) -> bool {
    match setting.and_then(OsStr::to_str) {
        Some("1") => true,
        Some("0") => false,
        _ => pid == 1,
    }
}

fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// A signal set holding `signals`.
fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it fully
    // before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// The forwarded signals and SIGCHLD, which the init takes with
/// `sigtimedwait` instead of handlers.
fn waited_signals() -> libc::sigset_t {
    let mut signals = FORWARDED.to_vec();
    signals.push(libc::SIGCHLD);
    signal_set(&signals)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Blocks the waited signals and forks; see [`become_init_if_pid1`].
fn become_init() -> io::Result<Option<ExitCode>> {
    let waited = waited_signals();
    // SAFETY: sigset_t and sigaction are plain data; the kernel fills them.
    let (mut old_mask, mut old_chld): (libc::sigset_t, libc::sigaction) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // Blocked before the fork, so that no signal is lost in between: the
    // init takes them with sigtimedwait, the host unblocks them.
    // SAFETY: valid pointers to initialized sets; the process has a single
    // thread, so sigprocmask is its whole mask.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &waited, &mut old_mask) })?;
    // SIGCHLD ignored would make the kernel reap the host behind our back
    // and lose its status; the default keeps zombies for waitpid.
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask and no
    // flags; old_chld receives the previous action.
    let reset = check(unsafe {
        let default: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, &default, &mut old_chld)
    });
    let restore = |old_mask: &libc::sigset_t, old_chld: &libc::sigaction| {
        // SAFETY: restoring the action and mask saved above.
        unsafe {
            libc::sigaction(libc::SIGCHLD, old_chld, std::ptr::null_mut());
            libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
        }
    };
    if let Err(err) = reset {
        // SAFETY: restoring the mask saved above.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
        return Err(err);
    }
    let owns_terminal = owns_terminal();
    let init_pid = std::process::id() as libc::pid_t;

    // SAFETY: the process has a single thread (checked by the caller), so
    // the child is a full copy in a consistent state and may run any code.
    match unsafe { libc::fork() } {
        -1 => {
            let err = io::Error::last_os_error();
            restore(&old_mask, &old_chld);
            Err(err)
        }
        0 => {
            become_host(init_pid, owns_terminal);
            restore(&old_mask, &old_chld);
            outboard_host::launch::process::set_under_init();
            Ok(None)
        }
        host => Ok(Some(serve(host, init_pid != 1, &waited))),
    }
}

/// True if our process group is the foreground of the terminal on stdin.
fn owns_terminal() -> bool {
    // SAFETY: tcgetpgrp and getpgrp have no memory-safety preconditions;
    // tcgetpgrp fails harmlessly when stdin is not a terminal.
    unsafe {
        let foreground = libc::tcgetpgrp(libc::STDIN_FILENO);
        foreground != -1 && foreground == libc::getpgrp()
    }
}

/// In the forked host, before the signal mask is restored: its own process
/// group, the terminal if the init had it, and death with the init.
fn become_host(init_pid: libc::pid_t, owns_terminal: bool) {
    // SAFETY: setpgid, tcsetpgrp, prctl and getppid with integer arguments
    // have no memory-safety preconditions; the set is initialized.
    unsafe {
        libc::setpgid(0, 0);
        if owns_terminal {
            // The new group is in the background until tcsetpgrp succeeds;
            // a background group taking the terminal gets SIGTTOU unless it
            // blocks it.
            let ttou = signal_set(&[libc::SIGTTOU]);
            libc::sigprocmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The init may have died before prctl; then no signal will come.
        if libc::getppid() != init_pid {
            libc::_exit(1);
        }
    }
}

/// The init's loop: forwards signals to `host`, reaps every child, and
/// returns the host's exit status once the host is gone and the rest is
/// reaped or the drain time is up.
fn serve(host: libc::pid_t, subreaper: bool, waited: &libc::sigset_t) -> ExitCode {
    // SAFETY: prctl with integer arguments, or a pointer to a static C
    // string, has no memory-safety preconditions.
    unsafe {
        // Shows as such in ps; the host keeps the name `outboard`.
        libc::prctl(libc::PR_SET_NAME, c"outboard-init".as_ptr());
        // Not PID 1: only as a subreaper do orphans reach us.
        if subreaper {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
    }
    let mut host_status = None;
    while host_status.is_none() {
        match next_signal(waited, TICK) {
            Some(libc::SIGCHLD) | None => {}
            Some(signal) => {
                // SAFETY: kill has no memory-safety preconditions. The host
                // is our unreaped child, so its pid cannot have been reused.
                unsafe { libc::kill(host, signal) };
            }
        }
        reap(host, &mut host_status);
    }
    let deadline = Instant::now() + DRAIN;
    while reap(host, &mut host_status) == Children::Remain {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Signals now have nobody to go to; only SIGCHLD matters.
        next_signal(waited, left);
    }
    ExitCode::from(host_status.map_or(1, exit_code))
}

/// Waits up to `timeout` for one of the `waited` signals.
fn next_signal(waited: &libc::sigset_t, timeout: Duration) -> Option<libc::c_int> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: valid pointers to an initialized set and timespec; a null
    // siginfo is allowed.
    let signal = unsafe { libc::sigtimedwait(waited, std::ptr::null_mut(), &timeout) };
    (signal > 0).then_some(signal)
}

#[derive(Debug, PartialEq, Eq)]
enum Children {
    /// Some are still running.
    Remain,
    /// None is left.
    Gone,
}

/// Reaps every zombie child; records the host's status when it is one.
fn reap(host: libc::pid_t, host_status: &mut Option<libc::c_int>) -> Children {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid c_int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == host {
            *host_status = Some(status);
        } else if pid == 0 {
            return Children::Remain;
        } else if pid < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                // ECHILD, or an error retrying would not cure.
                _ => return Children::Gone,
            }
        }
    }
}

/// The init's exit status for the host's wait status, as a shell reports
/// it: the exit code, or 128 + the signal that killed it.
fn exit_code(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1)
    } else if libc::WIFSIGNALED(status) {
        u8::try_from(128 + libc::WTERMSIG(status)).unwrap_or(u8::MAX)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_wanted_as_pid_1_or_when_forced() {
        assert!(wanted(None, 1));
        assert!(!wanted(None, 42));
        assert!(wanted(Some(OsStr::new("1")), 42));
        assert!(!wanted(Some(OsStr::new("0")), 1));
        assert!(wanted(Some(OsStr::new("yes")), 1), "unknown values: by pid");
        assert!(!wanted(Some(OsStr::new("")), 42));
    }

    #[test]
    fn exit_statuses_read_as_a_shell_reports_them() {
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(exit_code(libc::SIGKILL), 137);
    }
}
