//! When the host is SIGKILLed it cannot stop anything; its plugins (and the
//! job's command) must die anyway, through the parent-death signal, and
//! what the plugins started, through the keeper. SIGHUP, SIGUSR1 and
//! SIGUSR2 never kill the host without an orderly stop.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Sandbox, alive, bin, wait_until};

/// Writes `config` into the sandbox and starts `outboard COMMAND --config
/// it ARGS...`, stdout discarded, runtime directories under a fresh base.
fn start_host(
    sb: &Sandbox,
    config: &str,
    command: &str,
    args: &[&str],
    stderr: Stdio,
) -> (std::process::Child, tempfile::TempDir) {
    let config_path = sb.path().join("outboard.toml");
    std::fs::write(&config_path, config).unwrap();
    let runtime = tempfile::Builder::new()
        .prefix("obk-")
        .tempdir_in("/tmp")
        .unwrap();
    let host = common::outboard_command()
        .args([command, "--config", config_path.to_str().unwrap()])
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", runtime.path())
        .env(
            "OUTBOARD_CONTROL_SOCKET",
            sb.path().join("ctl/control.sock"),
        )
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (host, runtime)
}

#[test]
fn no_plugin_outlives_a_sigkilled_host() {
    // Orphans come back to this test process to be reaped, instead of
    // becoming zombies of an init that may never reap them.
    // SAFETY: prctl with integer arguments has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let sb = Sandbox::new();
    let mut config = String::new();
    for i in 0..3 {
        config.push_str(&format!(
            "[[plugin]]\nname = \"p{i}\"\ncommand = {:?}\nenv = {{ STRESS_PHASES = \"x:{i}\" }}\n\n",
            bin("stress")
        ));
    }
    let (mut host, _runtime) =
        start_host(&sb, &config, "run", &["--", "sleep", "60"], Stdio::null());
    let host_pid = host.id();
    // Three plugins, the keeper and the command.
    let up = wait_until(Duration::from_secs(10), || {
        common::children_of(host_pid).len() >= 5
    });
    let children: Vec<u32> = common::children_of(host_pid)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert!(up, "the host's children never all started: {children:?}");

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(host_pid as libc::pid_t, libc::SIGKILL) };
    host.wait().unwrap();
    // Each dies as soon as the kernel delivers its parent-death signal.
    wait_until(Duration::from_secs(2), || {
        !children.iter().any(|&p| alive(p))
    });
    let survivors: Vec<u32> = children.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "alive 2 s after the host was killed: {survivors:?}"
    );

    // Reap what came back to us.
    for &pid in &children {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    }
}

/// An `outboard up` with a normal plugin and one that forks a grandchild
/// into its group, its runtime directories under a base of its own.
struct Up {
    host: std::process::Child,
    stderr: common::Lines,
    runtime: tempfile::TempDir,
    _sandbox: Sandbox,
}

impl Up {
    fn start() -> Up {
        let sb = Sandbox::new();
        let config = format!(
            "[[plugin]]\nname = \"plain\"\ncommand = {broken:?}\nargs = [\"ok\"]\n\n\
             [[plugin]]\nname = \"forker\"\ncommand = {broken:?}\nargs = [\"forks-grandchild\"]\n",
            broken = bin("broken-plugin")
        );
        let (mut host, runtime) = start_host(&sb, &config, "up", &[], Stdio::piped());
        let mut stderr = common::Lines::read(host.stderr.take().unwrap());
        stderr.expect("outboard: ready", Duration::from_secs(20));
        Up {
            host,
            stderr,
            runtime,
            _sandbox: sb,
        }
    }

    /// The host's children (the plugins and the keeper) and theirs (the
    /// grandchild).
    fn descendants(&self) -> Vec<u32> {
        let children: Vec<u32> = common::children_of(self.host.id())
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        let mut all = children.clone();
        for child in children {
            all.extend(common::child_pids(child));
        }
        all
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.host.id() as libc::pid_t, signal) };
    }

    /// The runtime directories left under this host's base.
    fn runtime_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.runtime.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Up {
    /// A failed test leaves no host running: it is killed, and the keeper
    /// takes its plugins' groups with it.
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

fn keeper_of(pids: &[u32]) -> Option<u32> {
    pids.iter().copied().find(|&pid| common::is_keeper(pid))
}

/// Waits until none of `pids` runs, then reaps those that came back to
/// this test (a subreaper); fails naming the survivors.
fn assert_all_gone(pids: &[u32], after: &str) {
    wait_until(Duration::from_secs(5), || !pids.iter().any(|&p| alive(p)));
    let survivors: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "alive 5 s after {after}: {survivors:?}"
    );
    for &pid in pids {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    }
}

