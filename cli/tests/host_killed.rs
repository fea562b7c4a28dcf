//! When the host is SIGKILLed it cannot stop anything; its plugins (and the
//! job's command) must die anyway, through the parent-death signal.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Sandbox, bin};
use outboard_host::launch::ProcStat;

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| ProcStat::read(p).is_some_and(|s| s.ppid == pid))
        .collect()
}

fn alive(pid: u32) -> bool {
    ProcStat::read(pid).is_some_and(|s| !s.zombie)
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
    let up = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        children_of(host_pid).len() >= 4
    });
    let children = children_of(host_pid);
    assert!(up, "the host's children never all started: {children:?}");

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(host_pid as libc::pid_t, libc::SIGKILL) };
    host.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));
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
