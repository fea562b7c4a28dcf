//! Plugin processes: spawned (on the spawner thread) in a process group of
//! their own with a parent-death signal and a scrubbed environment; the
//! whole group signalled, waited for and killed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::watch;

use crate::config::{PluginSpec, SandboxSpec};
use crate::launch::exit::Exit;
use crate::launch::spawner::{reap_orphans, spawn_on_long_lived_thread};
use crate::sandbox;

/// Tells the host that an init reaps every orphan, so it need not become a
/// child subreaper; the `outboard` init calls it here.
pub use crate::launch::spawner::set_under_init;

/// Host variables a plugin inherits, with those under
/// [`INHERITED_PREFIXES`]; everything else is scrubbed.
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

/// Prefixes of inherited host variables: the locale's, and OpenTelemetry's
/// (where and how to export traces, so a plugin's spans go where the
/// host's do), but for [`withheld`] ones.
const INHERITED_PREFIXES: &[&str] = &["LC_", "OTEL_"];

/// Whether a host variable under an inherited prefix is kept from plugins
/// all the same: the OTLP exporter's headers (`OTEL_EXPORTER_OTLP_HEADERS`
/// and the per-signal `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `_LOGS_`,
/// `_METRICS_`) commonly carry the collector's API key, which is the host's
/// credential, not a plugin's. A plugin that needs them gets them from its
/// own `env`.
fn withheld(name: &str) -> bool {
    name.starts_with("OTEL_EXPORTER_OTLP_") && name.ends_with("HEADERS")
}

/// The variable naming the service a plugin's spans come from: the
/// plugin's name, unless its configuration sets it.
const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

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
    /// The plugin's name, which its cgroup and sandbox errors carry.
    pub name: String,
    /// The walls to put up around it.
    pub sandbox: SandboxSpec,
}

impl Launch {
    /// `command` with `args`, nothing added to the scrubbed environment, in
    /// the host's directory, with no sandbox: for code that embeds the
    /// host, and tests; the fields are public to change the rest.
    pub fn new(name: impl Into<String>, command: impl Into<PathBuf>, args: Vec<String>) -> Launch {
        Launch {
            command: command.into(),
            args,
            env: BTreeMap::new(),
            handshake_env: Vec::new(),
            working_dir: None,
            name: name.into(),
            sandbox: SandboxSpec::default(),
        }
    }

