//! The host is undumpable: a job or plugin running as the host's own user
//! can neither read the host's `/proc` files (its environment, memory,
//! descriptors) nor trace it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

/// The uid and gid the host runs as in this test: `nobody`, so that the
/// kernel's rules for an ordinary user apply (root may read any `/proc`).
const NOBODY: u32 = 65534;

#[test]
fn a_job_of_the_same_user_cannot_read_the_hosts_proc_files() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the host as nobody");
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("obdump")
        .tempdir_in("/tmp")
        .expect("temp dir");
    // Sticky and open to all, as /tmp is: nobody makes its state there.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let config = work.path().join("outboard.toml");
    std::fs::write(&config, "").expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // The job's parent is the host: the job reads the host's environ.
    let script = "stat -c %u /proc/$PPID/environ; \
                  if cat /proc/$PPID/environ >/dev/null 2>&1; then echo readable; else echo unreadable; fi";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .env("OUTBOARD_STATE_DIR", work.path().join("state"))
        .env("OUTBOARD_RUNTIME_DIR", work.path())
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .current_dir(work.path())
        .args(["run", "--config"])
        .arg(&config)
        .args(["--", "sh", "-c", script])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run outboard as nobody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["0", "unreadable"],
        "the host's /proc files belong to root and the job cannot read them\nstderr: {stderr}"
    );
}
