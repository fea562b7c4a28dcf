//! When the host is SIGKILLed it cannot stop anything; its plugins (and the
//! job's command) must die anyway, through the parent-death signal.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Sandbox, alive, bin, wait_until};

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
    let config_path = sb.path().join("outboard.toml");
    std::fs::write(&config_path, config).unwrap();
    let runtime = tempfile::Builder::new()
        .prefix("obk-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut host = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args([
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ])
        .env("OUTBOARD_RUNTIME_DIR", runtime.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host_pid = host.id();
    // Three plugins and the command.
    let up = wait_until(Duration::from_secs(10), || {
        common::child_pids(host_pid).len() >= 4
    });
    let children = common::child_pids(host_pid);
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
