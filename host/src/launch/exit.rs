//! How a plugin process ended, typed: tested without formatting (the
//! dispatch fast path asks only "has it exited?"), described the way an
//! operator reads it when shown.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// A plugin process's exit status. Displays as "status 3" or
/// "signal 9 (SIGKILL)", and says so when the kernel killed a process of
/// the plugin for going over its `sandbox.memory` limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(ExitStatus, Option<u64>);

impl Exit {
    /// The raw status.
    pub fn status(self) -> ExitStatus {
        self.0
    }

    /// This exit, after the kernel killed a process of the plugin (the
    /// plugin itself, or one it started) for going over its memory limit
    /// of `limit` bytes.
    pub fn out_of_memory_at(self, limit: u64) -> Exit {
        Exit(self.0, Some(limit))
    }

    /// The memory limit, in bytes, a process of the plugin was killed for
    /// going over, if one was.
    pub fn out_of_memory(self) -> Option<u64> {
        self.1
    }

    /// The exit code, if the process exited rather than being killed.
    pub fn code(self) -> Option<i32> {
        self.0.code()
    }

    /// The signal that killed the process, if one did.
    pub fn signal(self) -> Option<i32> {
        self.0.signal()
    }

    /// True for status 0.
    pub fn success(self) -> bool {
        self.0.success()
    }

    /// An exit with status `code` (0 to 255), as a process reports it.
    pub fn with_code(code: i32) -> Exit {
        Exit(ExitStatus::from_raw((code & 0xff) << 8), None)
    }

    /// Death by `signal`, as a process reports it.
    pub fn killed_by(signal: i32) -> Exit {
        Exit(ExitStatus::from_raw(signal & 0x7f), None)
    }

    /// `exit` described, or "an unknown status" when it is not known (the
    /// process's waiter went away with the runtime).
    pub fn describe(exit: Option<Exit>) -> String {
        exit.map_or_else(|| UNKNOWN.to_owned(), |exit| exit.to_string())
    }
}

/// What an exit whose status was lost is called.
const UNKNOWN: &str = "an unknown status";

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        Exit(status, None)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = self.code() {
            write!(f, "status {code}")?;
        } else {
            match self.signal() {
                Some(sig) => write!(f, "signal {sig} ({})", signal_name(sig))?,
                None => f.write_str(UNKNOWN)?,
            }
        }
        match self.1 {
            Some(limit) => write!(
                f,
                ", out of memory: the kernel killed {} for going over its sandbox.memory limit \
                 of {}",
                if self.signal() == Some(libc::SIGKILL) {
                    "it"
                } else {
                    "a process of it"
                },
                crate::sandbox::size(limit)
            ),
            None => Ok(()),
        }
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "unnamed signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_exits_read_as_real_ones() {
        assert_eq!(Exit::with_code(3), Exit::from(ExitStatus::from_raw(3 << 8)));
        assert!(Exit::with_code(0).success());
        assert_eq!(Exit::killed_by(9).to_string(), "signal 9 (SIGKILL)");
        assert_eq!(Exit::killed_by(9).code(), None);
    }

    #[test]
    fn exits_are_described_for_people() {
        let exited = Exit::from(ExitStatus::from_raw(3 << 8));
        assert_eq!(exited.to_string(), "status 3");
        assert_eq!((exited.code(), exited.signal()), (Some(3), None));
        let killed = Exit::from(ExitStatus::from_raw(libc::SIGKILL));
        assert_eq!(killed.to_string(), "signal 9 (SIGKILL)");
        assert_eq!(killed.signal(), Some(libc::SIGKILL));
        assert!(!killed.success());
        assert_eq!(Exit::describe(None), "an unknown status");
    }

    #[test]
    fn an_out_of_memory_kill_says_so_with_the_limit() {
        let killed = Exit::killed_by(libc::SIGKILL).out_of_memory_at(64 << 20);
        assert_eq!(
            killed.to_string(),
            "signal 9 (SIGKILL), out of memory: the kernel killed it for going over its \
             sandbox.memory limit of 64Mi"
        );
        assert_eq!(killed.out_of_memory(), Some(64 << 20));
        assert_ne!(killed, Exit::killed_by(libc::SIGKILL));
        let child = Exit::with_code(1).out_of_memory_at(100 << 20);
        assert_eq!(
            child.to_string(),
            "status 1, out of memory: the kernel killed a process of it for going over its \
             sandbox.memory limit of 100Mi"
        );
        assert!(!child.success());
    }
}
