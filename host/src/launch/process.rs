//! Plugin processes: a private runtime directory, spawning in a process group
//! of its own with a parent-death signal and a scrubbed environment, and
//! signalling and reaping the whole group.
//!
//! Spawning happens on one long-lived thread. Linux's `PR_SET_PDEATHSIG`
//! fires when the *thread* that forked the child exits, not the process, and
//! tokio's blocking-pool threads exit when idle: a plugin forked from one
//! would be killed a few seconds later for no reason.
//!
//! The host is a child subreaper (`PR_SET_CHILD_SUBREAPER`): processes a
//! plugin started and left behind are re-parented to the host rather than to
//! init, which in a container may never reap them. The same thread reaps
//! such orphans, but only those in a plugin's process group and never a
//! plugin itself (tokio waits on those), so no other waiter in the host
//! loses an exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::{oneshot, watch};

use crate::config::PluginSpec;
use crate::launch::exit::Exit;

/// The longest socket path `bind(2)` accepts: `sun_path` is 108 bytes,
/// including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The environment variable naming where runtime directories are created.
pub const ENV_RUNTIME_DIR: &str = "OUTBOARD_RUNTIME_DIR";

/// The socket's file name inside a runtime directory.
const SOCKET_NAME: &str = "plugin.sock";

/// Host variables a plugin inherits; everything else is scrubbed. `LC_*`
/// is matched as a prefix.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// The file in a runtime directory naming the host process that owns it.
pub const HOST_PID_FILE: &str = "host.pid";

/// Bases already swept by this process.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Removes, once per base and process, the runtime directories whose host
/// has died (a SIGKILLed host cannot remove its own). A directory without a
/// readable `host.pid`, or whose host is alive, is left alone.
fn sweep_once(base: &Path) {
    let Ok(mut swept) = SWEPT.lock() else {
        return;
    };
    if !swept.insert(base.to_owned()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_runtime_dir = entry.file_name().to_string_lossy().starts_with("ob-")
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_runtime_dir {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(HOST_PID_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !process_alive(owner) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    "removed {} left by a host that died (pid {owner})",
                    path.display()
                ),
                Err(err) => tracing::debug!("cannot remove stale {}: {err}", path.display()),
            }
        }
    }
}

/// True if a process with this pid exists (a zombie counts: its parent may
/// still be about to clean up).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 checks for existence only.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A private directory (mode 0700) for one plugin launch, holding its
/// socket. Removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    dir: tempfile::TempDir,
}

impl RuntimeDir {
    /// Creates a fresh directory under `$OUTBOARD_RUNTIME_DIR`, or `/tmp`.
    pub fn create() -> io::Result<RuntimeDir> {
        let base = std::env::var_os(ENV_RUNTIME_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        RuntimeDir::create_in(&base)
    }

    /// Creates a fresh directory under `base`; refuses a base so long that
    /// the socket path would not fit in `sun_path`.
    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        // "ob-" plus tempfile's six random characters, then "/plugin.sock".
        let socket_len = base.as_os_str().len() + "/ob-XXXXXX/".len() + SOCKET_NAME.len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "runtime directory base {} is too long: the socket path would be {socket_len} bytes, \
                     the limit is {MAX_SOCKET_PATH}; set {ENV_RUNTIME_DIR} to a shorter directory",
                    base.display()
                ),
            ));
        }
        // The socket path travels in the `|`-separated handshake line.
        if base
            .as_os_str()
            .to_string_lossy()
            .contains(['|', '\n', '\r'])
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "runtime directory base {:?} contains '|' or a line break, which the handshake line \
                     cannot carry; set {ENV_RUNTIME_DIR} to another directory",
                    base.display()
                ),
            ));
        }
        sweep_once(base);
        // Created 0700 from the start: no moment where others can look in.
        let dir = tempfile::Builder::new()
            .prefix("ob-")
            .rand_bytes(6)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        // Which host owns it, so that a later host can remove it if this one
        // was killed before it could.
        std::fs::write(
            dir.path().join(HOST_PID_FILE),
            std::process::id().to_string(),
        )?;
        Ok(RuntimeDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the plugin must bind its socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join(SOCKET_NAME)
    }
}