    /// What to spawn for `spec` as a person would run it by hand: its
    /// command, arguments, variables and working directory, without the
    /// handshake variables.
    pub fn by_hand(spec: &PluginSpec) -> Launch {
        let mut env = spec.env.clone();
        env.entry(OTEL_SERVICE_NAME.to_owned())
            .or_insert_with(|| spec.name.clone());
        Launch {
            command: spec.command.clone(),
            args: spec.args.clone(),
            env,
            handshake_env: Vec::new(),
            working_dir: spec.working_dir.clone(),
            name: spec.name.clone(),
            sandbox: spec.sandbox.clone(),
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
                INHERITED_ENV.contains(&k.as_ref())
                    || (INHERITED_PREFIXES.iter().any(|p| k.starts_with(p)) && !withheld(&k))
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
    /// The exit, once the process is reaped and its cgroup (if any) gone.
    exit: watch::Receiver<Option<Exit>>,
    /// The walls put up around it, as the sandbox's plan describes them.
    walls: Vec<sandbox::Wall>,
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
        let walls = sandbox::apply(&launch.name, &launch.sandbox, sandbox::offers(), &mut cmd)?;
        if let Some((uid, _)) = walls.ids.filter(|_| launch.sandbox.user.is_some()) {
            // The user's own account, not the host's, unless configured.
            if let Some((user, home)) = sandbox::account_of(uid) {
                for (key, value) in [("HOME", &home), ("USER", &user), ("LOGNAME", &user)] {
                    if !launch.env.contains_key(key) {
                        cmd.env(key, value);
                    }
                }
            }
        }

        let mut child = spawn_on_long_lived_thread(cmd, true).await?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child exited before its pid was read"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(io::Error::other("the child's pipes were not created"));
        };
        let (tx, exit) = watch::channel(None);
        let sandbox::Walls { walls, cgroup, .. } = walls;
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status,
                // wait(2) failing means the child is gone but its status is
                // lost; report it as killed rather than hang the host.
                Err(_) => ExitStatus::from_raw(libc::SIGKILL),
            };
            let mut exit = Exit::from(status);
            if let Some(mut cgroup) = cgroup {
                if let Some(limit) = cgroup.out_of_memory() {
                    exit = exit.out_of_memory_at(limit);
                }
                // Gone before the exit is told: whoever waits for the exit
                // finds no cgroup and nothing of the plugin left in one.
                let _ = tokio::task::spawn_blocking(move || cgroup.remove()).await;
            }
            let _ = tx.send(Some(exit));
        });
        let process = PluginProcess { pid, exit, walls };
        Ok((process, Pipes { stdout, stderr }))
    }

    /// The walls put up around the plugin, one row per setting (and
    /// `no_new_privs`, always), as [`sandbox::plan`] describes them.
    pub fn sandbox(&self) -> &[sandbox::Wall] {
        &self.walls
    }

    /// The plugin's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if the process has exited (and been reaped).
    pub fn exit_status(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// A receiver that changes once, when the process exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// Waits until the process has exited and been reaped.
    pub async fn exited(&self) -> Exit {
        let mut exit = self.exit.clone();
        // The reaper task is gone only if the runtime is shutting down.
        let status = exit.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        status.unwrap_or_else(|| Exit::killed_by(libc::SIGKILL))
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
                // ESRCH: the host is gone. A raw code allocates nothing
                // (and is all std hands the parent anyway).
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::spawner::group_members;

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
            name: "sh".into(),
            sandbox: SandboxSpec::default(),
        };
        let host = [
            ("PATH", "/bin"),
            ("LANG", "en_US.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            (
                "TRACEPARENT",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
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
        assert_eq!(
            get("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("http://collector:4317"),
            "spans go where the host's do"
        );
        assert_eq!(get("TRACEPARENT"), None, "the parent comes with each call");
    }

    #[test]
    fn the_hosts_otlp_headers_stay_with_the_host_unless_configured() {
        let host = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=host-secret"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=host-secret"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-api-key=host-secret"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env_of = |spec: &PluginSpec| -> BTreeMap<String, String> {
            Launch::by_hand(spec)
                .environment(host.clone())
                .into_iter()
                .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
                .collect()
        };
        let mut spec = PluginSpec::new("audit", "/bin/true");
        let env = env_of(&spec);
        assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://collector:4317");
        assert_eq!(env["OTEL_EXPORTER_OTLP_TIMEOUT"], "5000");
        for withheld in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        ] {
            assert!(!env.contains_key(withheld), "{withheld} reached the plugin");
        }
        spec.env.insert(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
            "x-api-key=audit-own".into(),
        );
        let env = env_of(&spec);
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"],
            "x-api-key=audit-own"
        );
        assert!(!env.contains_key("OTEL_EXPORTER_OTLP_HEADERS"));
    }

    #[test]
    fn a_plugin_is_its_own_service_unless_its_configuration_names_one() {
        let mut spec = PluginSpec::new("audit", "/bin/true");
        let host = [("OTEL_SERVICE_NAME", "outboard")]
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let service = |spec: &PluginSpec| {
            Launch::by_hand(spec)
                .environment(host.clone())
                .into_iter()
                .find(|(k, _)| k == OTEL_SERVICE_NAME)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(service(&spec).as_deref(), Some("audit"));
        spec.env
            .insert(OTEL_SERVICE_NAME.into(), "audit-prod".into());
        assert_eq!(service(&spec).as_deref(), Some("audit-prod"));
    }

    #[tokio::test]
    async fn spawned_child_leads_its_own_group_and_dies_with_it() {
        let launch = Launch {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 30 & sleep 30".into()],
            env: BTreeMap::new(),
            handshake_env: vec![],
            working_dir: None,
            name: "sh".into(),
            sandbox: SandboxSpec::default(),
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
