//! The daemon as an operator runs it: `outboard up --config FILE
//! --control-socket SOCK` in its own process, ready once it says `ready:`
//! on stderr and its control socket accepts a connection, stopped with
//! SIGTERM and waited for.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs::{self, Paths};

/// How long a daemon may take to be ready (ten plugins, some Python, in a
/// debug build on a loaded machine).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long a SIGTERMed daemon may take to drain and stop its plugins.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// The stderr lines kept to explain a daemon that failed.
const TAIL: usize = 20;

/// A running `outboard up`; dropped without [`Daemon::stop`], it is
/// SIGKILLed (its keeper then kills the plugins).
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Option<Child>,
    /// Its control socket.
    pub socket: PathBuf,
    /// Where its plugins' runtime directories are.
    runtime: PathBuf,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The environment every `outboard` the harness starts gets: plugins'
/// runtime directories under the scratch directory, and no control socket
/// from the caller's environment.
pub(crate) fn outboard_command(paths: &Paths, dir: &Path) -> Command {
    let mut cmd = Command::new(paths.bin("outboard"));
    cmd.env("OUTBOARD_RUNTIME_DIR", runtime_dir(dir))
        .env_remove("OUTBOARD_CONTROL_SOCKET")
        .stdin(Stdio::null());
    cmd
}

/// Where the plugins of every `outboard` the harness starts make their
/// runtime directories.
pub(crate) fn runtime_dir(dir: &Path) -> PathBuf {
    dir.join("rt")
}

impl Daemon {
    /// Starts `outboard up` on `config` with its control socket at
    /// `dir/ctl/NAME.sock`, and waits until it is ready.
    pub(crate) fn start(
        paths: &Paths,
        dir: &Path,
        config: &Path,
        name: &str,
    ) -> anyhow::Result<Daemon> {
        Daemon::start_with(paths, dir, config, name, |_| {})
    }

    /// Like [`Daemon::start`], `setup` adding to the command (arguments,
    /// environment) first.
    pub(crate) fn start_with(
        paths: &Paths,
        dir: &Path,
        config: &Path,
        name: &str,
        setup: impl FnOnce(&mut Command),
    ) -> anyhow::Result<Daemon> {
        let ctl = dir.join("ctl");
        std::fs::create_dir_all(&ctl).context("creating the control socket's directory")?;
        set_private(&ctl)?;
        std::fs::create_dir_all(runtime_dir(dir)).context("creating the runtime directory")?;
        let socket = ctl.join(format!("{name}.sock"));
        let mut command = outboard_command(paths, dir);
        command
            .arg("up")
            .arg("--config")
            .arg(config)
            .arg("--control-socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        setup(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} up", paths.bin("outboard").display()))?;
        let stderr = child.stderr.take().context("the daemon's stderr")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let ready = read_stderr(stderr, tail.clone());
        let mut daemon = Daemon {
            child: Some(child),
            socket,
            runtime: runtime_dir(dir),
            tail,
        };
        daemon.wait_ready(&ready)?;
        Ok(daemon)
    }

    /// Waits for the `ready:` line, then for the control socket to accept
    /// a connection (polled with a deadline: it may be bound a moment
    /// after the line is written).
    fn wait_ready(&mut self, ready: &mpsc::Receiver<()>) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        match ready.recv_timeout(READY_WITHIN) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.as_mut().map(Child::wait).transpose()?;
                let status = status.map_or_else(String::new, |s| format!(" ({s})"));
                bail!(
                    "outboard up exited before it was ready{status}: {}",
                    self.tail()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "outboard up was not ready within {} s: {}",
                READY_WITHIN.as_secs(),
                self.tail()
            ),
        }
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => bail!(
                    "outboard up said ready, but its control socket {} refuses connections \
                     ({e}): {}",
                    self.socket.display(),
                    self.tail()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// The daemon's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The rest of the last stderr line (of the few kept) that starts with
    /// `prefix`, such as the address after `outboard: http `.
    pub(crate) fn said(&self, prefix: &str) -> Option<String> {
        let tail = self.tail.lock().ok()?;
        tail.iter()
            .rev()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.trim().to_owned())
    }

    /// The last lines the daemon wrote on stderr, for an error.
    fn tail(&self) -> String {
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        if tail.is_empty() {
            "it wrote nothing on stderr".to_owned()
        } else {
            let lines: Vec<String> = tail.into_iter().filter(|l| !l.trim().is_empty()).collect();
            lines.join(" / ")
        }
    }

    /// The RSS of the daemon and the sum over its plugins (every process
    /// below it but its keeper, which is a copy of itself), in KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.pid();
        let own = procs::rss_kib(pid)?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let mut plugins = 0;
        for member in procs::descendants(pid) {
            let member_exe = std::fs::read_link(format!("/proc/{member}/exe")).ok();
            if member_exe.is_some() && member_exe == exe {
                continue;
            }
            // A process that exits between the scan and the read has none.
            plugins += procs::rss_kib(member).unwrap_or(0);
        }
        Ok((own, plugins))
    }

    /// SIGTERM, then waits for the daemon to drain, stop its plugins and
    /// exit 0.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill has no memory-safety preconditions; the child is
        // ours and not yet waited for, so its pid is not reused.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("outboard up exited {status} on SIGTERM: {}", self.tail());
                }
                return self.nothing_left();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "outboard up had not stopped {} s after SIGTERM (killed): {}",
                    STOP_WITHIN.as_secs(),
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Daemon {
    /// After a stop: no control socket, no plugin runtime directory (no
    /// other `outboard` of the harness runs while a daemon stops).
    fn nothing_left(&self) -> anyhow::Result<()> {
        if self.socket.exists() {
            bail!(
                "outboard up left its control socket {} behind",
                self.socket.display()
            );
        }
        let left: Vec<String> = std::fs::read_dir(&self.runtime)
            .with_context(|| format!("reading {}", self.runtime.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !left.is_empty() {
            bail!(
                "outboard up left runtime directories behind in {}: {}",
                self.runtime.display(),
                left.join(", ")
            );
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads the daemon's stderr to its end on a thread (a full pipe would
/// block the daemon), keeping the last lines; the receiver hears once the
/// `ready:` line has come.
fn read_stderr(
    stderr: std::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> mpsc::Receiver<()> {
    let (ready_tx, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line.contains("ready:") {
                let _ = ready_tx.send(());
            }
            if let Ok(mut tail) = tail.lock() {
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    });
    ready
}

/// Makes `dir` its owner's only, as a control socket's directory must be.
fn set_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} 0700", dir.display()))
}