/// What to run and with which variables, before the host adds its own.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The executable.
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables from the plugin's configuration, over the inherited ones.
    pub env: BTreeMap<String, String>,
    /// The handshake variables, set last so configuration cannot override
    /// them.
    pub handshake_env: Vec<(String, String)>,
    /// The working directory; the host's when `None`.
    pub working_dir: Option<PathBuf>,
}

impl Launch {
    /// What to spawn for `spec` as a person would run it by hand: its
    /// command, arguments, variables and working directory, without the
    /// handshake variables.
    pub fn by_hand(spec: &PluginSpec) -> Launch {
        Launch {
            command: spec.command.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            handshake_env: Vec::new(),
            working_dir: spec.working_dir.clone(),
        }
    }

    /// The environment the plugin starts with, given the host's own.
    pub fn environment(
        &self,
        host: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Vec<(OsString, OsString)> {
        let mut env: BTreeMap<OsString, OsString> = host
            .into_iter()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                INHERITED_ENV.contains(&k.as_ref()) || k.starts_with("LC_")
            })
            .collect();
        for (k, v) in &self.env {
            env.insert(k.into(), v.into());
        }
        for (k, v) in &self.handshake_env {
            env.insert(k.into(), v.into());
        }
        env.into_iter().collect()
    }
}

/// A spawned plugin process, leader of its own process group.
#[derive(Debug)]
pub struct PluginProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
}

/// The pipes of a freshly spawned process, taken once by the caller.
#[derive(Debug)]
pub struct Pipes {
    /// The plugin's stdout: the handshake line, then log lines.
    pub stdout: ChildStdout,
    /// The plugin's stderr: log lines.
    pub stderr: ChildStderr,
}

