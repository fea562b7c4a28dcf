//! The init `outboard` puts in front of the host as PID 1: exit statuses
//! come through it, signals are forwarded, and orphans that reach it are
//! reaped. `OUTBOARD_INIT=1` turns it on outside a container; the reaping
//! tests run `outboard` as PID 1 of a fresh PID namespace (`unshare`), and
//! say so on stderr when they cannot.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, bin, children_of, wait_until};
use outboard_host::launch::ProcStat;
use serde_json::Value;

const OUTBOARD: &str = env!("CARGO_BIN_EXE_outboard");

/// A config with no plugins: the job is just its command.
fn empty_config(sb: &Sandbox) -> PathBuf {
    let path = sb.path().join("outboard.toml");
    std::fs::write(&path, "").unwrap();
    path
}

/// `outboard run --config <config> -- sh -c <script>` with the init forced
/// on, or with `wrapper` in front (`unshare ...`).
fn job(sb: &Sandbox, config: &Path, wrapper: &[&str], script: &str) -> Command {
    let runtime = sb.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let (program, wrapper) = match wrapper.split_first() {
        Some((program, rest)) => (*program, rest),
        None => (OUTBOARD, &[][..]),
    };
    let mut cmd = Command::new(program);
    cmd.args(wrapper);
    if !wrapper.is_empty() {
        cmd.arg(OUTBOARD);
    }
    cmd.args(["run", "--json", "--config"])
        .arg(config)
        .args(["--", "sh", "-c", script])
        .env("OUTBOARD_STATE_DIR", common::STATE_DIR)
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if wrapper.is_empty() {
        cmd.env("OUTBOARD_INIT", "1");
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_runtime_dirs(sb: &Sandbox) {
    let left: Vec<PathBuf> = std::fs::read_dir(sb.path().join("run"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "runtime directories left: {left:?}");
}

fn wait_for_file(path: &Path) -> bool {
    wait_until(Duration::from_secs(10), || path.exists())
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn the_hosts_exit_status_comes_through_the_init() {
    let sb = Sandbox::new();
    let config = empty_config(&sb);
    // The command's grandparent is the init (its parent is the host).
    let seen = sb.path().join("grandparent");
    let script = format!(
        "gp=$(cut -d' ' -f4 /proc/$PPID/stat); cat /proc/$gp/comm > {}; exit 7",
        seen.display()
    );
    let out = job(&sb, &config, &[], &script).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        "outboard-init"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["command_exit_code"], 7);
}

#[test]
fn a_killed_host_comes_through_as_128_plus_the_signal() {
    let sb = Sandbox::new();
    let config = empty_config(&sb);
    let out = job(&sb, &config, &[], "kill -KILL $PPID; sleep 5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr(&out));
}

#[test]
fn sigterm_to_the_init_stops_the_job_the_orderly_way() {
    let sb = Sandbox::new();
    let observer = bin("scripted-plugin");
    let config = sb.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"observer\"\ncommand = {:?}\nstop_grace = \"1s\"\n\
             env = {{ SCRIPTED_SUBSCRIBE = \"cleanup:0\" }}\n\
             config = {{ cleanup = {{ copy = {{ \"/metadata/observer/status\" = \"/status\" }} }} }}\n",
            observer.display().to_string()
        ),
    )
    .unwrap();
    let started = sb.path().join("started");
    // exec: the host's SIGTERM goes to the process that waits.
    let script = format!("touch {}; exec sleep 30", started.display());
    let child = job(&sb, &config, &[], &script).spawn().unwrap();
    assert!(wait_for_file(&started), "the command never started");
    assert_eq!(comm(child.id()), "outboard-init");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    // 130 is the host's orderly stop; a host killed by the signal would
    // come through as 143.
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failure"]["kind"], "interrupted");
    assert_eq!(report["command_exit_code"], 143);
    let cleanup = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "cleanup")
        .unwrap();
    assert_eq!(
        cleanup["context"]["metadata"]["observer"]["status"],
        "failed"
    );
    assert_no_runtime_dirs(&sb);
}

#[test]
fn hangup_and_user_signals_through_the_init_do_not_kill_up() {
    let sb = Sandbox::new();
    let config = sb.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"forker\"\ncommand = {:?}\nargs = [\"forks-grandchild\"]\n",
            bin("broken-plugin").display().to_string()
        ),
    )
    .unwrap();
    let runtime = sb.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let mut init = Command::new(OUTBOARD)
        .args(["up", "--config"])
        .arg(&config)
        .env("OUTBOARD_INIT", "1")
        .env("OUTBOARD_STATE_DIR", common::STATE_DIR)
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .env(
            "OUTBOARD_CONTROL_SOCKET",
            sb.path().join("ctl/control.sock"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = common::Lines::read(init.stderr.take().unwrap());
    lines.expect("outboard: ready", Duration::from_secs(20));
    let signal = |signal| {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(init.id() as libc::pid_t, signal) };
    };
    // The init forwards each to the host, which logs it and goes on.
    signal(libc::SIGHUP);
    lines.expect("outboard: reload applied", Duration::from_secs(5));
    signal(libc::SIGUSR1);
    lines.expect("SIGUSR1 ignored", Duration::from_secs(5));
    signal(libc::SIGUSR2);
    lines.expect("SIGUSR2 ignored", Duration::from_secs(5));
    let host = children_of(init.id());
    assert!(
        host.iter()
            .any(|(pid, stat)| comm(*pid) == "outboard" && !stat.zombie),
        "the host is gone: {}",
        lines.rest()
    );
    signal(libc::SIGTERM);
    let status = init.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", lines.rest());
    assert_no_runtime_dirs(&sb);
}

