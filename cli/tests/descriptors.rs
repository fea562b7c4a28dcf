//! A plugin gets stdin, stdout and stderr and nothing else of the host's
//! descriptors; the job's command keeps what the user's shell gave the host
//! (`7<file` on the command line is meant for the command).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Sandbox, text};

/// A `sh -c` script writing its descriptors to `$OUT`: `exec` makes the
/// redirection permanent (no descriptor saved aside) and `ls` the process
/// itself, which adds one of its own, the lowest free one, for reading
/// `/proc/self/fd`.
const REPORT: &str = "exec ls /proc/self/fd > \"$OUT\"";

/// Runs `outboard ARGS` from a shell that first opens `secret` on
/// descriptor 7 without close-on-exec.
fn outboard_with_fd7(sb: &Sandbox, secret: &std::path::Path, args: &str) -> std::process::Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec 7<\"$SECRET\"; exec \"$OUTBOARD\" {args}"))
        .env("SECRET", secret)
        .env("OUTBOARD", env!("CARGO_BIN_EXE_outboard"))
        .env("OUTBOARD_STATE_DIR", common::STATE_DIR)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .current_dir(sb.path())
        .output()
        .unwrap()
}

fn descriptors(report: &std::path::Path) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_to_string(report)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", report.display()))
        .split_whitespace()
        .map(|fd| fd.parse().unwrap())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn a_plugin_gets_only_the_standard_descriptors() {
    let sb = Sandbox::new();
    let secret = sb.path().join("secret");
    std::fs::write(&secret, "root only").unwrap();
    let report = sb.path().join("plugin-fds");
    // The "plugin" reports its descriptors and exits before any handshake:
    // the host's error is expected, the report is what counts.
    let config = format!(
        "[[plugin]]\nname = \"fds\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", {REPORT:?}]\n\
         env = {{ OUT = {:?} }}\n",
        report.to_str().unwrap()
    );
    std::fs::write(sb.path().join("outboard.toml"), config).unwrap();
    let out = outboard_with_fd7(&sb, &secret, "ls --config outboard.toml");
    assert_eq!(
        descriptors(&report),
        [0, 1, 2, 3],
        "the plugin holds more than stdin, stdout, stderr (and ls's own 3); outboard said: {}",
        text(&out.stderr)
    );
}

#[test]
fn the_jobs_command_keeps_the_users_descriptors() {
    let sb = Sandbox::new();
    let secret = sb.path().join("secret");
    std::fs::write(&secret, "for the command").unwrap();
    let report = sb.path().join("command-fds");
    std::fs::write(sb.path().join("outboard.toml"), "").unwrap();
    let out = outboard_with_fd7(
        &sb,
        &secret,
        &format!(
            "run --config outboard.toml -- /bin/sh -c 'OUT={} && {REPORT}'",
            report.to_str().unwrap()
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fds = descriptors(&report);
    assert!(fds.contains(&7), "the command lost descriptor 7: {fds:?}");
}