impl PluginProcess {
    /// Spawns `launch` with stdin closed and stdout / stderr piped.
    ///
    /// The child gets `PR_SET_PDEATHSIG(SIGKILL)` so it dies with the host,
    /// is the leader of a new process group so that stop can signal
    /// everything it started, and is reaped by a task that publishes its
    /// exit status the moment it exits.
    pub async fn spawn(launch: &Launch) -> io::Result<(PluginProcess, Pipes)> {
        let mut cmd = std::process::Command::new(&launch.command);
        cmd.args(&launch.args)
            .env_clear()
            .envs(launch.environment(std::env::vars_os()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &launch.working_dir {
            cmd.current_dir(dir);
        }
        die_with_host(&mut cmd);

        let mut child = spawn_on_long_lived_thread(cmd, true).await?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child exited before its pid was read"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(io::Error::other("the child's pipes were not created"));
        };
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status,
                // wait(2) failing means the child is gone but its status is
                // lost; report it as killed rather than hang the host.
                Err(_) => ExitStatus::from_raw(libc::SIGKILL),
            };
            let _ = tx.send(Some(status));
        });
        Ok((PluginProcess { pid, exit }, Pipes { stdout, stderr }))
    }

    /// The plugin's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if the process has exited (and been reaped).
    pub fn exit_status(&self) -> Option<Exit> {
        self.exit.borrow().map(Exit::from)
    }

    /// A receiver that changes once, when the process exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.clone()
    }

    /// Waits until the process has exited and been reaped.
    pub async fn exited(&self) -> Exit {
        let mut exit = self.exit.clone();
        // The reaper task is gone only if the runtime is shutting down.
        let status = exit.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        Exit::from(status.unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL)))
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn exited_within(&self, timeout: Duration) -> Option<Exit> {
        tokio::time::timeout(timeout, self.exited()).await.ok()
    }

    /// Kills the whole process group at once and waits, up to `timeout`
    /// each, for the leader to exit and for the group to be gone.
    pub async fn kill_group(&self, timeout: Duration) {
        let _ = self.signal_group(libc::SIGKILL);
        let _ = self.exited_within(timeout).await;
        let _ = self.group_gone_within(timeout).await;
    }

    /// Sends `signal` to every process in the plugin's group. A group that
    /// no longer exists is not an error.
    pub fn signal_group(&self, signal: libc::c_int) -> io::Result<()> {
        signal_group(self.pid, signal)
    }

    /// True while any process of the plugin's group (including zombies not
    /// yet reaped by their parent) exists.
    pub fn group_alive(&self) -> bool {
        group_alive(self.pid)
    }

    /// Waits up to `timeout` until no process of the plugin's group is left,
    /// reaping orphans of the group on the way. Call it after the leader
    /// has exited and the group was sent SIGKILL. False if some remain.
    pub async fn group_gone_within(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            reap_orphans();
            if !self.group_alive() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for PluginProcess {
    /// A plugin must never outlive its handle: whatever path dropped it, the
    /// whole group is killed. The reaper task collects the leader.
    fn drop(&mut self) {
        let _ = self.signal_group(libc::SIGKILL);
    }
}

/// Spawns a job's command: in the host's process group (so a terminal's
/// Ctrl-C reaches it as it reaches the host), with the host's stdin, stdout
/// and stderr, and a parent-death signal so it does not outlive the host.
/// The caller sets the program, arguments and environment.
pub async fn spawn_job(mut cmd: std::process::Command) -> io::Result<Child> {
    die_with_host(&mut cmd);
    spawn_on_long_lived_thread(cmd, false).await
}

/// Makes the child get SIGKILL when the host dies, and refuse to start if
/// the host already died between fork and exec.
fn die_with_host(cmd: &mut std::process::Command) {
    let host_pid = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The host may have died between fork and prctl; then the
            // signal will never come, so refuse to run orphaned.
            if libc::getppid() != host_pid {
                return Err(io::Error::other("the host exited during spawn"));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to process group `pgid`; ESRCH (no such group) is fine.
pub fn signal_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = pgid as libc::pid_t;
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    // SAFETY: killpg has no memory-safety preconditions.
    if unsafe { libc::killpg(pgid, signal) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// True while process group `pgid` has any member.
pub fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 checks for existence and permission only.
    unsafe { libc::killpg(pgid as libc::pid_t, 0) == 0 }
}

/// Process groups of plugins spawned by this host whose members may still
/// need reaping.
static PLUGIN_GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// How often the spawner thread looks for orphans to reap when idle.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// Reaps zombie children of the host that belong to a plugin's process group
/// but are not a plugin (group leader) itself; forgets groups that are empty.
/// Returns how many it reaped.
pub fn reap_orphans() -> usize {
    let Ok(mut groups) = PLUGIN_GROUPS.lock() else {
        return 0;
    };
    if groups.is_empty() {
        return 0;
    }
    let me = std::process::id();
    let mut reaped = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(stat) = ProcStat::read(pid) else {
                continue;
            };
            if stat.zombie && stat.ppid == me && stat.pgrp != pid && groups.contains(&stat.pgrp) {
                let mut status = 0;
                // SAFETY: waitpid on a specific zombie child of ours.
                if unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) } > 0 {
                    reaped += 1;
                }
            }
        }
    }
    groups.retain(|&pgid| group_alive(pgid));
    reaped
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

/// The pids of every process, zombies included, in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ProcStat::read(pid).is_some_and(|s| s.pgrp == pgid))
        .collect()
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
    let child = tokio::process::Command::from(req.cmd).spawn();
    if req.plugin_group
        && let Some(pid) = child.as_ref().ok().and_then(Child::id)
    {
        groups.insert(pid);
    }
    drop(groups);
    let _ = req.reply.send(child);
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