/// `unshare --pid --fork --mount-proc`, if it works here (it needs
/// privileges): `outboard` then runs as PID 1 of a new PID namespace.
fn pid_namespace() -> Option<[&'static str; 4]> {
    let args = ["unshare", "--pid", "--fork", "--mount-proc"];
    let works = Command::new(args[0])
        .args(&args[1..])
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then_some(args)
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}; this test proves reaping by outboard as PID 1");
}

/// The namespace's PID 1 as this test sees it: the child of `unshare`.
fn init_of(unshare: &Child) -> u32 {
    let mut init = None;
    let forked = wait_until(Duration::from_secs(10), || {
        init = children_of(unshare.id()).first().map(|&(pid, _)| pid);
        init.is_some()
    });
    assert!(forked, "unshare never forked");
    init.unwrap()
}

fn finish(child: Child) -> (ExitStatus, Duration) {
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    (out.status, start.elapsed())
}

#[test]
fn as_pid_1_the_init_reaps_orphans_that_reach_it() {
    let Some(unshare) = pid_namespace() else {
        return skip(
            "as_pid_1_the_init_reaps_orphans_that_reach_it",
            "`unshare --pid --fork --mount-proc` does not work here",
        );
    };
    let sb = Sandbox::new();
    let config = empty_config(&sb);
    let (started, done) = (sb.path().join("started"), sb.path().join("done"));
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done; exit 5",
        started.display(),
        done.display()
    );
    let child = job(&sb, &config, &unshare, &script).spawn().unwrap();
    let init = init_of(&child);
    assert!(wait_for_file(&started), "the command never started");
    assert_eq!(comm(init), "outboard-init", "PID 1 is not the init");

    // A process entering the namespace from outside, as `docker exec` does,
    // leaves an orphan behind: it is re-parented to PID 1, the init.
    let entered = Command::new("nsenter")
        .args(["--target", &init.to_string(), "--pid", "--"])
        .args(["sh", "-c", "(sleep 1 &)"])
        .status();
    if !entered.is_ok_and(|s| s.success()) {
        std::fs::write(&done, "").unwrap();
        let _ = finish(child);
        return skip(
            "as_pid_1_the_init_reaps_orphans_that_reach_it",
            "`nsenter --pid` does not work here",
        );
    }
    let orphans = || -> Vec<(u32, ProcStat)> {
        children_of(init)
            .into_iter()
            .filter(|&(pid, _)| comm(pid) == "sleep")
            .collect()
    };
    // The background child may not have exec'd `sleep` yet when the shell
    // returns: wait for it.
    let reached = wait_until(Duration::from_secs(1), || orphans().len() == 1);
    assert!(
        reached,
        "the orphan did not reach the init: {:?}",
        children_of(init)
    );
    // It exits after a second; then the init must reap it, not leave a
    // zombie whose parent is PID 1.
    wait_until(Duration::from_secs(6), || orphans().is_empty());
    let left: Vec<_> = orphans()
        .iter()
        .map(|(pid, s)| format!("{pid} zombie={}", s.zombie))
        .collect();
    assert!(left.is_empty(), "left under the init: {left:?}");
    assert_eq!(comm(init), "outboard-init", "the init is still serving");

    std::fs::write(&done, "").unwrap();
    let (status, _) = finish(child);
    assert_eq!(status.code(), Some(5), "the job's status through PID 1");
    assert_no_runtime_dirs(&sb);
}

