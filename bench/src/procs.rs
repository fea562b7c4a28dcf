//! The programs the harness runs: building them, starting them as child
//! processes, reading their RSS, and cleaning up after them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where things are.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// The workspace root.
    pub root: PathBuf,
    /// The directory holding the harness and its sibling binaries.
    pub bin_dir: PathBuf,
}

impl Paths {
    /// A binary built next to the harness.
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Where the Go binaries go (as `scripts/test` builds them).
    pub(crate) fn go_bin(&self, name: &str) -> PathBuf {
        self.root.join("target/go").join(name)
    }
}

/// Builds the harness's sibling binaries (the no-op plugin, the echo
/// servers, the host for the memory benchmark, and for the daemon items
/// `outboard` and the Rust example plugins) with the profile the harness
/// itself was built with: `cargo run -p outboard-bench` builds only the
/// harness.
pub(crate) fn cargo_build(paths: &Paths) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&paths.root)
        .args(["build", "--quiet", "--bins"]);
    for package in ["outboard-bench", "outboard-cli", "outboard-examples"] {
        cmd.args(["-p", package]);
    }
    match paths.bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => bail!(
            "cannot tell the build profile of {}",
            paths.bin_dir.display()
        ),
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the bench binaries failed: {status}");
    }
    Ok(())
}

/// `go build -o OUT .` in `dir`; the error says why (no Go, a failed build).
pub(crate) fn go_build(dir: &Path, out: &Path) -> Result<(), String> {
    let output = Command::new("go")
        .current_dir(dir)
        .arg("build")
        .arg("-o")
        .arg(out)
        .arg(".")
        .output()
        .map_err(|e| format!("cannot run go: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "go build in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A child process that prints one line when ready and exits when its
/// stdin closes. Dropping it closes stdin, waits a little, then kills it.
#[derive(Debug)]
pub(crate) struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The line it printed when ready.
    pub ready_line: String,
}

impl Peer {
    /// Starts `program` with `args` and waits for its first stdout line.
    pub(crate) fn start(program: &Path, args: &[&str]) -> anyhow::Result<Peer> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        let mut peer = Peer {
            child,
            stdin,
            ready_line: String::new(),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the ready line")?;
        if line.is_empty() {
            bail!("{} exited before it was ready", program.display());
        }
        peer.ready_line = line.trim_end().to_owned();
        Ok(peer)
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set size of process `pid`, in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// A private scratch directory under /tmp, short enough for socket paths.
pub(crate) fn scratch() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("ob-bench-")
        .tempdir_in("/tmp")
        .context("creating a scratch directory in /tmp")
}

/// Every live process below `pid` (children, their children, ...), read
/// from `/proc/*/stat`; a process that exits during the scan is left out.
pub(crate) fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(member) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{member}/stat")) else {
            continue;
        };
        // The command name, in parentheses, may hold spaces: the fields
        // after its last ')' are the state, then the parent's pid.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parent_of.push((member, parent));
        }
    }
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let of = found[next];
        found.extend(parent_of.iter().filter(|(_, p)| *p == of).map(|(m, _)| *m));
        next += 1;
    }
    found.remove(0);
    found
}