async fn spawn_on_long_lived_thread(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_scrubbed_then_configured_then_handshake() {
        let launch = Launch {
            command: "x".into(),
            args: vec![],
            env: BTreeMap::from([
                ("LANG".to_owned(), "C".to_owned()),
                ("OUTBOARD_TOKEN".to_owned(), "forged".to_owned()),
            ]),
            handshake_env: vec![("OUTBOARD_TOKEN".into(), "real".into())],
            working_dir: None,
        };
        let host = [
            ("PATH", "/bin"),
            ("LANG", "en_US.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env: BTreeMap<_, _> = launch.environment(host).into_iter().collect();
        let get = |k: &str| {
            env.get(&OsString::from(k))
                .map(|v| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("LC_ALL").as_deref(), Some("C.UTF-8"));
        assert_eq!(get("LANG").as_deref(), Some("C"), "configured env wins");
        assert_eq!(
            get("OUTBOARD_TOKEN").as_deref(),
            Some("real"),
            "handshake wins"
        );
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), None, "secrets are scrubbed");
    }

    #[test]
    fn runtime_dir_is_private_and_removed() {
        let dir = RuntimeDir::create().expect("create");
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.socket_path().as_os_str().len() <= MAX_SOCKET_PATH);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn runtime_dir_refuses_a_base_too_long_for_a_socket() {
        let base = PathBuf::from(format!("/tmp/{}", "x".repeat(100)));
        let err = RuntimeDir::create_in(&base).expect_err("too long");
        assert!(err.to_string().contains("the limit is 107"), "{err}");
    }

    #[test]
    fn runtime_dirs_of_dead_hosts_are_swept_and_others_kept() {
        let base = tempfile::Builder::new()
            .prefix("obs-")
            .tempdir_in("/tmp")
            .expect("base");
        let mut dead = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead_pid = dead.id();
        dead.wait().expect("reap");
        let stale = base.path().join("ob-stale1");
        let alive = base.path().join("ob-alive1");
        let foreign = base.path().join("ob-nopid1");
        for dir in [&stale, &alive, &foreign] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        std::fs::write(stale.join(HOST_PID_FILE), dead_pid.to_string()).expect("write");
        std::fs::write(alive.join(HOST_PID_FILE), "1").expect("write");
        let fresh = RuntimeDir::create_in(base.path()).expect("create");
        assert!(!stale.exists(), "a dead host's directory is removed");
        assert!(alive.exists() && foreign.exists(), "others are left alone");
        assert_eq!(
            std::fs::read_to_string(fresh.path().join(HOST_PID_FILE)).expect("read"),
            std::process::id().to_string()
        );
    }

    #[test]
    fn runtime_dir_refuses_a_base_the_handshake_cannot_carry() {
        let err = RuntimeDir::create_in(Path::new("/tmp/a|b")).expect_err("pipe");
        assert!(err.to_string().contains("contains '|'"), "{err}");
    }

    #[tokio::test]
    async fn spawned_child_leads_its_own_group_and_dies_with_it() {
        let launch = Launch {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 30 & sleep 30".into()],
            env: BTreeMap::new(),
            handshake_env: vec![],
            working_dir: None,
        };
        let (process, _pipes) = PluginProcess::spawn(&launch).await.expect("spawn");
        let pid = process.pid() as libc::pid_t;
        // SAFETY: getpgid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        assert!(process.group_alive());
        process.signal_group(libc::SIGKILL).expect("signal");
        let status = process
            .exited_within(Duration::from_secs(5))
            .await
            .expect("exits");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // The backgrounded sleep was in the group too; it is re-parented to
        // the host (a subreaper) and must be reaped, not left a zombie.
        assert!(
            process.group_gone_within(Duration::from_secs(5)).await,
            "left in the group: {:?}",
            group_members(process.pid())
        );
    }
}