fn become_subreaper() {
    // Orphans come back to this test process to be reaped, instead of
    // becoming zombies of an init that may never reap them.
    // SAFETY: prctl with integer arguments has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
}

#[test]
fn a_sigkilled_host_takes_whole_plugin_groups_with_it() {
    become_subreaper();
    let mut up = Up::start();
    let before = up.descendants();
    // Two plugins, the keeper and the grandchild.
    assert!(before.len() >= 4, "expected 4 processes, saw {before:?}");
    assert!(keeper_of(&before).is_some(), "no keeper among {before:?}");
    up.signal(libc::SIGKILL);
    up.host.wait().unwrap();
    assert_all_gone(&before, "the host was SIGKILLed");

    // The next host's start removes the dead host's runtime directories.
    assert!(
        !up.runtime_dirs().is_empty(),
        "a killed host cannot clean up"
    );
    let config = format!(
        "[[plugin]]\nname = \"next\"\ncommand = {:?}\nargs = [\"ok\"]\n",
        bin("broken-plugin")
    );
    let config_path = up.runtime.path().join("next.toml");
    std::fs::write(&config_path, config).unwrap();
    let next = common::outboard_command()
        .args(["ls", "--config", config_path.to_str().unwrap()])
        .env("OUTBOARD_RUNTIME_DIR", up.runtime.path())
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", common::text(&next.stderr));
    std::fs::remove_file(&config_path).unwrap();
    assert_eq!(up.runtime_dirs(), Vec::<String>::new(), "not swept");
}

#[test]
fn up_survives_sighup_and_sigusr1_then_stops_in_order() {
    become_subreaper();
    let mut up = Up::start();
    let before = up.descendants();
    up.signal(libc::SIGHUP);
    // The config is as it was: reloaded, nothing changes.
    up.stderr.expect(
        "outboard: reload applied: nothing changed",
        Duration::from_secs(5),
    );
    up.signal(libc::SIGUSR1);
    up.stderr.expect("SIGUSR1 ignored", Duration::from_secs(5));
    up.signal(libc::SIGUSR2);
    up.stderr.expect("SIGUSR2 ignored", Duration::from_secs(5));
    let dead: Vec<u32> = before.iter().copied().filter(|&p| !alive(p)).collect();
    assert!(dead.is_empty(), "gone after SIGHUP/SIGUSR1: {dead:?}");

    up.signal(libc::SIGTERM);
    let status = up.host.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    // The keeper exits once the host has, and no zombie of it stays.
    assert_all_gone(&before, "an orderly stop");
    assert_eq!(up.runtime_dirs(), Vec::<String>::new());
}

#[test]
fn a_hangup_stops_run_like_an_interrupt() {
    become_subreaper();
    let sb = Sandbox::new();
    let config = format!(
        "[[plugin]]\nname = \"forker\"\ncommand = {:?}\nargs = [\"forks-grandchild\"]\n",
        bin("broken-plugin")
    );
    let marker = sb.path().join("started");
    let script = format!("touch {}; exec sleep 60", marker.display());
    let (mut host, runtime) = start_host(
        &sb,
        &config,
        "run",
        &["--", "/bin/sh", "-c", &script],
        Stdio::piped(),
    );
    let stderr = common::Lines::read(host.stderr.take().unwrap());
    assert!(
        wait_until(Duration::from_secs(20), || marker.exists()),
        "the command never started: {}",
        stderr.rest()
    );
    let mut before: Vec<u32> = common::children_of(host.id())
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    for child in before.clone() {
        before.extend(common::child_pids(child));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(host.id() as libc::pid_t, libc::SIGHUP) };
    let status = host.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", stderr.rest());
    assert_all_gone(&before, "run's orderly stop on SIGHUP");
    let left: Vec<_> = std::fs::read_dir(runtime.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "runtime directories left: {left:?}");
}

#[test]
fn a_killed_keeper_is_reaped_and_replaced() {
    become_subreaper();
    let mut up = Up::start();
    let before = up.descendants();
    let keeper = keeper_of(&before).expect("a keeper");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(keeper as libc::pid_t, libc::SIGKILL) };
    // The host reaps it (no zombie) and starts another that knows the
    // groups already running.
    let replaced = wait_until(Duration::from_secs(5), || {
        let now = common::children_of(up.host.id());
        !now.iter().any(|&(pid, _)| pid == keeper)
            && now.iter().any(|&(pid, _)| common::is_keeper(pid))
    });
    assert!(
        replaced,
        "keeper {keeper} not replaced: {:?}",
        common::children_of(up.host.id())
    );
    let now = up.descendants();
    up.signal(libc::SIGKILL);
    up.host.wait().unwrap();
    assert_all_gone(&now, "the host was SIGKILLed with a second keeper");
}

