//! What the command line's tests share: the `outboard` binary, the
//! workspace's test support, and ways to wait for an event (a file, a
//! process, a line on stderr) with a deadline instead of sleeping.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

pub use outboard_test_support::*;

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outboard_host::launch::ProcStat;

/// The `outboard` binary as a command whose host services keep their
/// state in this build's scratch directory (`OUTBOARD_STATE_DIR`), never
/// in the machine's default (`/var/lib/outboard` as root), which another
/// checkout or version may use. A test that needs a state of its own
/// passes `--state-dir`.
pub fn outboard_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"));
    command.env("OUTBOARD_STATE_DIR", STATE_DIR);
    command
}

/// The state directory [`outboard_command`] gives the commands it builds.
pub const STATE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/outboard-state");

/// Runs the `outboard` binary with `args`, runtime directories under /tmp.
pub fn outboard(args: &[&str]) -> std::process::Output {
    outboard_command()
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .output()
        .expect("run outboard")
}

/// Runs the `outboard` binary with `args` as [`outboard`] does, expecting
/// success; its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = outboard(args);
    assert!(
        out.status.success(),
        "outboard {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Polls `done` every 10 ms until it holds or `timeout` has passed; true if
/// it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose parent is `pid`, with their stat.
pub fn children_of(pid: u32) -> Vec<(u32, ProcStat)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, ProcStat::read(p)?)))
        .filter(|(_, s)| s.ppid == pid)
        .collect()
}

/// The pids of `pid`'s children, except a host's keeper (the process that
/// kills plugin groups when the host dies; `children_of` has it).
pub fn child_pids(pid: u32) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|&pid| !is_keeper(pid))
        .collect()
}

/// True if `pid` is a host's keeper.
pub fn is_keeper(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim() == "outboard-keeper")
}

/// True if `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    ProcStat::read(pid).is_some_and(|s| !s.zombie)
}

/// SIGTERM to `pid`.
pub fn sigterm(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

/// A child's stderr, read line by line on a thread, so a test can wait for
/// a line and still see everything at the end.
pub struct Lines {
    /// Lines as they are read.
    rx: mpsc::Receiver<String>,
    /// Every line received so far.
    seen: Vec<String>,
}

impl Lines {
    /// Starts reading `stream`.
    pub fn read(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a line containing `needle`; true if one
    /// came (before the stream ended).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Like [`Lines::wait_for`], but fails the test, showing every line so
    /// far, if no such line comes.
    pub fn expect(&mut self, needle: &str, timeout: Duration) {
        if !self.wait_for(needle, timeout) {
            panic!(
                "no line with {needle:?} within {timeout:?}; so far:\n{}",
                self.seen.join("\n")
            );
        }
    }

    /// The lines read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Everything read so far and until the stream ends, one string.
    pub fn rest(mut self) -> String {
        self.seen.extend(self.rx.iter());
        self.seen.join("\n")
    }
}