#[test]
fn as_pid_1_the_init_reaps_what_the_host_leaves_then_exits() {
    let Some(unshare) = pid_namespace() else {
        return skip(
            "as_pid_1_the_init_reaps_what_the_host_leaves_then_exits",
            "`unshare --pid --fork --mount-proc` does not work here",
        );
    };
    let sb = Sandbox::new();
    let config = empty_config(&sb);
    // The host exits at once; the orphan it leaves goes to the init, which
    // waits for it (up to a second) before it exits with the host's status.
    // The orphan leaves a file as it ends: when PID 1 exits, the kernel
    // kills the rest of the namespace, so the file proves the init waited.
    let finished = sb.path().join("orphan-finished");
    let script = format!("( (sleep 0.5; touch {}) & ); exit 4", finished.display());
    let child = job(&sb, &config, &unshare, &script).spawn().unwrap();
    let (status, took) = finish(child);
    assert_eq!(status.code(), Some(4));
    assert!(finished.exists(), "the init did not wait for the orphan");
    assert!(
        took >= Duration::from_millis(400),
        "the init did not wait for the orphan: {took:?}"
    );
    // One that would run long does not hold the init up past its drain.
    let child = job(&sb, &config, &unshare, "(sleep 30 &); exit 4")
        .spawn()
        .unwrap();
    let (status, took) = finish(child);
    assert_eq!(status.code(), Some(4));
    assert!(took < Duration::from_secs(5), "the init lingered: {took:?}");
}

/// Under the init the host is not a subreaper, so an orphan of the job's
/// command reaches the init (PID 1), which reaps it while the job runs.
#[test]
fn as_pid_1_orphans_of_the_job_command_are_reaped_while_it_runs() {
    let Some(unshare) = pid_namespace() else {
        return skip(
            "as_pid_1_orphans_of_the_job_command_are_reaped_while_it_runs",
            "`unshare --pid --fork --mount-proc` does not work here",
        );
    };
    let sb = Sandbox::new();
    let config = empty_config(&sb);
    let (up, release, done) = (
        sb.path().join("orphan-up"),
        sb.path().join("release"),
        sb.path().join("done"),
    );
    // The orphan says it runs, then waits for the test to let it end.
    let script = format!(
        "(sh -c 'touch {}; while [ ! -e {} ]; do sleep 0.05; done' &); \
         while [ ! -e {} ]; do sleep 0.05; done",
        up.display(),
        release.display(),
        done.display()
    );
    let child = job(&sb, &config, &unshare, &script).spawn().unwrap();
    let init = init_of(&child);
    assert!(wait_for_file(&up), "the orphan never started");
    // It reaches the init once the subshell that started it has exited.
    let mut orphan = None;
    let reached = wait_until(Duration::from_secs(5), || {
        orphan = children_of(init)
            .into_iter()
            .map(|(pid, _)| pid)
            .find(|&pid| comm(pid) == "sh");
        orphan.is_some()
    });
    assert!(
        reached,
        "the orphan never reached the init: {:?}",
        children_of(init)
    );
    let orphan = orphan.unwrap();
    std::fs::write(&release, "").unwrap();
    // Reaped: not even a zombie is left of it.
    let reaped = wait_until(Duration::from_secs(5), || ProcStat::read(orphan).is_none());
    assert!(
        reaped,
        "the orphan {orphan} was not reaped: {:?}",
        ProcStat::read(orphan)
    );
    let mut zombies = Vec::new();
    let mut parents = vec![init];
    while let Some(parent) = parents.pop() {
        for (pid, stat) in children_of(parent) {
            if stat.zombie {
                zombies.push(format!("{pid} ({}), parent {parent}", comm(pid)));
            }
            parents.push(pid);
        }
    }
    std::fs::write(&done, "").unwrap();
    let _ = finish(child);
    assert!(zombies.is_empty(), "zombies in the namespace: {zombies:?}");
}