/// The cgroups of plugin `name` made by host `host_pid`.
fn cgroups_of(name: &str, host_pid: u32) -> Vec<std::path::PathBuf> {
    outboard_host::sandbox::cgroups_of(name, host_pid, outboard_host::sandbox::offers())
}

/// The processes in the cgroups `dirs`.
fn members(dirs: &[std::path::PathBuf]) -> Vec<u32> {
    let mut pids: Vec<u32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|procs| {
            procs
                .lines()
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[test]
fn a_sigkilled_hosts_walled_plugin_dies_and_the_next_host_sweeps_its_cgroups() {
    use outboard_host::config::SandboxSpec;
    use outboard_host::sandbox;
    // SAFETY: prctl with integer arguments has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let spec = SandboxSpec {
        memory: Some(64 << 20),
        pids: Some(64),
        user: Some("nobody".into()),
        ..SandboxSpec::default()
    };
    let walls = sandbox::plan("walled", &spec, sandbox::offers());
    let cgroups = walls.as_ref().is_ok_and(|w| {
        w.iter()
            .filter(|w| w.mechanism.starts_with("cgroup"))
            .count()
            == 2
    });
    if !cgroups
        || sandbox::runs_as("walled", &spec, sandbox::offers())
            .ok()
            .flatten()
            .is_none()
    {
        eprintln!(
            "skipped: needs memory and pids cgroups and a root host with a user nobody: {walls:?}"
        );
        return;
    }
    let sb = Sandbox::new();
    let config = format!(
        "[[plugin]]\nname = \"walled\"\ncommand = {:?}\nenv = {{ STRESS_PHASES = \"x:0\" }}\n\n\
         [plugin.sandbox]\nmemory = \"64Mi\"\npids = 64\nuser = \"nobody\"\n",
        bin("stress")
    );
    // Searchable by the plugin's user, which must reach its directory;
    // shared by both hosts: the next one finds the dead one's cgroup lock
    // there.
    let runtime = tempfile::Builder::new()
        .prefix("obw-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o711))
        .tempdir_in("/tmp")
        .unwrap();
    let start = |sb: &Sandbox| {
        let config_path = sb.path().join("outboard.toml");
        std::fs::write(&config_path, &config).unwrap();
        common::outboard_command()
            .args([
                "run",
                "--config",
                config_path.to_str().unwrap(),
                "--",
                "sleep",
                "60",
            ])
            .env("OUTBOARD_RUNTIME_DIR", runtime.path())
            .env(
                "OUTBOARD_CONTROL_SOCKET",
                sb.path().join("ctl/control.sock"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut host = start(&sb);
    let host_pid = host.id();
    let up = wait_until(Duration::from_secs(20), || {
        !members(&cgroups_of("walled", host_pid)).is_empty()
    });
    let first = cgroups_of("walled", host_pid);
    assert!(up, "the plugin never ran in its cgroups: {first:?}");
    let plugin = members(&first);

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(host_pid as libc::pid_t, libc::SIGKILL) };
    host.wait().unwrap();
    // Dropped to nobody, it still gets its parent-death signal.
    wait_until(Duration::from_secs(2), || !plugin.iter().any(|&p| alive(p)));
    let survivors: Vec<u32> = plugin.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "alive 2 s after the host was killed: {survivors:?}"
    );
    for &pid in &plugin {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    }
    assert!(
        first.iter().all(|d| d.exists()),
        "a SIGKILLed host cannot remove its cgroups: {first:?}"
    );

    // The next host sweeps them when it makes its first cgroup.
    let mut next = start(&sb);
    let up = wait_until(Duration::from_secs(20), || {
        !members(&cgroups_of("walled", next.id())).is_empty()
    });
    assert!(up, "the next host's plugin never ran in its cgroups");
    let left: Vec<_> = first.iter().filter(|d| d.exists()).collect();
    assert!(
        left.is_empty(),
        "the dead host's cgroups are swept: {left:?}"
    );
    common::sigterm(next.id());
    next.wait().unwrap();
    assert_eq!(
        cgroups_of("walled", next.id()),
        Vec::<std::path::PathBuf>::new()
    );
}
